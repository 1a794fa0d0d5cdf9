"""What relying parties see of the second factor: acr and amr in the ID token, step-up via
acr_values keeping auth_time, and clients closed to a member who still has to enrol."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pyotp

from idp import clock
from idp.accounts import mfa
from idp.extensions import db
from tests.oidc.conftest import RelyingParty

from .conftest import SECRET_RE, enrol


def id_token_claims(rp, location):
    """Finish the flow from an /authorize URL the browser is sent back to."""
    response = rp.http.get(location)
    assert response.status_code == 302 and response.headers["Location"].startswith(rp.redirect_uri), \
        response.headers.get("Location")
    code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
    tokens = rp.exchange(code).get_json()
    return rp.validate_id_token(tokens["id_token"])


def test_id_token_after_a_login_with_a_code_has_pwd_otp_mfa_and_the_2fa_acr(browser, client, world, frozen_clock):
    enrolment = enrol(world.beech_identity)
    rp = RelyingParty(client, world.beech_app, world.beech_app_secret)
    login = rp.authorize().headers["Location"]
    assert login.startswith("/t/beech/login")
    next_url = parse_qs(urlsplit(login).query)["next"][0]
    assert browser.login("beech", "pat.lee@example.org", next_url=next_url).headers["Location"] == "/t/beech/login/verify"
    back = browser.submit("/t/beech/login/verify", {"code": enrolment.code()}).headers["Location"]
    assert back == next_url
    claims = id_token_claims(rp, back)
    assert set(claims["amr"]) == {"pwd", "otp", "mfa"}
    assert claims["acr"] == mfa.ACR_2FA


def test_a_long_state_survives_the_second_step(browser, client, world, frozen_clock):
    """An app's long `state` makes a long return address; the pending second step keeps it whole
    (PostgreSQL refused one over 2000 characters)."""
    enrolment = enrol(world.beech_identity)
    rp = RelyingParty(client, world.beech_app, world.beech_app_secret)
    state = "s" * 2500
    next_url = parse_qs(urlsplit(rp.authorize(state=state).headers["Location"]).query)["next"][0]
    assert len(next_url) > 2500
    assert browser.login("beech", "pat.lee@example.org", next_url=next_url).headers["Location"] == "/t/beech/login/verify"
    back = browser.submit("/t/beech/login/verify", {"code": enrolment.code()}).headers["Location"]
    assert back == next_url
    response = rp.http.get(back)
    assert parse_qs(urlsplit(response.headers["Location"]).query)["state"] == [state]


def test_step_up_through_acr_values_asks_for_the_code_only_and_keeps_auth_time(browser, client, world, frozen_clock):
    rp = RelyingParty(client, world.beech_app, world.beech_app_secret)
    browser.login("beech", "pat.lee@example.org")
    first = id_token_claims(rp, rp.authorize_url())
    assert first["acr"] == mfa.ACR_PASSWORD and first["amr"] == ["pwd"]
    enrolment = enrol(world.beech_identity)  # set up since, in another browser
    frozen_clock.advance(timedelta(minutes=10))

    step_up = rp.authorize(acr_values=mfa.ACR_2FA).headers["Location"]
    assert urlsplit(step_up).path == "/t/beech/login/verify"
    page = browser.get(step_up).get_data(as_text=True)
    assert "Elevate your access" in page and 'name="password"' not in page
    back = browser.submit(step_up, {"code": enrolment.code()}, post_url=step_up).headers["Location"]
    claims = id_token_claims(rp, back)
    assert claims["acr"] == mfa.ACR_2FA and set(claims["amr"]) == {"pwd", "otp", "mfa"}
    assert claims["auth_time"] == first["auth_time"]


def test_step_up_without_a_key_sends_the_person_to_enrol(browser, client, world, frozen_clock):
    rp = RelyingParty(client, world.beech_app, world.beech_app_secret)
    browser.login("beech", "pat.lee@example.org")
    location = rp.authorize(acr_values=mfa.ACR_2FA).headers["Location"]
    assert urlsplit(location).path == "/account/security"
    assert parse_qs(urlsplit(location).query)["tenant"] == ["beech"]


def test_a_member_who_must_enrol_reaches_no_client_until_enrolled(browser, client, world, frozen_clock):
    world.oakwood.require_2fa = "admins"
    db.session.commit()
    rp = RelyingParty(client, world.oakwood_app, world.oakwood_app_secret)
    next_url = parse_qs(urlsplit(rp.authorize().headers["Location"]).query)["next"][0]
    security = browser.login("oakwood", "head@oakwood.example.org", next_url=next_url).headers["Location"]
    assert urlsplit(security).path == "/account/security"
    # Skipping the enrolment page and going straight back to the client does not work.
    assert urlsplit(client.get(next_url).headers["Location"]).path == "/account/security"

    started = browser.submit(security, {"name": "My phone"},
                             post_url=security.replace("/account/security", "/account/security/devices"))
    confirm_url = started.headers["Location"]
    secret = SECRET_RE.search(browser.get(confirm_url).get_data(as_text=True)).group(1).replace(" ", "")
    done = browser.submit(confirm_url, {"code": pyotp.TOTP(secret).at(clock.timestamp())}, post_url=confirm_url)
    assert f'href="{next_url}"'.replace("&", "&amp;") in done.get_data(as_text=True)
    claims = id_token_claims(rp, next_url)
    assert claims["acr"] == mfa.ACR_2FA and "otp" in claims["amr"]
