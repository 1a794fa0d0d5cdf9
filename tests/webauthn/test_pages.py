"""Security keys through the pages: the acr_values step-up asks for a key, "Sign in with a
passkey", and odd input answered with a 400, never a 500."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import delete, select

from idp.accounts import mfa, security_keys
from idp.extensions import db
from idp.models import RecoveryCode
from tests.conftest import csrf_token_from as _any_csrf_token
from tests.mfa.conftest import enrol, sign_in_of
from tests.mfa.test_oidc import id_token_claims
from tests.oidc.conftest import RelyingParty

from .authenticator import SoftKey
from .conftest import ORIGIN, register


def csrf_token_from(html: str) -> str:
    """The page's CSRF token, from whichever of its forms has it (the key forms' fields are prefixed)."""
    match = re.search(r'name="(?:key-)?csrf_token"[^>]*value="([^"]+)"', html)
    return match.group(1) if match else _any_csrf_token(html)


def options(browser, url, page_html):
    reply = browser.client.post(url, headers={"X-CSRFToken": csrf_token_from(page_html)})
    assert reply.status_code == 200, reply.get_data(as_text=True)
    return reply.get_json()


def add_key_through_the_page(browser, *, passkey=False, name="Blue USB key", tenant="beech", key=None):
    page = browser.get(f"/account/security?tenant={tenant}").get_data(as_text=True)
    assert 'data-webauthn="create"' in page
    key = key or SoftKey()
    created = key.create(options(browser, f"/account/security/keys/options?tenant={tenant}"
                                 + ("&passkey=1" if passkey else ""), page), ORIGIN)
    reply = browser.client.post(f"/account/security/keys?tenant={tenant}", data={
        "key-csrf_token": csrf_token_from(page), "key-name": name, "key-credential": json.dumps(created)})
    assert reply.status_code in (200, 302), reply.get_data(as_text=True)
    return key


def test_the_phishing_resistant_level_asks_for_a_key_and_reaches_the_id_token(browser, client, world, frozen_clock):
    enrolment = enrol(world.beech_identity)
    rp = RelyingParty(client, world.beech_app, world.beech_app_secret)
    browser.login("beech", "pat.lee@example.org")
    browser.submit("/t/beech/login/verify", {"code": enrolment.code()})
    key = add_key_through_the_page(browser)
    # Registering a key does not by itself raise the level.
    assert sign_in_of(client).acr == mfa.ACR_2FA
    frozen_clock.advance(timedelta(minutes=1))
    auth_time = sign_in_of(client).auth_time

    step_up = rp.authorize(acr_values=mfa.ACR_PHISHING_RESISTANT).headers["Location"]
    assert urlsplit(step_up).path == "/t/beech/login/verify" and parse_qs(urlsplit(step_up).query)["key"] == ["1"]
    page = browser.get(step_up).get_data(as_text=True)
    assert "Use your security key" in page and 'name="code"' not in page
    answer = key.get(options(browser, "/t/beech/login/verify/key-options?key=1", page), ORIGIN)
    back = client.post(step_up, data={"key-csrf_token": csrf_token_from(page), "key-credential": json.dumps(answer)})
    assert back.status_code == 302, back.get_data(as_text=True)
    claims = id_token_claims(rp, back.headers["Location"])
    assert claims["acr"] == mfa.ACR_PHISHING_RESISTANT and "hwk" in claims["amr"] and "mfa" in claims["amr"]
    assert claims["auth_time"] == auth_time


def test_an_app_code_does_not_meet_the_phishing_resistant_level(browser, client, world, frozen_clock):
    enrolment = enrol(world.beech_identity)
    rp = RelyingParty(client, world.beech_app, world.beech_app_secret)
    browser.login("beech", "pat.lee@example.org")
    browser.submit("/t/beech/login/verify", {"code": enrolment.code()})
    location = rp.authorize(acr_values=mfa.ACR_PHISHING_RESISTANT).headers["Location"]
    # No key yet: register one first.
    assert location.startswith("/account/security?tenant=beech") and "key=1" in location


def test_the_security_page_lists_each_key_with_its_kind_dates_and_actions(browser, world, frozen_clock):
    browser.login("beech", "pat.lee@example.org")
    add_key_through_the_page(browser, name="Blue USB key")
    register(world.beech_identity, passkey=True, name="My phone")
    page = browser.get("/account/security?tenant=beech").get_data(as_text=True)
    table = page[page.index('<table id="keys">'):page.index("</table>")]
    rows = re.findall(r"<tr>\s*<td>([^<]+)</td>\s*<td>([^<]+)</td>\s*<td>([^<]+)</td>\s*<td>([^<]+)</td>", table)
    added = frozen_clock.now().strftime("%-d %B %Y")
    assert rows == [("Blue USB key", "Security key", added, "Not used yet"), ("My phone", "Passkey", added, "Not used yet")]
    # Rename and Remove stay in this school's pages (the way back, the school's policy).
    assert re.search(r'href="/account/security/keys/\d+/rename\?tenant=beech">Rename', table)
    assert re.search(r'<form method="get" action="/account/security/keys/\d+/remove">\s*'
                     r'<input type="hidden" name="tenant" value="beech">', table)
    assert "credential_id" not in table and "public_key" not in table


def test_a_key_as_the_second_step_after_the_password(browser, client, world, frozen_clock):
    browser.login("beech", "pat.lee@example.org")
    key = add_key_through_the_page(browser)
    browser.client.post("/logout", data={"csrf_token": csrf_token_from(browser.get("/t/beech/").get_data(as_text=True))})
    assert browser.login("beech", "pat.lee@example.org").headers["Location"] == "/t/beech/login/verify"
    page = browser.get("/t/beech/login/verify").get_data(as_text=True)
    assert "Use security key" in page and 'name="code"' in page  # recovery codes still work
    answer = key.get(options(browser, "/t/beech/login/verify/key-options", page), ORIGIN)
    done = client.post("/t/beech/login/verify", data={"key-csrf_token": csrf_token_from(page),
                                                      "key-credential": json.dumps(answer)})
    assert done.status_code == 302
    assert sign_in_of(client).amr == ["pwd", "hwk", "mfa"]


def test_sign_in_with_a_passkey_from_the_login_page(browser, client, world, frozen_clock):
    browser.login("beech", "pat.lee@example.org")
    key = add_key_through_the_page(browser, passkey=True, name="My phone")
    client.post("/logout", data={"csrf_token": csrf_token_from(browser.get("/t/beech/").get_data(as_text=True))})

    page = browser.get("/t/beech/login").get_data(as_text=True)
    assert "Sign in with a passkey" in page
    answer = key.get(options(browser, "/t/beech/login/passkey/options?provider=identity", page), ORIGIN)
    done = client.post("/t/beech/login/passkey", data={"csrf_token": csrf_token_from(page), "provider": "identity",
                                                       "next": "", "credential": json.dumps(answer)})
    assert done.status_code == 302 and done.headers["Location"] == "/t/beech/"
    row = sign_in_of(client)
    assert row.amr == ["hwk", "user", "mfa"] and row.acr == mfa.ACR_PHISHING_RESISTANT


def test_odd_passkey_answers_get_a_400_with_a_message(browser, client, world):
    page = browser.get("/t/beech/login").get_data(as_text=True)
    for garbage in ("{", "[1]", json.dumps({"id": 1, "response": "x"}), "x" * 70_000):
        reply = client.post("/t/beech/login/passkey", data={"csrf_token": csrf_token_from(page), "provider": "identity",
                                                            "credential": garbage})
        assert reply.status_code == 400
        assert "security key response" in reply.get_data(as_text=True) or "passkey" in reply.get_data(as_text=True)


def test_options_need_the_csrf_token(browser, client, world):
    assert client.post("/t/beech/login/passkey/options").status_code == 400


def test_a_person_with_only_a_key_and_no_codes_left_gets_new_codes_with_the_key(browser, client, world, frozen_clock):
    browser.login("beech", "pat.lee@example.org")
    key = add_key_through_the_page(browser)
    db.session.execute(delete(RecoveryCode))  # every recovery code used up
    db.session.commit()
    page = browser.get("/account/security/recovery-codes?tenant=beech").get_data(as_text=True)
    assert 'data-webauthn="get"' in page and 'name="code"' not in page  # no app, no codes: the key is the way

    refused = client.post("/account/security/recovery-codes?tenant=beech",
                          data={"key-csrf_token": csrf_token_from(page), "key-credential": "{"})
    assert refused.status_code == 400 and "security key response" in refused.get_data(as_text=True)
    assert mfa.remaining_recovery_codes(world.beech_identity) == 0

    answer = key.get(options(browser, "/account/security/recovery-codes/key-options?tenant=beech", page), ORIGIN)
    done = client.post("/account/security/recovery-codes?tenant=beech",
                       data={"key-csrf_token": csrf_token_from(page), "key-credential": json.dumps(answer)})
    assert done.status_code == 200, done.get_data(as_text=True)
    db.session.expire_all()
    assert mfa.remaining_recovery_codes(world.beech_identity) == mfa.RECOVERY_CODE_COUNT
    # The same answer does not work twice.
    again = client.post("/account/security/recovery-codes?tenant=beech",
                        data={"key-csrf_token": csrf_token_from(page), "key-credential": json.dumps(answer)})
    assert again.status_code == 400


def signed_in_with_an_app_code(browser, world):
    """Pat, who has a security key and an authenticator app, signs in with the password and an
    app code: what a look-alike site relaying both in real time would get."""
    enrolment = enrol(world.beech_identity)
    key, stored, _ = register(world.beech_identity)
    browser.login("beech", "pat.lee@example.org")
    assert browser.submit("/t/beech/login/verify", {"code": enrolment.code()}).status_code == 302
    return key, stored


def test_a_relayed_app_code_cannot_add_a_key_where_the_account_has_one(browser, client, world, frozen_clock):
    """A key is added only from a sign-in that used one of the account's keys in the last few
    minutes: otherwise a password and code phished in real time add the thief's own passkey,
    which then reaches the phishing-resistant level."""
    key, _ = signed_in_with_an_app_code(browser, world)
    page = browser.get("/account/security?tenant=beech").get_data(as_text=True)
    assert 'data-webauthn="create"' not in page and 'id="confirm-to-add-key"' in page
    refused = browser.client.post("/account/security/keys/options?tenant=beech",
                                  headers={"X-CSRFToken": csrf_token_from(page)})
    assert refused.status_code == 409 and "Confirm it is you" in refused.get_json()["error"]
    thief = SoftKey()
    posted = browser.client.post("/account/security/keys?tenant=beech", data={
        "key-csrf_token": csrf_token_from(page), "key-name": "Thief", "key-credential": json.dumps({"id": "x"})})
    confirm = posted.headers["Location"]
    assert urlsplit(confirm).path == "/t/beech/login/verify"
    assert parse_qs(urlsplit(confirm).query)["key"] == ["1"] and parse_qs(urlsplit(confirm).query)["again"] == ["1"]
    assert len(security_keys.keys_of(world.beech_identity)) == 1

    # The owner touches their key: then the new one can be added (and they are told by mail).
    confirming = browser.get(confirm).get_data(as_text=True)
    assert "Confirm it is you" in confirming and 'name="code"' not in confirming
    assert "I have lost my security key" in confirming  # the way out is named
    assert '<a href="/account/security?tenant=beech">Cancel and go back</a>' in confirming
    answer = key.get(options(browser, "/t/beech/login/verify/key-options?key=1", confirming), ORIGIN)
    done = client.post(confirm, data={"key-csrf_token": csrf_token_from(confirming), "key-credential": json.dumps(answer)})
    assert done.status_code == 302 and done.headers["Location"].startswith("/account/security?tenant=beech")
    add_key_through_the_page(browser, name="Spare key", key=thief)
    assert [k.name for k in security_keys.keys_of(world.beech_identity)] == ["Blue USB key", "Spare key"]


def test_a_confirmation_counts_for_fifteen_minutes(browser, world, frozen_clock):
    enrolment = enrol(world.beech_identity)
    browser.login("beech", "pat.lee@example.org")
    browser.submit("/t/beech/login/verify", {"code": enrolment.code()})
    frozen_clock.advance(timedelta(seconds=mfa.FRESH_SECONDS + 1))
    page = browser.get("/account/security?tenant=beech").get_data(as_text=True)
    assert 'id="confirm-to-add-key"' in page
    confirm = browser.client.post("/account/security/keys?tenant=beech", data={
        "key-csrf_token": csrf_token_from(page), "key-name": "Blue", "key-credential": "{}"}).headers["Location"]
    assert urlsplit(confirm).path == "/t/beech/login/verify" and "key" not in parse_qs(urlsplit(confirm).query)
    frozen_clock.advance(timedelta(seconds=31))
    assert browser.submit(confirm, {"code": enrolment.code()}, post_url=confirm).status_code == 302
    add_key_through_the_page(browser)
    assert len(security_keys.keys_of(world.beech_identity)) == 1


def test_removing_a_key_needs_a_key_used_just_now(browser, world, frozen_clock):
    _, stored = signed_in_with_an_app_code(browser, world)
    register(world.beech_identity, name="Spare key")
    refused = browser.get(f"/account/security/keys/{stored.id}/remove?tenant=beech")
    assert refused.status_code == 302 and "key=1" in refused.headers["Location"]
    assert "again=1" in refused.headers["Location"]


def test_adding_and_removing_a_key_mails_the_person(browser, world, frozen_clock, outbox):
    browser.login("beech", "pat.lee@example.org")
    add_key_through_the_page(browser, name="Blue USB key")
    added = outbox.last("pat.lee@example.org")
    assert added["Subject"] == "Security key added to your CPOMS account"
    text = outbox.text(added)
    assert '"Blue USB key" was added' in text and "Forgotten your password" in text
    assert "/account/security?tenant=beech" in text
    stored = security_keys.keys_of(world.beech_identity)[0]
    security_keys.remove_key(world.beech_identity, stored, tenant=world.beech, ip=None)
    assert outbox.last("pat.lee@example.org")["Subject"] == "Security key removed from your CPOMS account"


def test_too_many_passkey_attempts_from_one_address_are_slowed(app, browser, world):
    app.config["THROTTLE_RULES"] = {"passkey-ip": "3 per minute"}
    app.config["SETTINGS"] = replace(app.config["SETTINGS"], ratelimits_enabled=True)
    page = browser.get("/t/beech/login").get_data(as_text=True)
    token = csrf_token_from(page)
    answers = [browser.client.post("/t/beech/login/passkey/options?provider=identity", headers={"X-CSRFToken": token})
               for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert "too many passkey sign-ins" in answers[-1].get_json()["error"]
    refused = browser.client.post("/t/beech/login/passkey", data={"csrf_token": token, "provider": "identity",
                                                                  "next": "", "credential": "{}"})
    assert refused.status_code == 429 and "too many passkey sign-ins" in refused.get_data(as_text=True)
    # Another school's login page, from the same address, is not held up.
    other = browser.get("/t/oakwood/login").get_data(as_text=True)
    assert browser.client.post("/t/oakwood/login/passkey/options?provider=identity",
                               headers={"X-CSRFToken": csrf_token_from(other)}).status_code == 200


def test_an_administrators_reset_ends_every_sign_in_and_tells_the_person(browser, world, frozen_clock, outbox):
    """After a reset the account has no second factor, so its next one is set up from a sign-in:
    that must be a new one, not a sign-in a phisher may still hold."""
    from idp.admin import service
    from idp.extensions import db as _db

    signed_in_with_an_app_code(browser, world)
    member = world.beech_identity.membership_in(world.beech.id)
    service.reset_second_factor(world.beech, member.id, actor=None, ip=None)
    _db.session.commit()
    assert not security_keys.keys_of(world.beech_identity) and not mfa.is_enrolled(world.beech_identity)
    gone = browser.get("/account/security?tenant=beech")
    assert gone.status_code == 302 and "/login" in gone.headers["Location"]
    told = outbox.last("pat.lee@example.org")
    assert told["Subject"] == "Two-step verification reset on your CPOMS account"
    assert "Beech Academy reset the two-step verification" in outbox.text(told)


def test_with_a_key_new_recovery_codes_need_the_key(browser, world, frozen_clock):
    """Ten lasting codes are not to be had for an app code a look-alike site relayed."""
    from idp.models import RecoveryCode as _Codes

    signed_in_with_an_app_code(browser, world)
    page = browser.get("/account/security/recovery-codes?tenant=beech").get_data(as_text=True)
    assert 'data-webauthn="get"' in page and 'name="code"' not in page
    before = {c.id for c in db.session.scalars(select(_Codes))}
    frozen_clock.advance(timedelta(seconds=31))
    enrolment_code = mfa.device_secret(mfa.confirmed_devices(world.beech_identity)[0])
    import pyotp

    refused = browser.client.post("/account/security/recovery-codes?tenant=beech", data={
        "csrf_token": csrf_token_from(page), "code": pyotp.TOTP(enrolment_code).at(frozen_clock.now())})
    assert refused.status_code == 403 and "use it to make new recovery codes" in refused.get_data(as_text=True)
    db.session.expire_all()
    assert {c.id for c in db.session.scalars(select(_Codes))} == before
