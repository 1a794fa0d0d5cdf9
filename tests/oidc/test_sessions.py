"""Who gets a code: single sign-on across a person's schools, never across schools they
do not belong to; prompt and max_age."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from .conftest import ISSUER, query_of


def test_sso_user_signed_in_at_oakwood_gets_a_staffsafe_code_without_a_password(
    signed_in_sso, staffsafe_rp, world
):
    tokens = staffsafe_rp.tokens()
    claims = staffsafe_rp.validate_id_token(tokens["id_token"], access_token=tokens["access_token"])
    assert claims["sub"] == world.sso_user.sub
    assert claims["tenant"] == "oakwood-staffsafe" and claims["roles"] == ["staff"]


def test_same_sso_account_has_one_subject_in_every_school(signed_in_sso, staffsafe_rp, oakwood_rp, world):
    a = staffsafe_rp.validate_id_token(staffsafe_rp.tokens()["id_token"])
    b = oakwood_rp.validate_id_token(oakwood_rp.tokens()["id_token"])
    assert a["sub"] == b["sub"] and a["tenant"] != b["tenant"]


def test_identity_user_of_beech_at_an_oakwood_client_gets_the_login_page_with_an_explanation(
    browser, oakwood_rp, world, frozen_clock
):
    browser.login("beech", "pat.lee@example.org")
    response = oakwood_rp.authorize()
    assert response.status_code == 302
    location = response.headers["Location"]
    assert urlsplit(location).path == "/t/oakwood/login"
    params = query_of(location)
    assert params["reason"] == "not_member" and params["next"].startswith("/authorize?")
    page = browser.get(location).get_data(as_text=True)
    assert "pat.lee@example.org" in page and "does not have access to Oakwood Primary School" in page


def test_cross_tenant_person_can_sign_in_with_the_right_account_and_continue(
    browser, oakwood_rp, world, frozen_clock
):
    browser.login("beech", "pat.lee@example.org")
    location = oakwood_rp.authorize().headers["Location"]
    next_url = query_of(location)["next"]
    response = browser.login("oakwood", "head@oakwood.example.org", next_url=next_url)
    response = browser.get(response.headers["Location"])
    assert "code" in query_of(response.headers["Location"])


def test_prompt_none_without_a_session_is_login_required(oakwood_rp, world):
    response = oakwood_rp.authorize(prompt="none")
    params = query_of(response.headers["Location"])
    assert response.headers["Location"].startswith(oakwood_rp.redirect_uri)
    assert params["error"] == "login_required" and params["state"] == "st-123" and params["iss"] == ISSUER


def test_prompt_none_cross_tenant_is_access_denied(browser, oakwood_rp, world, frozen_clock):
    browser.login("beech", "pat.lee@example.org")
    params = query_of(oakwood_rp.authorize(prompt="none").headers["Location"])
    assert params["error"] == "access_denied" and "code" not in params


def test_prompt_none_with_a_session_gives_a_code(signed_in_sso, staffsafe_rp):
    assert staffsafe_rp.code(prompt="none")


def test_deactivated_member_gets_no_code(browser, oakwood_rp, world, frozen_clock):
    from idp.extensions import db

    browser.login("oakwood", "head@oakwood.example.org")
    world.oakwood_admin.membership_in(world.oakwood.id).active = False
    db.session.commit()
    response = oakwood_rp.authorize()
    assert "code" not in query_of(response.headers["Location"])


def test_prompt_login_asks_for_the_password_again(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    frozen_clock.advance(timedelta(minutes=5))
    response = oakwood_rp.authorize(prompt="login")
    location = response.headers["Location"]
    assert urlsplit(location).path == "/t/oakwood/login"
    next_url = query_of(location)["next"]
    assert "prompt" not in query_of(next_url)
    # Still signed in (nothing ends before a new sign-in succeeds), but coming back without
    # logging in again gives no code.
    assert browser.get("/t/oakwood/").status_code == 200
    assert urlsplit(browser.get(next_url).headers["Location"]).path == "/t/oakwood/login"
    browser.login("oakwood", "head@oakwood.example.org", next_url=next_url)
    frozen_clock.advance(timedelta(seconds=3))
    response = browser.get(next_url)
    tokens = oakwood_rp.exchange(query_of(response.headers["Location"])["code"]).get_json()
    claims = oakwood_rp.validate_id_token(tokens["id_token"])
    assert claims["auth_time"] == claims["iat"] - 3


def test_max_age_exceeded_asks_for_the_password_again(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    frozen_clock.advance(timedelta(minutes=10))
    assert oakwood_rp.code(max_age="3600")
    response = oakwood_rp.authorize(max_age="300")
    location = response.headers["Location"]
    assert urlsplit(location).path == "/t/oakwood/login"
    assert "max_age" not in query_of(query_of(location)["next"])


def test_max_age_with_prompt_none_is_login_required(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    frozen_clock.advance(timedelta(minutes=10))
    params = query_of(oakwood_rp.authorize(max_age="60", prompt="none").headers["Location"])
    assert params["error"] == "login_required"


def test_bad_max_age_is_invalid_request(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    params = query_of(oakwood_rp.authorize(max_age="soon").headers["Location"])
    assert params["error"] == "invalid_request"


def test_authorize_accepts_post(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    url = oakwood_rp.authorize_url()
    response = browser.client.post("/authorize", data=query_of(url))
    assert "code" in query_of(response.headers["Location"])


def test_second_factor_required_redirects_to_the_verify_step(browser, oakwood_rp, world, frozen_clock):
    from idp.extensions import db
    from tests.mfa.conftest import enrol

    browser.login("oakwood", "head@oakwood.example.org")
    world.oakwood.require_2fa = "everyone"  # set since this browser signed in with its password
    db.session.commit()
    location = oakwood_rp.authorize().headers["Location"]
    assert urlsplit(location).path == "/account/security"
    assert query_of(location)["tenant"] == "oakwood"

    world.oakwood.require_2fa = "off"
    enrol(world.oakwood_admin)  # a key set up since, in another browser: this sign-in lacks it
    location = oakwood_rp.authorize().headers["Location"]
    assert urlsplit(location).path == "/t/oakwood/login/verify"
    assert query_of(location)["next"].startswith("/authorize?")
    assert query_of(oakwood_rp.authorize(prompt="none").headers["Location"])["error"] == "interaction_required"


def test_2fa_acr_request_reaches_the_mfa_policy(browser, oakwood_rp, world, frozen_clock, monkeypatch):
    from idp.accounts import mfa

    seen = {}
    monkeypatch.setattr(mfa, "sign_in_requirement",
                        lambda account, membership, amr, acr=False: seen.update(acr=acr, amr=amr) or None)
    browser.login("oakwood", "head@oakwood.example.org")
    oakwood_rp.code(acr_values=mfa.ACR_2FA)
    assert seen == {"acr": mfa.ACR_2FA, "amr": ("pwd",)}


def test_a_sign_in_ended_everywhere_gets_the_login_page_not_a_code(browser, oakwood_rp, world, frozen_clock):
    from idp.extensions import db

    browser.login("oakwood", "head@oakwood.example.org")
    assert oakwood_rp.code()
    from idp.accounts import sessions

    sessions.end_of_account(world.oakwood_admin, reason="signed out everywhere")  # e.g. a password change elsewhere
    db.session.commit()
    location = oakwood_rp.authorize().headers["Location"]
    assert urlsplit(location).path == "/t/oakwood/login" and "code" not in query_of(location)


def test_a_retired_account_gets_no_code(browser, oakwood_rp, world, frozen_clock):
    from idp.extensions import db

    browser.login("oakwood", "head@oakwood.example.org")
    world.oakwood_admin.retired = True
    db.session.commit()
    location = oakwood_rp.authorize().headers["Location"]
    assert urlsplit(location).path == "/t/oakwood/login" and "code" not in query_of(location)


def test_a_2fa_policy_set_in_another_process_applies_to_the_next_authorize(browser, oakwood_rp, world, frozen_clock):
    # The client (and its tenant) are cached per process for a few seconds; the policy that
    # decides whether a code may be issued is read with the code's own statement instead.
    from sqlalchemy import update

    from idp.extensions import db
    from idp.models import Tenant

    browser.login("oakwood", "head@oakwood.example.org")
    assert oakwood_rp.code()  # the client and its tenant are now in this process's cache
    db.session.execute(update(Tenant).where(Tenant.id == world.oakwood.id).values(require_2fa="admins"))
    db.session.commit()
    location = oakwood_rp.authorize().headers["Location"]
    assert urlsplit(location).path == "/account/security" and "code" not in query_of(location)
