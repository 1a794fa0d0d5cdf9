"""Logging in with an authenticator app: the code comes before any session, works once, within ±1 step."""

from __future__ import annotations

from datetime import timedelta

import pytest

from idp.accounts import mfa
from idp.errors import RateLimited
from tests.conftest import PASSWORD, csrf_token_from

from .conftest import audit_events, enrol, pending_of, sign_in_of


def wrong_code(enrolment) -> str:
    near = {enrolment.code(s) for s in (-30, 0, 30)}
    return next(c for c in ("000000", "111111", "222222", "333333") if c not in near)


def test_enrolled_account_is_asked_for_a_code_before_any_session_exists(browser, world, frozen_clock):
    enrol(world.beech_identity)
    response = browser.login("beech", "pat.lee@example.org")
    assert response.status_code == 302
    assert response.headers["Location"] == "/t/beech/login/verify"
    assert sign_in_of(browser.client) is None
    assert pending_of(browser.client).account_id == world.beech_identity.id
    assert browser.get("/t/beech/").headers["Location"].startswith("/t/beech/login")
    page = browser.get("/t/beech/login/verify").get_data(as_text=True)
    assert "Enter your security code" in page and 'name="password"' not in page
    assert 'autocomplete="one-time-code"' in page


def test_correct_code_signs_in_with_pwd_otp_and_mfa(browser, world, frozen_clock):
    enrolment = enrol(world.beech_identity)
    browser.login("beech", "pat.lee@example.org", next_url="/t/beech/?from=app")
    response = browser.submit("/t/beech/login/verify", {"code": enrolment.code()})
    assert response.status_code == 302 and response.headers["Location"] == "/t/beech/?from=app"
    assert sign_in_of(browser.client).amr == ["pwd", "otp", "mfa"] and pending_of(browser.client) is None
    assert browser.get("/t/beech/").status_code == 200
    assert audit_events("mfa.succeeded") and audit_events("login.succeeded")[0].detail["amr"] == ["pwd", "otp", "mfa"]


def test_wrong_code_is_refused_next_to_the_field(browser, world, frozen_clock):
    enrolment = enrol(world.beech_identity)
    browser.login("beech", "pat.lee@example.org")
    response = browser.submit("/t/beech/login/verify", {"code": wrong_code(enrolment)})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "There is a problem" in html and "The code you entered is incorrect" in html
    assert sign_in_of(browser.client) is None
    assert audit_events("mfa.failed")
    response = browser.submit("/t/beech/login/verify", {"code": "not a code"})
    assert "Enter the 6-digit code from your authenticator app, or one of your recovery codes" in response.get_data(as_text=True)


def test_recovery_code_signs_in_once(browser, world, frozen_clock):
    enrolment = enrol(world.beech_identity)
    recovery = enrolment.recovery_codes[3]
    browser.login("beech", "pat.lee@example.org")
    response = browser.submit("/t/beech/login/verify", {"code": recovery.lower().replace("-", " ")})
    assert response.status_code == 302
    assert sign_in_of(browser.client).amr == ["pwd", "otp", "mfa"]
    assert mfa.remaining_recovery_codes(world.beech_identity) == 9

    browser.client.post("/logout", data={"csrf_token": "x"})
    browser.client.delete_cookie("idp_session")
    browser.login("beech", "pat.lee@example.org")
    response = browser.submit("/t/beech/login/verify", {"code": recovery})
    assert response.status_code == 400
    assert "That recovery code is incorrect or has already been used" in response.get_data(as_text=True)


def test_a_code_cannot_be_used_twice_in_its_time_step(browser, world, frozen_clock):
    enrolment = enrol(world.beech_identity)
    code = enrolment.code()
    browser.login("beech", "pat.lee@example.org")
    assert browser.submit("/t/beech/login/verify", {"code": code}).status_code == 302
    browser.client.delete_cookie("idp_session")
    browser.login("beech", "pat.lee@example.org")
    response = browser.submit("/t/beech/login/verify", {"code": code})
    assert response.status_code == 400
    assert "That code has already been used" in response.get_data(as_text=True)
    frozen_clock.advance(timedelta(seconds=30))
    assert browser.submit("/t/beech/login/verify", {"code": enrolment.code()}).status_code == 302


def test_codes_one_step_either_side_are_accepted_and_two_steps_back_refused(world, frozen_clock):
    enrolment = enrol(world.beech_identity)
    frozen_clock.advance(timedelta(seconds=60))  # well past the step that confirmed the device
    account = world.beech_identity
    with pytest.raises(mfa.InvalidCode):
        mfa.verify_second_factor(account, enrolment.code(-60), tenant=None, ip=None)
    assert mfa.verify_second_factor(account, enrolment.code(-30), tenant=None, ip=None) == "otp"
    assert mfa.verify_second_factor(account, enrolment.code(+30), tenant=None, ip=None) == "otp"
    # The +30 s code used up its step: the current one (earlier) is now a replay.
    with pytest.raises(mfa.InvalidCode, match="already been used"):
        mfa.verify_second_factor(account, enrolment.code(0), tenant=None, ip=None)


def test_code_from_a_phone_thirty_seconds_slow_is_accepted_at_the_login_page(browser, world, frozen_clock):
    enrolment = enrol(world.beech_identity)
    frozen_clock.advance(timedelta(seconds=60))
    browser.login("beech", "pat.lee@example.org")
    assert browser.submit("/t/beech/login/verify", {"code": enrolment.code(-30)}).status_code == 302


def test_second_step_locks_after_repeated_wrong_codes(app, browser, world, frozen_clock):
    app.config["THROTTLE_RULES"] = {"mfa-account": "3 per 5 minutes"}
    enrolment = enrol(world.beech_identity)
    browser.login("beech", "pat.lee@example.org")
    for _ in range(3):
        browser.submit("/t/beech/login/verify", {"code": wrong_code(enrolment)})
    response = browser.submit("/t/beech/login/verify", {"code": enrolment.code()})
    html = response.get_data(as_text=True)
    assert response.status_code == 429
    assert "Too many incorrect codes. Please wait 5 minutes and try again" in html
    assert sign_in_of(browser.client) is None
    # The lock names its way out: a recovery code still works.
    response = browser.submit("/t/beech/login/verify", {"code": enrolment.recovery_codes[0]})
    assert response.status_code == 302


def test_the_lock_follows_the_account_not_the_browser(app, world, frozen_clock):
    app.config["THROTTLE_RULES"] = {"mfa-account": "2 per 5 minutes"}
    enrolment = enrol(world.beech_identity)
    for _ in range(2):
        with pytest.raises(mfa.InvalidCode):
            mfa.verify_second_factor(world.beech_identity, wrong_code(enrolment), tenant=None, ip="10.0.0.1")
    with pytest.raises(RateLimited):
        mfa.verify_second_factor(world.beech_identity, enrolment.code(), tenant=None, ip="10.0.0.2")


def test_the_pending_second_step_expires(browser, world, frozen_clock):
    enrolment = enrol(world.beech_identity)
    browser.login("beech", "pat.lee@example.org")
    token = csrf_token_from(browser.get("/t/beech/login/verify").get_data(as_text=True))
    frozen_clock.advance(timedelta(minutes=11))
    response = browser.client.post("/t/beech/login/verify", data={"csrf_token": token, "code": enrolment.code()})
    assert response.status_code == 302 and response.headers["Location"].startswith("/t/beech/login")
    assert sign_in_of(browser.client) is None


def test_a_pending_second_step_belongs_to_its_tenant(browser, world, frozen_clock):
    enrol(world.sso_user)
    browser.login("oakwood", "sam.jones@example.org", provider="sso")
    response = browser.get("/t/oakwood-staffsafe/login/verify")
    assert response.status_code == 302 and "/t/oakwood-staffsafe/login" in response.headers["Location"]


def test_password_is_still_checked_first(browser, world, frozen_clock):
    enrol(world.beech_identity)
    response = browser.login("beech", "pat.lee@example.org", "wrong-password")
    assert "Your email address or password was incorrect" in response.get_data(as_text=True)
    assert pending_of(browser.client) is None


def test_account_without_a_key_signs_in_with_password_only(browser, world):
    response = browser.login("beech", "pat.lee@example.org", PASSWORD)
    assert response.headers["Location"] == "/t/beech/"
    assert sign_in_of(browser.client).amr == ["pwd"]


def test_the_lock_message_says_how_long_the_longest_used_up_limit_lasts(app, world, frozen_clock):
    app.config["THROTTLE_RULES"] = {"mfa-account": "5 per 5 minutes; 2 per day"}
    enrolment = enrol(world.beech_identity)
    for _ in range(2):
        with pytest.raises(mfa.InvalidCode):
            mfa.verify_second_factor(world.beech_identity, wrong_code(enrolment), tenant=None, ip=None)
    with pytest.raises(RateLimited, match="Please wait 24 hours and try again, or enter one of your recovery codes"):
        mfa.verify_second_factor(world.beech_identity, enrolment.code(), tenant=None, ip=None)
