"""The school's require_2fa policy (off / admins / everyone), and one SSO key serving every school."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from idp import clock
from idp.accounts import mfa
from idp.extensions import db

from .conftest import DEVICE_RE, RECOVERY_RE, SECRET_RE, enrol, sign_in_of


def set_policy(tenant, policy):
    tenant.require_2fa = policy
    db.session.commit()


@pytest.mark.parametrize(
    "policy, role, expected",
    [("off", "staff", None), ("off", "admin", None), ("admins", "staff", None), ("admins", "admin", "enrol"),
     ("everyone", "staff", "enrol"), ("everyone", "admin", "enrol")],
)
def test_policy_decides_who_must_enrol(world, policy, role, expected):
    set_policy(world.oakwood, policy)
    membership = world.oakwood_identity.memberships[0]
    membership.role = role
    db.session.commit()
    assert mfa.sign_in_requirement(world.oakwood_identity, membership, ["pwd"]) == expected


def test_enrolled_account_always_verifies_and_is_done_after_a_code(world, frozen_clock):
    enrol(world.beech_identity)
    membership = world.beech_identity.memberships[0]
    assert mfa.sign_in_requirement(world.beech_identity, membership, ["pwd"]) == "verify"
    assert mfa.sign_in_requirement(world.beech_identity, membership, ["pwd", "otp", "mfa"]) is None


def test_a_client_asking_for_2fa_sends_an_unenrolled_person_to_enrol(world):
    membership = world.beech_identity.memberships[0]
    assert mfa.sign_in_requirement(world.beech_identity, membership, ["pwd"]) is None
    assert mfa.sign_in_requirement(world.beech_identity, membership, ["pwd"], requested_acr=mfa.ACR_2FA) == "enrol"


def test_acr_reflects_what_was_done():
    assert mfa.acr_for(["pwd"]) == mfa.ACR_PASSWORD
    assert mfa.acr_for(["pwd", "otp", "mfa"]) == mfa.ACR_2FA
    assert mfa.ACR_VALUES_SUPPORTED == [mfa.ACR_PASSWORD, mfa.ACR_2FA, mfa.ACR_PHISHING_RESISTANT]


def test_admins_policy_makes_the_oakwood_admin_enrol_at_login(browser, world, frozen_clock):
    set_policy(world.oakwood, "admins")
    response = browser.login("oakwood", "head@oakwood.example.org", next_url="/t/oakwood/?app=1")
    location = response.headers["Location"]
    assert urlsplit(location).path == "/account/security"
    assert parse_qs(urlsplit(location).query) == {"tenant": ["oakwood"], "next": ["/t/oakwood/?app=1"]}
    assert sign_in_of(browser.client).amr == ["pwd"]
    html = browser.get(location).get_data(as_text=True)
    assert "Oakwood Primary School requires an authenticator app for your account" in html
    assert 'id="continue"' not in html  # no way onwards until enrolled

    # Enrol: the confirming code completes this sign-in's second factor and continues where it was going.
    page = browser.submit(location, {"name": "My phone"}, post_url=location.replace("/account/security", "/account/security/devices"))
    confirm_url = page.headers["Location"]
    secret = SECRET_RE.search(browser.get(confirm_url).get_data(as_text=True)).group(1).replace(" ", "")
    done = browser.submit(confirm_url, {"code": pyotp.TOTP(secret).at(clock.timestamp())}, post_url=confirm_url)
    html = done.get_data(as_text=True)
    assert len(RECOVERY_RE.findall(html)) == 10
    assert 'href="/t/oakwood/?app=1" class="button" id="continue"' in html
    assert sign_in_of(browser.client).amr == ["pwd", "otp", "mfa"]
    membership = world.oakwood_admin.memberships[0]
    assert mfa.sign_in_requirement(world.oakwood_admin, membership, ["pwd", "otp", "mfa"]) is None


def test_admins_policy_leaves_staff_alone(browser, world):
    set_policy(world.oakwood, "admins")
    response = browser.login("oakwood", "sam.jones@example.org", "Different-Pass-77!")
    assert response.headers["Location"] == "/t/oakwood/"


def test_everyone_policy_makes_staff_enrol(browser, world):
    set_policy(world.oakwood, "everyone")
    response = browser.login("oakwood", "sam.jones@example.org", "Different-Pass-77!")
    assert response.headers["Location"].startswith("/account/security?tenant=oakwood")


def test_policy_of_one_school_does_not_reach_another(browser, world):
    set_policy(world.oakwood, "everyone")
    response = browser.login("beech", "pat.lee@example.org")
    assert response.headers["Location"] == "/t/beech/"


def test_sso_account_enrolled_once_serves_both_of_its_schools(browser, world, frozen_clock):
    set_policy(world.staffsafe, "everyone")
    sso = world.sso_user
    # StaffSafe requires a key: the first sign-in there is sent to enrol.
    response = browser.login("oakwood-staffsafe", "sam.jones@example.org", provider="sso")
    security = response.headers["Location"]
    assert security.startswith("/account/security?tenant=oakwood-staffsafe")
    page = browser.submit(security, {"name": "My phone"}, post_url=security.replace("/account/security", "/account/security/devices"))
    confirm_url = page.headers["Location"]
    assert DEVICE_RE.search(confirm_url)
    secret = SECRET_RE.search(browser.get(confirm_url).get_data(as_text=True)).group(1).replace(" ", "")
    browser.submit(confirm_url, {"code": pyotp.TOTP(secret).at(clock.timestamp())}, post_url=confirm_url)
    assert len(mfa.confirmed_devices(sso)) == 1

    # At Oakwood (no policy) the same key is asked for, and no second enrolment.
    sign_in_again_with_a_code(browser, frozen_clock, "oakwood", secret)
    amr = sign_in_of(browser.client).amr
    for membership in sso.memberships:
        assert mfa.sign_in_requirement(sso, membership, amr) is None

    # And back at StaffSafe: the code, not the enrolment page.
    sign_in_again_with_a_code(browser, frozen_clock, "oakwood-staffsafe", secret)
    assert len(mfa.confirmed_devices(sso)) == 1


def sign_in_again_with_a_code(browser, frozen_clock, slug, secret):
    """Sam signs in afresh half a minute later: the password, then the key's next code, then the school."""
    frozen_clock.advance(timedelta(seconds=30))
    browser.client.delete_cookie("idp_session")
    response = browser.login(slug, "sam.jones@example.org", provider="sso")
    assert response.headers["Location"] == f"/t/{slug}/login/verify"
    response = browser.submit(f"/t/{slug}/login/verify", {"code": pyotp.TOTP(secret).at(clock.timestamp())})
    assert response.headers["Location"] == f"/t/{slug}/"


def test_identity_account_with_the_same_email_has_its_own_keys(world, frozen_clock):
    enrol(world.sso_user)
    assert mfa.is_enrolled(world.sso_user)
    assert not mfa.is_enrolled(world.oakwood_identity)
