"""Removing authenticator apps (needs a current code; the last one stays where a school requires it)
and an administrator's reset of a member's two-step verification."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest

from idp import clock

from idp.accounts import mfa
from idp.admin import service
from idp.errors import NotFound
from idp.extensions import db
from idp.models import MfaDevice, RecoveryCode

from .conftest import audit_events, enrol, sign_in_of


def signed_in_with_key(browser, world, frozen_clock, slug="beech", email="pat.lee@example.org", account=None,
                       provider="identity"):
    enrolment = enrol(account or world.beech_identity)
    browser.login(slug, email, provider=provider)
    browser.submit(f"/t/{slug}/login/verify", {"code": enrolment.code()})
    frozen_clock.advance(timedelta(seconds=30))
    return enrolment


def test_removing_a_key_needs_a_current_code(browser, world, frozen_clock):
    enrolment = signed_in_with_key(browser, world, frozen_clock)
    url = f"/account/security/devices/{enrolment.device.id}/remove?tenant=beech"
    page = browser.get(url).get_data(as_text=True)
    assert "Remove ‘My phone’" in page and "enter a current code" in page
    assert "removing it turns off two-step verification" in page
    refused = browser.submit(url, {"code": "12345"}, post_url=url)
    assert refused.status_code == 400 and mfa.is_enrolled(world.beech_identity)
    response = browser.submit(url, {"code": enrolment.code()}, post_url=url)
    assert response.status_code == 302
    assert "Authenticator app ‘My phone’ removed" in browser.get(response.headers["Location"]).get_data(as_text=True)
    assert not mfa.is_enrolled(world.beech_identity)
    assert db.session.scalar(db.select(db.func.count(RecoveryCode.id))) == 0
    assert audit_events("mfa.removed")


def test_removing_the_last_key_is_refused_where_the_school_requires_2fa(browser, world, frozen_clock):
    enrolment = signed_in_with_key(browser, world, frozen_clock)
    world.beech.require_2fa = "everyone"
    db.session.commit()
    url = f"/account/security/devices/{enrolment.device.id}/remove?tenant=beech"
    page = browser.get(url)
    message = "You cannot remove your only authenticator app because Beech Academy requires two-step verification"
    assert page.status_code == 409 and message in page.get_data(as_text=True)
    assert 'name="code"' not in page.get_data(as_text=True)
    with pytest.raises(mfa.NotAllowed, match="Beech Academy requires"):
        mfa.remove_device(world.beech_identity, enrolment.device, enrolment.code(), tenant=None, ip=None)
    assert mfa.is_enrolled(world.beech_identity)


def test_sso_account_keeps_its_last_key_when_any_of_its_schools_requires_it(browser, world, frozen_clock):
    world.staffsafe.require_2fa = "everyone"
    db.session.commit()
    enrolment = signed_in_with_key(browser, world, frozen_clock, slug="oakwood", email="sam.jones@example.org",
                                   account=world.sso_user, provider="sso")
    url = f"/account/security/devices/{enrolment.device.id}/remove?tenant=oakwood"
    response = browser.get(url)
    assert response.status_code == 409
    assert "Oakwood Trust requires two-step verification" in response.get_data(as_text=True)


def test_one_of_two_keys_can_go_even_where_required(browser, world, frozen_clock):
    world.beech.require_2fa = "everyone"
    db.session.commit()
    enrolment = signed_in_with_key(browser, world, frozen_clock)
    spare = mfa.start_enrolment(world.beech_identity, "Spare phone")
    mfa.confirm_enrolment(world.beech_identity, spare, pyotp.TOTP(mfa.device_secret(spare)).at(clock.timestamp()),
                          tenant=None, ip=None)
    frozen_clock.advance(timedelta(seconds=30))
    url = f"/account/security/devices/{enrolment.device.id}/remove?tenant=beech"
    response = browser.submit(url, {"code": enrolment.code()}, post_url=url)
    assert response.status_code == 302
    assert [d.name for d in mfa.confirmed_devices(world.beech_identity)] == ["Spare phone"]
    assert mfa.remaining_recovery_codes(world.beech_identity) == 10


def test_without_keys_the_account_signs_in_with_a_password_again(browser, world, frozen_clock):
    enrolment = signed_in_with_key(browser, world, frozen_clock)
    mfa.remove_device(world.beech_identity, enrolment.device, enrolment.code(), tenant=None, ip=None)
    browser.client.delete_cookie("idp_session")
    response = browser.login("beech", "pat.lee@example.org")
    assert response.headers["Location"] == "/t/beech/"
    assert sign_in_of(browser.client).amr == ["pwd"]


def member_id(account, tenant) -> int:
    return account.membership_in(tenant.id).id


def test_admin_reset_removes_every_key_and_recovery_code_and_is_audited(world, frozen_clock):
    world.oakwood.require_2fa = "everyone"
    db.session.commit()
    enrol(world.oakwood_identity)
    enrol(world.oakwood_identity, name="Tablet")
    service.reset_second_factor(world.oakwood, member_id(world.oakwood_identity, world.oakwood),
                                actor=world.oakwood_admin, ip="10.1.1.1")
    assert db.session.scalar(db.select(db.func.count(MfaDevice.id))) == 0
    assert db.session.scalar(db.select(db.func.count(RecoveryCode.id))) == 0
    (event,) = audit_events("mfa.reset")
    assert event.actor_account_id == world.oakwood_admin.id and event.subject_account_id == world.oakwood_identity.id
    assert event.tenant_id == world.oakwood.id and event.ip == "10.1.1.1"
    # The school still requires a key: the member enrols again at the next sign-in.
    membership = world.oakwood_identity.memberships[0]
    assert mfa.sign_in_requirement(world.oakwood_identity, membership, ["pwd"]) == "enrol"


def test_admin_reset_is_limited_to_members_of_the_admins_school(world, frozen_clock):
    enrol(world.beech_identity)
    with pytest.raises(NotFound):
        service.reset_second_factor(world.oakwood, member_id(world.beech_identity, world.beech),
                                    actor=world.oakwood_admin, ip=None)
    assert mfa.is_enrolled(world.beech_identity)
