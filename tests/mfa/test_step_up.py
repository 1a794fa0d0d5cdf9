"""Step-up ("Elevate your Access"): a password-only sign-in adds the code alone, keeping auth_time."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import PASSWORD

from .conftest import enrol, sign_in_of


def test_step_up_asks_only_for_the_code_and_keeps_auth_time(browser, world, frozen_clock):
    browser.login("beech", "pat.lee@example.org", PASSWORD)
    signed_in_at = sign_in_of(browser.client).auth_time
    # The key was set up since (say, in another browser): this sign-in has the password only.
    enrolment = enrol(world.beech_identity)
    frozen_clock.advance(timedelta(minutes=5))

    page = browser.get("/t/beech/login/verify?next=/t/beech/%3Fsensitive%3D1")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Elevate your access" in html and 'name="password"' not in html
    assert "you do not need to enter your password again" in html

    response = browser.submit("/t/beech/login/verify?next=/t/beech/%3Fsensitive%3D1", {"code": enrolment.code()},
                              post_url="/t/beech/login/verify?next=/t/beech/%3Fsensitive%3D1")
    assert response.status_code == 302 and response.headers["Location"] == "/t/beech/?sensitive=1"
    row = sign_in_of(browser.client)
    assert row.auth_time == signed_in_at
    assert row.amr == ["pwd", "otp", "mfa"]


def test_step_up_without_a_key_sends_the_person_to_enrol(browser, world):
    browser.login("beech", "pat.lee@example.org", PASSWORD)
    response = browser.get("/t/beech/login/verify?next=/t/beech/")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/account/security?tenant=beech&next=")


def test_step_up_when_already_two_factor_goes_straight_on(browser, world, frozen_clock):
    enrolment = enrol(world.beech_identity)
    browser.login("beech", "pat.lee@example.org", PASSWORD)
    browser.submit("/t/beech/login/verify", {"code": enrolment.code()})
    response = browser.get("/t/beech/login/verify?next=/t/beech/")
    assert response.headers["Location"] == "/t/beech/"


def test_step_up_needs_a_sign_in_at_that_school(browser, world):
    response = browser.get("/t/beech/login/verify")
    assert response.status_code == 302 and response.headers["Location"].startswith("/t/beech/login")
