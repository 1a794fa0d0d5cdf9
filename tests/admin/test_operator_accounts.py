"""A school admin manages their school's membership of a platform operator, but cannot take the operator's
account over: no new email address (a password link would follow it) and no reset of their second factor."""

import pytest

from idp.accounts.directory import create_account
from idp.admin import service
from idp.errors import NotAllowed
from idp.extensions import db
from idp.models import Account
from tests.conftest import PASSWORD

from .conftest import membership_of


@pytest.fixture
def operator(world):
    account = create_account(provider="sso", email="ops@cpoms.example", name="Olly Ops",
                             tenants=[world.oakwood], role="staff", password=PASSWORD, is_operator=True)
    db.session.commit()
    return account


def test_a_school_admin_cannot_change_a_platform_operators_email(world, operator):
    member = membership_of(operator, world.oakwood)
    with pytest.raises(NotAllowed) as refused:
        service.update_member(world.oakwood, member.id, name="Olly Ops", email="attacker@example.org",
                              role="staff", active=True, actor=world.oakwood_admin)
    assert "CPOMS support" in refused.value.message
    db.session.rollback()
    assert db.session.get(Account, operator.id).email == "ops@cpoms.example"


def test_a_school_admin_cannot_reset_a_platform_operators_two_step_verification(world, operator):
    with pytest.raises(NotAllowed):
        service.reset_second_factor(world.oakwood, membership_of(operator, world.oakwood).id,
                                    actor=world.oakwood_admin)


def test_a_school_admin_still_manages_an_operators_role_in_the_school(world, operator):
    member = membership_of(operator, world.oakwood)
    service.update_member(world.oakwood, member.id, name="Olly Ops", email="ops@cpoms.example",
                          role="admin", active=True, actor=world.oakwood_admin)
    db.session.commit()
    assert membership_of(operator, world.oakwood).role == "admin"


def test_the_profile_page_shows_the_refusal_next_to_the_email(oakwood_browser, world, operator):
    member_id = membership_of(operator, world.oakwood).id
    response = oakwood_browser.submit(f"/t/oakwood/admin/users/{member_id}", {
        "name": "Olly Ops", "email": "attacker@example.org", "role": "staff", "active": "yes"})
    assert response.status_code == 400
    assert "only CPOMS support can change their email address" in response.get_data(as_text=True)


def test_a_school_admin_cannot_move_a_platform_operator_to_another_provider(world, operator):
    with pytest.raises(NotAllowed):
        service.assign_provider(world.oakwood, membership_of(operator, world.oakwood).id, "identity",
                                actor=world.oakwood_admin)
    db.session.rollback()
    assert not db.session.get(Account, operator.id).retired


def test_a_school_cannot_end_an_operators_platform_sign_in(world, operator):
    """The operator's sign-in at /admin is the platform's, not the school's: ending their sign-ins at
    the school (or deactivating them there) leaves it alone."""
    from idp.accounts import sessions
    from idp.models import BrowserSession

    platform, _ = sessions.start(operator, tenant=None, provider="sso", amr=["pwd", "otp", "mfa"],
                                 acr="urn:cpoms:acr:2fa", second_factor=True, device="Firefox on Linux", ip=None)
    db.session.commit()
    member = membership_of(operator, world.oakwood)
    service.end_member_sign_ins(world.oakwood, member.id, actor=world.oakwood_admin)
    service.deactivate_member(world.oakwood, member.id, actor=world.oakwood_admin)
    db.session.commit()
    assert db.session.get(BrowserSession, platform.id) is not None
