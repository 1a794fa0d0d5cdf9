"""Security keys and passkeys: registration, the second step, passkey sign-in, challenges, the
counter, removal and the phishing-resistant level."""

from __future__ import annotations

import json
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from idp import clock
from idp.accounts import lifecycle, mfa, security_keys, sessions
from idp.errors import NotAllowed
from idp.extensions import db
from idp.models import Account, AuditEvent, BrowserSession, Membership, SecurityKey, Tenant

from ..mfa.conftest import enrol
from .authenticator import SoftKey
from .conftest import BINDING, ORIGIN, register


def events(name):
    db.session.expire_all()
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.event == name)))


def assertion(account, key, **kw):
    options = security_keys.second_factor_options(account, binding=kw.pop("binding", BINDING))
    return key.get(options, kw.pop("origin", ORIGIN), **kw)


def test_registration_keeps_the_public_key_and_gives_recovery_codes_the_first_time(world, frozen_clock):
    account = world.beech_identity
    key, stored, codes = register(account)
    assert stored.credential_id == key.id and stored.passkey is False and stored.name == "Blue USB key"
    assert len(codes) == mfa.RECOVERY_CODE_COUNT
    assert mfa.is_enrolled(account) and mfa.has_security_key(account)
    assert events("security_key.added")[0].detail["key"] == "Blue USB key"
    _, _, second_codes = register(account, name="Spare key")
    assert second_codes is None


def test_registration_options_use_the_issuers_host_and_attestation_none(world, frozen_clock):
    options = security_keys.registration_options(world.beech_identity, binding=BINDING, passkey=True)
    assert options["rp"]["id"] == "127.0.0.1"
    assert options["attestation"] == "none"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"


def test_a_key_works_as_the_second_factor(world, frozen_clock):
    account = world.beech_identity
    key, _, _ = register(account)
    amr = security_keys.verify_second_factor(account, assertion(account, key), binding=BINDING, tenant=None, ip=None)
    assert amr == ["hwk", "mfa"]
    assert mfa.acr_for(["pwd", *amr]) == mfa.ACR_PHISHING_RESISTANT
    assert events("security_key.used")
    db.session.expire_all()
    assert db.session.get(SecurityKey, security_keys.keys_of(account)[0].id).last_used_at is not None


def test_a_synced_passkey_is_a_software_key(world, frozen_clock):
    account = world.beech_identity
    key, _, _ = register(account, passkey=True, key=SoftKey(synced=True))
    amr = security_keys.verify_second_factor(account, assertion(account, key), binding=BINDING, tenant=None, ip=None)
    assert amr == ["swk", "mfa"]


def test_someone_elses_key_is_not_a_second_factor(world, frozen_clock):
    key, _, _ = register(world.beech_identity)
    other = world.oakwood_admin
    register(other)
    with pytest.raises(security_keys.KeyRefused):
        security_keys.verify_second_factor(other, assertion(other, key), binding=BINDING, tenant=None, ip=None)


def test_a_challenge_works_once(world, frozen_clock):
    account = world.beech_identity
    key, _, _ = register(account)
    response = assertion(account, key)
    security_keys.verify_second_factor(account, response, binding=BINDING, tenant=None, ip=None)
    db.session.commit()
    with pytest.raises(security_keys.KeyRefused, match="expired or was already used"):
        security_keys.verify_second_factor(account, response, binding=BINDING, tenant=None, ip=None)


def test_a_challenge_expires_after_five_minutes(world, frozen_clock):
    account = world.beech_identity
    key, _, _ = register(account)
    response = assertion(account, key)
    db.session.commit()
    frozen_clock.advance(timedelta(seconds=security_keys.CHALLENGE_SECONDS + 1))
    with pytest.raises(security_keys.KeyRefused, match="expired"):
        security_keys.verify_second_factor(account, response, binding=BINDING, tenant=None, ip=None)


def test_a_challenge_is_bound_to_the_browser_that_asked(world, frozen_clock):
    account = world.beech_identity
    key, _, _ = register(account)
    response = assertion(account, key, binding="x" * 43)
    db.session.commit()
    with pytest.raises(security_keys.KeyRefused, match="expired or was already used"):
        security_keys.verify_second_factor(account, response, binding=BINDING, tenant=None, ip=None)


def test_a_look_alike_origin_is_refused(world, frozen_clock):
    account = world.beech_identity
    key, _, _ = register(account)
    response = assertion(account, key, origin="https://cpoms-login.example")
    with pytest.raises(security_keys.KeyRefused, match="not accepted"):
        security_keys.verify_second_factor(account, response, binding=BINDING, tenant=None, ip=None)
    assert events("mfa.failed")


def test_a_counter_that_goes_backwards_is_refused_and_flagged(world, frozen_clock):
    account = world.beech_identity
    key, _, _ = register(account, key=SoftKey(counter=10))
    security_keys.verify_second_factor(account, assertion(account, key), binding=BINDING, tenant=None, ip=None)
    db.session.commit()
    with pytest.raises(security_keys.KeyRefused, match="could not be trusted"):
        security_keys.verify_second_factor(account, assertion(account, key, count=5), binding=BINDING, tenant=None,
                                           ip=None)
    flagged = events("security_key.clone_suspected")
    assert len(flagged) == 1 and flagged[0].detail["presented_count"] == 5
    assert flagged[0].detail["stored_count"] == 11


def test_a_key_that_does_not_count_keeps_working(world, frozen_clock):
    account = world.beech_identity
    key, _, _ = register(account, key=SoftKey(counter=None))
    for _ in range(2):
        security_keys.verify_second_factor(account, assertion(account, key), binding=BINDING, tenant=None, ip=None)
        db.session.commit()
    assert not events("security_key.clone_suspected")


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@pytest.mark.parametrize("garbage", [
    "", "not json", "[]", json.dumps({"id": 5}), json.dumps({"id": "x", "response": {}}),
    json.dumps({"id": "x", "response": {"clientDataJSON": "%%%"}}),
    "[" * 20_000 + "]" * 20_000,  # nested too deep for the JSON parser
    json.dumps({"id": "x", "response": {"clientDataJSON": _b64(b"[" * 20_000 + b"]" * 20_000)}}),
    json.dumps({"id": "a\u0000b", "response": {"clientDataJSON": _b64(b'{"challenge": "abc"}')}}),  # NUL
    json.dumps({"id": "a/b+c=", "response": {"clientDataJSON": _b64(b'{"challenge": "abc"}')}}),  # not base64url
])
def test_garbage_from_the_browser_is_refused_plainly(world, frozen_clock, garbage):
    account = world.beech_identity
    register(account)
    with pytest.raises(security_keys.KeyRefused):
        security_keys.verify_second_factor(account, garbage, binding=BINDING, tenant=None, ip=None)


def passkey_sign_in(tenant, provider, key, **kw):
    options = security_keys.passkey_options(tenant, provider, binding=BINDING, ip=None)
    return security_keys.sign_in_with_passkey(tenant, provider, key.get(options, ORIGIN, **kw), binding=BINDING,
                                              ip=None)


def test_a_passkey_signs_in_alone_with_two_factors(world, frozen_clock):
    key, _, _ = register(world.beech_identity, passkey=True)
    account, amr = passkey_sign_in(world.beech, "identity", key)
    assert account.id == world.beech_identity.id
    assert amr == ["hwk", "user", "mfa"]
    assert mfa.is_second_factor(amr) and mfa.acr_for(amr) == mfa.ACR_PHISHING_RESISTANT


def test_a_passkey_needs_user_verification(world, frozen_clock):
    key, _, _ = register(world.beech_identity, passkey=True)
    with pytest.raises(security_keys.KeyRefused):
        passkey_sign_in(world.beech, "identity", key, verified=False)


def test_a_passkey_registration_needs_user_verification(world, frozen_clock):
    options = security_keys.registration_options(world.beech_identity, binding=BINDING, passkey=True)
    with pytest.raises(security_keys.KeyRefused):
        security_keys.register(world.beech_identity, "Phone", SoftKey().create(options, ORIGIN, verified=False),
                               binding=BINDING, tenant=None, ip=None)


def test_a_second_factor_key_is_not_a_passkey(world, frozen_clock):
    key, _, _ = register(world.beech_identity, passkey=False)
    with pytest.raises(security_keys.KeyRefused, match="cannot sign you in here"):
        passkey_sign_in(world.beech, "identity", key)


def test_the_school_and_provider_decide_which_account_a_passkey_may_be(world, frozen_clock):
    key, _, _ = register(world.beech_identity, passkey=True)
    # Not a member of Oakwood; and not an SSO account.
    with pytest.raises(security_keys.KeyRefused):
        passkey_sign_in(world.oakwood, "identity", key)
    with pytest.raises(security_keys.KeyRefused):
        passkey_sign_in(world.beech, "sso", key)
    sso_key, _, _ = register(world.sso_user, passkey=True)
    account, _ = passkey_sign_in(world.staffsafe, "sso", sso_key)
    assert account.id == world.sso_user.id


def test_a_deactivated_member_cannot_sign_in_with_a_passkey(world, frozen_clock):
    key, _, _ = register(world.beech_identity, passkey=True)
    world.beech_identity.membership_in(world.beech.id).active = False
    db.session.commit()
    with pytest.raises(security_keys.KeyRefused):
        passkey_sign_in(world.beech, "identity", key)


def test_the_last_second_factor_stays_where_the_school_requires_one(world, frozen_clock):
    account = world.beech_identity
    world.beech.require_2fa = "everyone"
    _, stored, _ = register(account)
    assert mfa.removal_refusal(account, stored)
    with pytest.raises(NotAllowed):
        security_keys.remove_key(account, stored, tenant=None, ip=None)
    enrol(account)
    assert mfa.removal_refusal(account, stored) is None
    security_keys.remove_key(account, stored, tenant=None, ip=None)
    assert events("security_key.removed")


def test_the_last_key_stays_where_the_school_requires_one_for_admins(world, frozen_clock):
    admin = world.oakwood_admin
    world.oakwood.admins_phishing_resistant = True
    _, stored, _ = register(admin)
    enrol(admin)  # an app as well: still the only key
    assert "requires one" in mfa.removal_refusal(admin, stored)


def test_removing_the_only_key_ends_the_recovery_codes(world, frozen_clock):
    account = world.beech_identity
    _, stored, _ = register(account)
    security_keys.remove_key(account, stored, tenant=None, ip=None)
    assert mfa.remaining_recovery_codes(account) == 0 and not mfa.is_enrolled(account)


def test_renaming_a_key_is_audited_and_length_limited(world, frozen_clock):
    account = world.beech_identity
    _, stored, _ = register(account)
    security_keys.rename_key(account, stored, "Yellow key", tenant=None, ip=None)
    assert stored.name == "Yellow key" and events("security_key.renamed")
    from idp.errors import InvalidInput

    with pytest.raises(InvalidInput):
        security_keys.rename_key(account, stored, "x" * 101, tenant=None, ip=None)


def test_an_administrators_reset_removes_keys_too(world, frozen_clock):
    account = world.beech_identity
    register(account)
    register(account, passkey=True, name="Phone")
    assert lifecycle.remove_second_factors(account) == 2
    assert not security_keys.keys_of(account) and not mfa.is_enrolled(account)


# --- the levels --------------------------------------------------------------------------------


def test_only_a_webauthn_sign_in_reaches_the_phishing_resistant_level():
    assert mfa.acr_for(["pwd", "otp", "mfa"]) == mfa.ACR_2FA
    assert mfa.acr_for(["pwd", "hwk", "mfa"]) == mfa.ACR_PHISHING_RESISTANT
    assert mfa.acr_for(["swk", "user", "mfa"]) == mfa.ACR_PHISHING_RESISTANT
    assert mfa.ACR_PHISHING_RESISTANT in mfa.ACR_VALUES_SUPPORTED
    assert mfa.requested_level(f"{mfa.ACR_2FA} {mfa.ACR_PHISHING_RESISTANT}") == mfa.ACR_PHISHING_RESISTANT
    assert mfa.requested_level("urn:other") is None


def test_asking_for_the_phishing_resistant_level_asks_for_a_key(world, frozen_clock):
    account, tenant = world.beech_identity, world.beech
    membership = account.membership_in(tenant.id)
    enrol(account)
    db.session.expire_all()
    account = db.session.get(Account, account.id)
    membership = account.membership_in(tenant.id)
    phr = mfa.ACR_PHISHING_RESISTANT
    assert mfa.sign_in_requirement(account, membership, ["pwd", "otp", "mfa"], phr) == "enrol_key"
    register(account)
    db.session.expire_all()
    account = db.session.get(Account, account.id)
    membership = account.membership_in(tenant.id)
    assert mfa.sign_in_requirement(account, membership, ["pwd", "otp", "mfa"], phr) == "verify_key"
    assert mfa.sign_in_requirement(account, membership, ["pwd", "hwk", "mfa"], phr) is None


def test_a_school_can_require_a_key_for_its_admins(world, frozen_clock):
    admin, tenant = world.oakwood_admin, world.oakwood
    tenant.admins_phishing_resistant = True
    db.session.commit()
    membership = admin.membership_in(tenant.id)
    assert mfa.sign_in_requirement(admin, membership, ["pwd"]) == "enrol_key"
    assert mfa.sign_in_requirement(admin, membership, ["pwd", "otp", "mfa"]) == "enrol_key"
    staff = world.oakwood_identity
    assert mfa.sign_in_requirement(staff, staff.membership_in(tenant.id), ["pwd"]) is None


def test_operators_may_be_required_to_use_a_key(app, world, frozen_clock):
    from dataclasses import replace

    account = world.sso_user
    enrol(account)
    app.config["SETTINGS"] = replace(app.config["SETTINGS"], operators_require_security_key=True)
    assert mfa.operator_requirement(account, ["pwd", "otp", "mfa"]) == "enrol_key"
    register(account)
    assert mfa.operator_requirement(account, ["pwd", "otp", "mfa"]) == "verify_key"
    assert mfa.operator_requirement(account, ["pwd", "hwk", "mfa"]) is None


def test_a_key_registered_twice_is_refused_and_its_challenge_spent(world, frozen_clock):
    from idp.models import WebAuthnChallenge

    account = world.beech_identity
    key, _, _ = register(account)
    options = security_keys.registration_options(world.sso_user, binding=BINDING, passkey=False)
    db.session.commit()  # the options request ends
    with pytest.raises(security_keys.KeyRefused, match="already registered"):
        security_keys.register(world.sso_user, "Same key", key.create(options, ORIGIN), binding=BINDING, tenant=None,
                               ip=None)
    db.session.rollback()  # as the request boundary does for the 400
    assert db.session.scalar(select(func.count(WebAuthnChallenge.id))) == 0


def test_a_change_to_how_an_account_signs_in_asks_for_its_strongest_factor(world, frozen_clock):
    account = world.beech_identity
    assert mfa.change_confirmation(account) is None  # the first factor comes from the password sign-in
    enrol(account)
    assert mfa.change_confirmation(account) == "verify"
    register(account)
    assert mfa.change_confirmation(account) == "verify_key"


def test_a_sign_in_remembers_when_a_key_was_last_used_in_it(world, frozen_clock):
    row, _ = sessions.start(world.beech_identity, tenant=world.beech, provider="identity", amr=["pwd", "otp", "mfa"],
                            acr=mfa.ACR_2FA, second_factor=True, device="", ip=None)
    assert row.key_at is None and row.second_factor_at == clock.timestamp()
    frozen_clock.advance(timedelta(minutes=3))
    sessions.add_factors(row, amr=["hwk", "mfa"], acr=mfa.ACR_PHISHING_RESISTANT)
    assert row.key_at == clock.timestamp()
    frozen_clock.advance(timedelta(minutes=3))
    sessions.add_factors(row, amr=["otp", "mfa"], acr=mfa.ACR_PHISHING_RESISTANT)
    assert row.key_at == clock.timestamp() - 180  # an app code later does not refresh the key's time


@pytest.mark.parametrize("issuer, origin", [
    ("https://idp.cpoms.example", "https://idp.cpoms.example"),
    ("https://IDP.cpoms.example:443/", "https://idp.cpoms.example"),
    ("http://localhost:5000", "http://localhost:5000"),
    ("https://idp.cpoms.example:8443", "https://idp.cpoms.example:8443"),
])
def test_the_origin_accepted_is_the_issuers_as_browsers_write_it(app, issuer, origin):
    from dataclasses import replace

    app.config["SETTINGS"] = replace(app.config["SETTINGS"], issuer=issuer)
    assert security_keys.relying_party() == security_keys.RelyingParty(urlsplit(origin).hostname, origin)


def test_two_removals_at_once_leave_a_second_factor_where_the_school_requires_one(app, world, frozen_clock):
    """Each removal locks the account's row before counting what is left, so of two removals at
    the same moment (the key on one page, the other key on another) one is refused."""
    from tests.concurrency import run_concurrently

    world.beech.require_2fa = "everyone"
    account = world.beech_identity
    _, first, _ = register(account, name="First")
    _, second, _ = register(account, name="Second")
    db.session.commit()
    ids = (first.id, second.id)

    def remove(key_id):
        def go():
            owner = db.session.get(Account, account.id)
            security_keys.remove_key(owner, db.session.get(SecurityKey, key_id), tenant=None, ip=None)
            return "removed"
        return go

    results = run_concurrently(app, [remove(ids[0]), remove(ids[1])])
    assert results.count("removed") == 1, results
    assert [type(r).__name__ for r in results if r != "removed"] == ["NotAllowed"]
    assert len(security_keys.keys_of(account)) == 1
