"""Account settings > Security keys: set up a key with a QR code, confirm it with a code, recovery codes."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

import pyotp
from cryptography.fernet import Fernet

from idp import clock
from idp.accounts import mfa
from idp.extensions import db
from idp.models import MfaDevice, RecoveryCode
from tests.conftest import PASSWORD, csrf_token_from

from .conftest import DEVICE_RE, RECOVERY_RE, SECRET_RE, audit_events, enrol


def start_enrolment(browser, name="My phone", query="?tenant=beech"):
    page = browser.get("/account/security" + query)
    token = csrf_token_from(page.get_data(as_text=True))
    response = browser.client.post("/account/security/devices" + query, data={"csrf_token": token, "name": name})
    assert response.status_code == 302
    confirm_url = response.headers["Location"]
    html = browser.get(confirm_url).get_data(as_text=True)
    secret = SECRET_RE.search(html).group(1).replace(" ", "")
    return confirm_url, html, secret


def confirm(browser, confirm_url, code):
    return browser.submit(confirm_url, {"code": code}, post_url=confirm_url)


def test_security_page_asks_a_signed_out_person_to_sign_in_at_their_school(client, world):
    response = client.get("/account/security?tenant=beech")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/t/beech/login?next=")
    # Without a school's address: the platform's own sign-in, then back.
    response = client.get("/account/security")
    assert response.status_code == 302 and response.headers["Location"] == "/login?next=/account/security"


def test_security_page_lists_no_keys_and_offers_to_add_my_phone(browser, world):
    browser.login("beech", "pat.lee@example.org")
    html = browser.get("/account/security?tenant=beech").get_data(as_text=True)
    assert "Security keys" in html and "Beech Academy" in html
    assert "You have not set up an authenticator app yet" in html
    assert 'value="My phone"' in html


def test_enrolment_shows_a_server_made_qr_code_and_the_secret_for_manual_entry(browser, world, frozen_clock):
    browser.login("beech", "pat.lee@example.org")
    confirm_url, html, secret = start_enrolment(browser)
    assert "<svg" in html and "QR code to scan with your authenticator app" in html
    assert "style=" not in html  # the CSP forbids inline styles
    assert "<img" not in html and "chart.googleapis" not in html  # no outside service sees the secret
    assert len(secret) == 32
    assert "pat.lee@example.org" in html and "Issuer: CPOMS" in html
    device = db.session.get(MfaDevice, int(DEVICE_RE.search(confirm_url).group(1)))
    uri = mfa.provisioning_uri(world.beech_identity, device)
    assert uri.startswith("otpauth://totp/CPOMS:pat.lee%40example.org?") and "issuer=CPOMS" in uri
    assert f"secret={secret}" in uri


def test_wrong_code_does_not_complete_enrolment(browser, world, frozen_clock):
    browser.login("beech", "pat.lee@example.org")
    confirm_url, _, secret = start_enrolment(browser)
    wrong = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
    response = confirm(browser, confirm_url, wrong)
    assert response.status_code == 400
    assert "The code you entered is incorrect" in response.get_data(as_text=True)
    assert not mfa.is_enrolled(world.beech_identity)
    response = confirm(browser, confirm_url, "12ab")
    assert "Enter the 6-digit code shown in your authenticator app" in response.get_data(as_text=True)


def test_valid_code_completes_enrolment_and_shows_ten_recovery_codes_once(browser, world, frozen_clock):
    browser.login("beech", "pat.lee@example.org")
    confirm_url, _, secret = start_enrolment(browser)
    response = confirm(browser, confirm_url, pyotp.TOTP(secret).at(clock.timestamp()))
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Your authenticator app is set up" in html and "This is the only time they are shown" in html
    codes = RECOVERY_RE.findall(html)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert mfa.is_enrolled(world.beech_identity)
    assert [d.name for d in mfa.confirmed_devices(world.beech_identity)] == ["My phone"]
    assert audit_events("mfa.enrolled")

    stored = {r.code_hash for r in db.session.scalars(db.select(RecoveryCode))}
    assert stored == {hashlib.sha256(c.replace("-", "").encode()).hexdigest() for c in codes}

    page = browser.get("/account/security?tenant=beech").get_data(as_text=True)
    assert "My phone" in page and ">Remove" in page
    assert not RECOVERY_RE.findall(page)
    assert "<strong>10</strong> unused recovery codes" in page


def test_a_second_key_does_not_replace_the_recovery_codes(browser, world, frozen_clock):
    first = enrol(world.beech_identity)
    browser.login("beech", "pat.lee@example.org")
    browser.submit("/t/beech/login/verify", {"code": first.code()})
    confirm_url, _, secret = start_enrolment(browser, name="Work tablet")
    response = confirm(browser, confirm_url, pyotp.TOTP(secret).at(clock.timestamp()))
    assert response.status_code == 302
    page = browser.get(response.headers["Location"]).get_data(as_text=True)
    assert "Authenticator app ‘Work tablet’ added" in page
    assert "My phone" in page and "Work tablet" in page
    assert mfa.remaining_recovery_codes(world.beech_identity) == 10


def test_an_abandoned_enrolment_does_not_count(world, frozen_clock):
    mfa.start_enrolment(world.beech_identity, "Old phone")
    assert not mfa.is_enrolled(world.beech_identity)
    mfa.start_enrolment(world.beech_identity, "New phone")
    assert db.session.scalar(db.select(db.func.count(MfaDevice.id))) == 1


def test_regenerating_recovery_codes_needs_a_current_code(browser, world, frozen_clock):
    enrolment = enrol(world.beech_identity)
    browser.login("beech", "pat.lee@example.org")
    browser.submit("/t/beech/login/verify", {"code": enrolment.code()})
    frozen_clock.advance(timedelta(seconds=30))
    refused = browser.submit("/account/security/recovery-codes", {"code": "123456" if enrolment.code() != "123456" else "654321"})
    assert refused.status_code == 400 and "incorrect" in refused.get_data(as_text=True)
    response = browser.submit("/account/security/recovery-codes", {"code": enrolment.code()})
    new_codes = RECOVERY_RE.findall(response.get_data(as_text=True))
    assert len(new_codes) == 10 and "Your previous recovery codes no longer work" in response.get_data(as_text=True)
    old = enrolment.recovery_codes[0]
    assert old not in new_codes
    try:
        mfa.verify_second_factor(world.beech_identity, old, tenant=None, ip=None)
        raise AssertionError("an old recovery code still worked")
    except mfa.InvalidCode:
        pass
    assert mfa.verify_second_factor(world.beech_identity, new_codes[0], tenant=None, ip=None) == "recovery"


def test_secrets_are_stored_encrypted_with_a_key_derived_from_the_secret_key(app, world, frozen_clock):
    enrolment = enrol(world.beech_identity)
    stored = db.session.get(MfaDevice, enrolment.device.id).secret_encrypted
    assert enrolment.secret not in stored
    assert base64.b32encode(base64.b32decode(enrolment.secret)).decode() not in stored
    codes = [r.code_hash for r in db.session.scalars(db.select(RecoveryCode))]
    assert all(c.replace("-", "") not in " ".join(codes) for c in enrolment.recovery_codes)


def test_secrets_use_the_configured_mfa_key(app, world, frozen_clock):
    from dataclasses import replace

    key = Fernet.generate_key().decode()
    app.config["SETTINGS"] = replace(app.config["SETTINGS"], mfa_key=key)
    enrolment = enrol(world.beech_identity)
    stored = db.session.get(MfaDevice, enrolment.device.id).secret_encrypted
    assert Fernet(key).decrypt(stored.encode()).decode() == enrolment.secret


def test_enrolment_pages_only_show_your_own_devices(browser, world, frozen_clock):
    other = mfa.start_enrolment(world.oakwood_admin, "Head's phone")
    browser.login("beech", "pat.lee@example.org", PASSWORD)
    response = browser.get(f"/account/security/devices/{other.id}/confirm")
    assert response.status_code == 404
    assert browser.get(f"/account/security/devices/{other.id}/remove").status_code == 404


def test_a_password_only_sign_in_cannot_add_a_key_to_an_enrolled_account(browser, world, frozen_clock):
    browser.login("beech", "pat.lee@example.org")  # before the key existed: password only
    enrolment = enrol(world.beech_identity)
    page = browser.get("/account/security?tenant=beech")
    token = csrf_token_from(page.get_data(as_text=True))
    response = browser.client.post("/account/security/devices?tenant=beech", data={"csrf_token": token, "name": "Thief"})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/t/beech/login/verify?next=")
    assert len(mfa.confirmed_devices(world.beech_identity)) == 1
    # With the code given (step-up), adding a key works.
    verify = response.headers["Location"]
    back = browser.submit(verify, {"code": enrolment.code()}, post_url=verify)
    assert back.headers["Location"].startswith("/account/security?tenant=beech")
    confirm_url, _, secret = start_enrolment(browser, name="Work tablet")
    assert confirm(browser, confirm_url, pyotp.TOTP(secret).at(clock.timestamp())).status_code == 302
    assert len(mfa.confirmed_devices(world.beech_identity)) == 2
