"""Admin > Users as services: every action and its refusals, always within one tenant."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from idp import audit
from idp.accounts.directory import create_account
from idp.admin import service
from idp.errors import Conflict, InvalidInput, NotAllowed, NotFound
from idp.extensions import db
from idp.models import Account, AuditEvent, MfaDevice, Membership, RecoveryCode, ResetLink, Token

from tests.conftest import join_directly

from .conftest import make_token, membership_of


def events(name, tenant=None):
    query = select(AuditEvent).where(AuditEvent.event == name)
    if tenant is not None:
        query = query.where(AuditEvent.tenant_id == tenant.id)
    return list(db.session.scalars(query))


# --- who may administer ---------------------------------------------------------------------------------


def test_only_an_active_admin_of_that_tenant_may_administer_it(world, beech_admin):
    assert service.require_tenant_admin(world.oakwood, world.oakwood_admin).role == "admin"
    with pytest.raises(NotAllowed):
        service.require_tenant_admin(world.beech, world.oakwood_admin)
    with pytest.raises(NotAllowed):
        service.require_tenant_admin(world.oakwood, beech_admin)
    with pytest.raises(NotAllowed):
        service.require_tenant_admin(world.oakwood, world.oakwood_identity)  # staff
    membership_of(world.oakwood_admin, world.oakwood).active = False
    with pytest.raises(NotAllowed):
        service.require_tenant_admin(world.oakwood, world.oakwood_admin)


# --- list ---------------------------------------------------------------------------------------------------


def test_user_list_shows_only_this_tenants_members(world):
    page = service.list_members(world.oakwood)
    emails = sorted(m.account.email for m in page.items)
    assert emails == sorted(["head@oakwood.example.org", "new.teacher@example.org", "sam.jones@example.org",
                             "sam.jones@example.org"])
    assert page.total == 4
    assert "pat.lee@example.org" not in emails


def test_user_list_searches_name_and_email_and_filters_provider_and_role(world):
    assert [m.account.name for m in service.list_members(world.oakwood, search="teacher").items] == ["New Teacher"]
    assert [m.account.email for m in service.list_members(world.oakwood, search="HEAD@oak").items] == [
        "head@oakwood.example.org"]
    sso = service.list_members(world.oakwood, provider="sso").items
    assert [(m.account.provider, m.account.email) for m in sso] == [("sso", "sam.jones@example.org")]
    admins = service.list_members(world.oakwood, role="admin").items
    assert [m.account.email for m in admins] == ["head@oakwood.example.org"]
    assert service.list_members(world.oakwood, search="100%_").total == 0  # wildcards are literal


def test_user_list_paginates(world):
    for n in range(30):
        create_account(provider="identity", email=f"teacher{n:02}@example.org", name=f"Teacher {n:02}",
                       tenants=[world.beech])
    first = service.list_members(world.beech, page=1, per_page=25)
    second = service.list_members(world.beech, page="2", per_page=25)
    assert first.total == second.total == 31
    assert (first.pages, len(first.items), len(second.items)) == (2, 25, 6)
    assert first.has_next and not second.has_next and second.has_previous
    assert {m.id for m in first.items}.isdisjoint({m.id for m in second.items})
    assert service.list_members(world.beech, page="nonsense").page == 1


def test_another_tenants_member_id_is_not_found(world):
    pat = membership_of(world.beech_identity, world.beech)
    with pytest.raises(NotFound):
        service.get_member(world.oakwood, pat.id)
    with pytest.raises(NotFound):
        service.update_member(world.oakwood, pat.id, name="X", email="x@example.org", role="admin", active=True,
                              actor=world.oakwood_admin)
    db.session.rollback()
    assert db.session.get(Account, world.beech_identity.id).name == "Pat Lee"


# --- profile changes -------------------------------------------------------------------------------------------


def test_admin_edits_name_email_and_role(world):
    member = membership_of(world.invited, world.oakwood)
    service.update_member(world.oakwood, member.id, name="Nia Teacher", email="Nia.Teacher@Example.org",
                          role="admin", active=True, actor=world.oakwood_admin, ip="10.0.0.1")
    db.session.commit()
    account = db.session.get(Account, world.invited.id)
    assert (account.name, account.email) == ("Nia Teacher", "nia.teacher@example.org")
    assert membership_of(account, world.oakwood).role == "admin"
    [event] = events(audit.MEMBER_CHANGED, world.oakwood)
    assert event.actor_account_id == world.oakwood_admin.id and event.ip == "10.0.0.1"
    assert event.detail["changes"]["role"] == ["staff", "admin"]


def test_identity_email_must_be_unique_within_the_tenant(world):
    member = membership_of(world.invited, world.oakwood)
    with pytest.raises(Conflict) as refused:
        service.update_member(world.oakwood, member.id, name="New Teacher", email="head@oakwood.example.org",
                              role="staff", active=True, actor=world.oakwood_admin)
    assert refused.value.details["field"] == "email"


def test_identity_email_may_match_an_account_in_another_tenant_or_an_sso_account(world):
    member = membership_of(world.invited, world.oakwood)
    service.update_member(world.oakwood, member.id, name="New Teacher", email="pat.lee@example.org",
                          role="staff", active=True, actor=world.oakwood_admin)
    assert world.invited.email == "pat.lee@example.org"


def test_sso_email_must_be_unique_among_all_sso_accounts(world):
    other = create_account(provider="sso", email="solo@example.org", name="Solo", tenants=[world.beech])
    beech_admin = create_account(provider="identity", email="b@beech.example.org", tenants=[world.beech],
                                 role="admin")
    member = membership_of(other, world.beech)
    with pytest.raises(Conflict):
        service.update_member(world.beech, member.id, name="Solo", email="Sam.Jones@example.org", role="staff",
                              active=True, actor=beech_admin)


def test_a_shared_sso_accounts_email_cannot_be_changed_by_one_school(world):
    # Otherwise one school could redirect the person's password links and take over their other schools.
    member = membership_of(world.sso_user, world.oakwood)
    with pytest.raises(NotAllowed) as refused:
        service.update_member(world.oakwood, member.id, name="Sam Jones", email="attacker@example.org",
                              role="staff", active=True, actor=world.oakwood_admin)
    assert "CPOMS support" in refused.value.message
    db.session.rollback()
    assert db.session.get(Account, world.sso_user.id).email == "sam.jones@example.org"


def test_an_admin_cannot_demote_or_deactivate_themselves(world):
    member = membership_of(world.oakwood_admin, world.oakwood)
    with pytest.raises(NotAllowed):
        service.update_member(world.oakwood, member.id, name="Alex Head", email="head@oakwood.example.org",
                              role="staff", active=True, actor=world.oakwood_admin)
    with pytest.raises(NotAllowed):
        service.update_member(world.oakwood, member.id, name="Alex Head", email="head@oakwood.example.org",
                              role="admin", active=False, actor=world.oakwood_admin)


def test_bad_role_or_email_is_refused(world):
    member = membership_of(world.invited, world.oakwood)
    with pytest.raises(InvalidInput):
        service.update_member(world.oakwood, member.id, name="N", email="not-an-email", role="staff", active=True,
                              actor=world.oakwood_admin)
    with pytest.raises(InvalidInput):
        service.update_member(world.oakwood, member.id, name="N", email="n@example.org", role="owner", active=True,
                              actor=world.oakwood_admin)


# --- deactivation ----------------------------------------------------------------------------------------------


def signed_in_somewhere(account, tenant):
    from idp.accounts import sessions

    row, _ = sessions.start(account, tenant=tenant, provider=account.provider, amr=["pwd"], acr="x",
                            second_factor=False, device="", ip=None)
    db.session.commit()
    return row.id


def live_sign_ins(account) -> int:
    from idp.accounts import sessions

    return len(sessions.of_account(account))


def test_deactivation_revokes_the_members_tokens_for_this_tenant_and_ends_sessions(world):
    pat_token = make_token(world.beech_identity, world.beech, world.beech_app)
    local = world.oakwood_identity
    oak_token = make_token(local, world.oakwood, world.oakwood_app)
    signed_in_somewhere(local, world.oakwood)
    member = membership_of(local, world.oakwood)
    service.update_member(world.oakwood, member.id, name=local.name, email=local.email, role="staff", active=False,
                          actor=world.oakwood_admin, ip="10.0.0.2")
    db.session.commit()
    assert db.session.get(Token, oak_token.id).revoked_at is not None
    assert db.session.get(Token, pat_token.id).revoked_at is None
    assert membership_of(local, world.oakwood).active is False
    assert live_sign_ins(local) == 0
    assert len(events(audit.MEMBER_DEACTIVATED, world.oakwood)) == 1
    [ended] = events(audit.SIGN_INS_ENDED, world.oakwood)
    assert ended.detail["tokens_revoked"] == 1


def test_deactivating_a_shared_sso_member_keeps_their_other_tenant_working(world):
    oak = make_token(world.sso_user, world.oakwood, world.oakwood_app)
    safe = make_token(world.sso_user, world.staffsafe, world.staffsafe_app)
    signed_in_somewhere(world.sso_user, world.staffsafe)
    service.deactivate_member(world.oakwood, membership_of(world.sso_user, world.oakwood).id,
                              actor=world.oakwood_admin)
    db.session.commit()
    assert db.session.get(Token, oak.id).revoked_at is not None
    assert db.session.get(Token, safe.id).revoked_at is None
    assert membership_of(world.sso_user, world.staffsafe).active is True
    # Shared account: browsers stay signed in for StaffSafe; Oakwood refuses the inactive membership.
    assert live_sign_ins(world.sso_user) == 1


def test_reactivating_is_recorded_as_a_change(world):
    member = membership_of(world.invited, world.oakwood)
    service.deactivate_member(world.oakwood, member.id, actor=world.oakwood_admin)
    service.update_member(world.oakwood, member.id, name="New Teacher", email="new.teacher@example.org",
                          role="staff", active=True, actor=world.oakwood_admin)
    assert member.active is True
    assert events(audit.MEMBER_CHANGED)[-1].detail["changes"]["active"] == [False, True]


# --- adding members ---------------------------------------------------------------------------------------------


def test_adding_an_existing_sso_account_waits_for_the_person_to_accept(world, beech_admin, outbox):
    before = db.session.scalar(select(func.count(Account.id)))
    added = service.add_member(world.beech, email="SAM.JONES@example.org", name="Whatever", role="staff",
                               provider="sso", actor=beech_admin)
    db.session.commit()
    assert not added.created and added.pending and added.mailed
    assert added.account.id == world.sso_user.id
    assert added.account.name == "Sam Jones"  # another school's data is not overwritten
    assert db.session.scalar(select(func.count(Account.id))) == before
    membership = membership_of(world.sso_user, world.beech)
    assert membership.role == "staff" and membership.is_pending and not membership.is_usable
    # The person is told which school added them, with a link to accept.
    mail = outbox.last("sam.jones@example.org")
    assert mail["Subject"] == "Beech Academy has added you to CPOMS: please accept"
    assert "/join/" in outbox.text(mail)
    [event] = events(audit.MEMBER_ADDED, world.beech)
    assert event.detail["provider"] == "sso" and event.subject_account_id == world.sso_user.id
    assert event.detail["waiting_to_accept"] is True


def test_adding_a_new_sso_user_creates_and_invites_them(world, beech_admin):
    added = service.add_member(world.beech, email="new.sso@example.org", name="New Sso", role="admin",
                               provider="sso", actor=beech_admin)
    db.session.commit()
    assert added.created and added.mailed and not added.pending
    account = added.account
    assert (account.provider, account.tenant_id, account.has_password) == ("sso", None, False)
    assert membership_of(account, world.beech).role == "admin"
    assert membership_of(account, world.beech).is_usable  # the school made the account: nothing to accept
    link = db.session.scalars(select(ResetLink).where(ResetLink.account_id == account.id)).one()
    assert link.purpose == "invite" and link.tenant_id == world.beech.id


def test_adding_an_identity_user_creates_a_local_invited_account(world, beech_admin):
    # The same email as an oakwood Identity account: Identity accounts are per tenant.
    added = service.add_member(world.beech, email="sam.jones@example.org", name="Sam at Beech", role="staff",
                               provider="identity", actor=beech_admin)
    db.session.commit()
    account = added.account
    assert (account.provider, account.tenant_id) == ("identity", world.beech.id)
    assert account.id != world.oakwood_identity.id and added.mailed
    assert [m.tenant_id for m in account.memberships] == [world.beech.id]


def test_adding_an_existing_member_is_refused(world):
    with pytest.raises(Conflict):
        service.add_member(world.oakwood, email="sam.jones@example.org", name="x", role="staff", provider="sso",
                           actor=world.oakwood_admin)
    with pytest.raises(Conflict):
        service.add_member(world.oakwood, email="head@oakwood.example.org", name="x", role="staff",
                           provider="identity", actor=world.oakwood_admin)
    with pytest.raises(InvalidInput):
        service.add_member(world.oakwood, email="x@example.org", name="x", role="staff", provider="google",
                           actor=world.oakwood_admin)


# --- provider assignment --------------------------------------------------------------------------------------


def test_identity_to_sso_moves_to_the_existing_sso_account_once_the_person_accepts(world, beech_admin, outbox):
    # Pat (Identity at beech) already has an SSO account elsewhere.
    pat_sso = create_account(provider="sso", email="pat.lee@example.org", name="Pat Lee", tenants=[world.staffsafe],
                             password="Another-Pass-99!")
    membership = membership_of(world.beech_identity, world.beech)
    membership.role = "admin"
    membership_id = membership.id
    token = make_token(world.beech_identity, world.beech, world.beech_app)

    moved = service.assign_provider(world.beech, membership_id, "sso", actor=beech_admin, ip="10.0.0.3")
    db.session.commit()

    assert moved.account.id == pat_sso.id and moved.pending
    kept = membership_of(pat_sso, world.beech)
    assert (kept.id, kept.role, kept.active) == (membership_id, "admin", True)
    # The school cannot bring the existing account in by itself: the person accepts by email.
    assert kept.is_pending
    assert any("/join/" in outbox.text(m) for m in outbox.messages() if m["To"].addresses[0].addr_spec == "pat.lee@example.org")
    local = db.session.get(Account, world.beech_identity.id)
    assert local.retired and local.password_hash is None and local.memberships == []
    assert db.session.get(Token, token.id).revoked_at is not None
    assert membership_of(pat_sso, world.staffsafe).is_usable  # the SSO account's other tenant is untouched
    [event] = events(audit.PROVIDER_REASSIGNED, world.beech)
    assert (event.detail["from_provider"], event.detail["to_provider"]) == ("identity", "sso")
    assert event.detail["previous_account_id"] == local.id and event.detail["waiting_to_accept"] is True
    assert moved.mailed


def test_identity_to_sso_creates_an_invited_sso_account_when_none_exists(world, beech_admin, app):
    membership_id = membership_of(world.beech_identity, world.beech).id
    moved = service.assign_provider(world.beech, membership_id, "sso", actor=beech_admin)
    db.session.commit()
    account = moved.account
    assert (account.provider, account.email, account.has_password) == ("sso", "pat.lee@example.org", False)
    assert moved.mailed and not moved.pending
    assert membership_of(account, world.beech).role == "staff"
    outbox = list((app.config["SETTINGS"].outbox_path).glob("*.eml"))
    bodies = [path.read_text() for path in outbox]
    assert any("How you log in to CPOMS at Beech Academy has changed" in body for body in bodies)


def test_sso_to_identity_creates_a_local_account_for_this_tenant_only(world, beech_admin):
    membership_id = join_directly(world.sso_user, world.beech, role="admin").id
    service.deactivate_member(world.beech, membership_id, actor=beech_admin)
    db.session.commit()

    moved = service.assign_provider(world.beech, membership_id, "identity", actor=beech_admin)
    db.session.commit()
    local = moved.account
    assert (local.provider, local.tenant_id, local.email) == ("identity", world.beech.id, "sam.jones@example.org")
    assert not local.has_password and moved.mailed
    kept = membership_of(local, world.beech)
    assert (kept.id, kept.role, kept.active) == (membership_id, "admin", False)
    sso = db.session.get(Account, world.sso_user.id)
    assert sorted(m.tenant_id for m in sso.memberships) == sorted([world.oakwood.id, world.staffsafe.id])
    assert not sso.retired


def test_sso_to_identity_merges_into_an_existing_local_account_of_the_same_person(world):
    # Oakwood has Sam both as SSO and as a local account: the local membership takes the SSO one's role.
    sso_membership = membership_of(world.sso_user, world.oakwood)
    sso_membership.role = "admin"
    moved = service.assign_provider(world.oakwood, sso_membership.id, "identity", actor=world.oakwood_admin)
    db.session.commit()
    assert moved.account.id == world.oakwood_identity.id
    assert membership_of(world.oakwood_identity, world.oakwood).role == "admin"
    assert world.sso_user.membership_in(world.oakwood.id) is None


def test_moving_back_and_forth_reuses_the_retired_local_account(world, beech_admin):
    pat_id = world.beech_identity.id
    membership_id = membership_of(world.beech_identity, world.beech).id
    service.assign_provider(world.beech, membership_id, "sso", actor=beech_admin)
    db.session.commit()
    back = service.assign_provider(world.beech, membership_id, "identity", actor=beech_admin)
    db.session.commit()
    assert back.account.id == pat_id  # history stays with the one local account
    account = db.session.get(Account, pat_id)
    assert not account.retired and not account.has_password
    assert membership_of(account, world.beech).id == membership_id


def test_assigning_the_current_provider_or_oneself_is_refused(world):
    with pytest.raises(InvalidInput):
        service.assign_provider(world.oakwood, membership_of(world.invited, world.oakwood).id, "identity",
                                actor=world.oakwood_admin)
    with pytest.raises(NotAllowed):
        service.assign_provider(world.oakwood, membership_of(world.oakwood_admin, world.oakwood).id, "sso",
                                actor=world.oakwood_admin)


# --- 2FA and password links --------------------------------------------------------------------------------


def test_reset_2fa_removes_devices_and_recovery_codes(world):
    account = world.oakwood_identity
    db.session.add(MfaDevice(account_id=account.id, name="phone", secret_encrypted="x", confirmed_at=world.oakwood.created_at))
    db.session.add(RecoveryCode(account_id=account.id, code_hash="h"))
    db.session.commit()
    member_id = membership_of(account, world.oakwood).id
    assert service.second_factor_status(account).enrolled
    service.reset_second_factor(world.oakwood, member_id, actor=world.oakwood_admin, ip="10.0.0.4")
    db.session.commit()
    status = service.second_factor_status(account)
    assert (status.devices, status.recovery_codes_left) == (0, 0)
    assert events(audit.MFA_RESET, world.oakwood)[0].actor_account_id == world.oakwood_admin.id


def test_reset_2fa_of_a_shared_sso_account_is_left_to_support(world):
    with pytest.raises(NotAllowed):
        service.reset_second_factor(world.oakwood, membership_of(world.sso_user, world.oakwood).id,
                                    actor=world.oakwood_admin)


def test_password_link_status_shows_sent_expiry_and_use(world, frozen_clock):
    member = service.get_member(world.oakwood, membership_of(world.invited, world.oakwood).id)
    assert service.password_link_status(world.oakwood, member) is None
    service.send_password_link(world.oakwood, member.id, actor=world.oakwood_admin)
    status = service.password_link_status(world.oakwood, member)
    assert status["state"] == "pending" and status["purpose"] == "invite"
    assert status["expires_at"].hour == 0 and status["expires_at"].day == 3  # local midnight after 2 March
    from datetime import timedelta

    frozen_clock.advance(timedelta(days=1))
    assert service.password_link_status(world.oakwood, member)["state"] == "expired"


def test_a_deactivated_member_gets_no_password_link(world):
    member_id = membership_of(world.invited, world.oakwood).id
    service.deactivate_member(world.oakwood, member_id, actor=world.oakwood_admin)
    with pytest.raises(InvalidInput):
        service.send_password_link(world.oakwood, member_id, actor=world.oakwood_admin)


def test_membership_rows_stay_unique_per_tenant(world):
    rows = db.session.execute(
        select(Membership.account_id, Membership.tenant_id, func.count()).group_by(Membership.account_id,
                                                                                     Membership.tenant_id)
    ).all()
    assert all(count == 1 for *_, count in rows)
