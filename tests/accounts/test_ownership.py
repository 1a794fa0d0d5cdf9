"""Only the person who controls an email address holds the credentials of the account for it, and no
school brings an existing account into itself without that person knowing.

The takeover these close: an admin of school A adds an SSO member under someone's email, changes
the address to one the admin controls, sets a password through the first-time link, changes the
address back; school B later adds that person, and the admin signs in at B as them. Each way in
(admin pages, CSV import, provider moves, the command line) is tried here."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp import audit
from idp.accounts.directory import create_account, lookup
from idp.admin import csv_import, service
from idp.errors import NotAllowed
from idp.extensions import db
from idp.models import Account, AuditEvent, MfaDevice, ResetLink, Token
from tests.admin.conftest import beech_admin, make_token, membership_of  # noqa: F401  (fixture)
from tests.conftest import PASSWORD, Browser, csrf_token_from
from tests.mfa.conftest import enrol

VICTIM = "victim@example.org"
ATTACKER = "attacker@evil.example"
ATTACKERS_PASSWORD = "Mallory-Owns-This-77!"


def oakwood_member_id(email: str, world) -> int:
    account = lookup("sso", email)
    return membership_of(account, world.oakwood).id


def set_password_through(outbox, browser, to: str, password: str):
    url = outbox.last_link(to)
    page = browser.get(url).get_data(as_text=True)
    return browser.client.post(url, data={"csrf_token": csrf_token_from(page), "password": password,
                                          "confirm": password})


def sso_login(app, slug: str, email: str, password: str):
    return Browser(app.test_client()).login(slug, email, password, provider="sso")


def test_the_takeover_through_the_admin_pages_no_longer_works(app, world, beech_admin, outbox):
    admin = Browser(app.test_client())
    assert admin.login("oakwood", "head@oakwood.example.org").status_code == 302
    # 1. School A adds the victim (not yet in CPOMS) as an SSO user: the first-time link goes to the victim.
    assert admin.submit("/t/oakwood/admin/users/new", {"email": VICTIM, "name": "Vic Tim", "role": "staff",
                                                       "provider": "sso"}).status_code == 200
    member_id = oakwood_member_id(VICTIM, world)
    page = f"/t/oakwood/admin/users/{member_id}"
    # 2. ...changes the address to one the admin controls, and sets a password through its link.
    assert admin.submit(page, {"name": "Vic Tim", "email": ATTACKER, "role": "staff", "active": "yes"}
                        ).status_code == 302
    assert set_password_through(outbox, Browser(app.test_client()), ATTACKER, ATTACKERS_PASSWORD).status_code == 302
    # 3. ...and changes it back. The credentials go with the address: the password is cleared.
    assert admin.submit(page, {"name": "Vic Tim", "email": VICTIM, "role": "staff", "active": "yes"}
                        ).status_code == 302
    victim = lookup("sso", VICTIM)
    assert victim.password_hash is None and not victim.email_verified
    assert "/reset/" in outbox.last_link(VICTIM)  # the real owner is sent the first-time link
    # 4. School B adds the person: the existing account waits for the person's acceptance.
    joined = service.add_member(world.beech, email=VICTIM, name="Vic", role="admin", provider="sso",
                                actor=beech_admin)
    db.session.commit()
    assert joined.pending and not joined.created
    # 5. The admin of A cannot sign in at B (nor at A) with the password they set.
    for slug in ("beech", "oakwood"):
        assert "Your email address or password was incorrect" in sso_login(
            app, slug, VICTIM, ATTACKERS_PASSWORD).get_data(as_text=True)


def test_any_email_change_by_an_admin_resets_the_credentials(app, world, frozen_clock, outbox):
    member = membership_of(world.invited, world.oakwood)
    account = world.invited
    account.password_hash = "x"  # pretend the person had set a password
    enrol(account)
    token = make_token(account, world.oakwood, world.oakwood_app)
    old_link = db.session.scalars(select(ResetLink)).first()
    account.email_verified_at = frozen_clock.now()
    other = Browser(app.test_client())
    other.client.environ_base["REMOTE_ADDR"] = "198.51.100.1"
    from idp.accounts import sessions as account_sessions

    account_sessions.start(account, tenant=world.oakwood, provider="identity", amr=["pwd"], acr="x",
                           second_factor=False, device="", ip=None)
    db.session.commit()

    service.update_member(world.oakwood, member.id, name="New Teacher", email="new.address@example.org",
                          role="staff", active=True, actor=world.oakwood_admin, ip="10.0.0.1")
    db.session.commit()

    account = db.session.get(Account, world.invited.id)
    assert account.email == "new.address@example.org"
    assert account.password_hash is None and not account.email_verified
    assert db.session.scalar(select(MfaDevice.id).where(MfaDevice.account_id == account.id)) is None
    assert db.session.get(Token, token.id).revoked_at is not None
    assert not account_sessions.of_account(account)  # every browser signed in as them is signed out
    assert old_link is None or not db.session.get(ResetLink, old_link.id).is_usable
    # The new address gets a first-time link, the old one a notice.
    assert "/reset/" in outbox.last_link("new.address@example.org")
    notice = outbox.last("new.teacher@example.org")
    assert "email address of your CPOMS account was changed" in notice["Subject"]
    assert "new.address@example.org" in outbox.text(notice)
    [event] = db.session.scalars(select(AuditEvent).where(AuditEvent.event == audit.EMAIL_CHANGED))
    assert event.detail == {"old": "new.teacher@example.org", "new": "new.address@example.org"}
    assert event.actor_account_id == world.oakwood_admin.id


def test_a_school_cannot_change_the_email_of_an_sso_account_another_school_uses(world):
    member = membership_of(world.sso_user, world.oakwood)
    with pytest.raises(NotAllowed) as refused:
        service.update_member(world.oakwood, member.id, name="Sam Jones", email=ATTACKER, role="staff",
                              active=True, actor=world.oakwood_admin)
    assert "CPOMS support" in refused.value.message and refused.value.details["field"] == "email"


def test_a_school_cannot_change_the_email_while_another_school_waits_for_acceptance(world, beech_admin):
    # A pending membership elsewhere makes the account shared already.
    added = service.add_member(world.oakwood, email=VICTIM, name="Vic", role="staff", provider="sso",
                               actor=world.oakwood_admin)
    service.add_member(world.beech, email=VICTIM, name="Vic", role="staff", provider="sso", actor=beech_admin)
    with pytest.raises(NotAllowed):
        service.update_member(world.oakwood, added.membership.id, name="Vic", email=ATTACKER, role="staff",
                              active=True, actor=world.oakwood_admin)


def test_the_platform_corrects_a_shared_accounts_email_and_the_credentials_still_go(runner, world, outbox):
    result = runner.invoke(args=["user", "change-email", "--email", "sam.jones@example.org", "--provider", "sso",
                                 "--new-email", "samuel.jones@example.org"])
    assert result.exit_code == 0, result.output
    sam = db.session.get(Account, world.sso_user.id)
    assert sam.email == "samuel.jones@example.org" and sam.password_hash is None
    assert "/reset/" in outbox.last_link("samuel.jones@example.org")


def test_csv_import_of_an_existing_sso_account_waits_for_acceptance(world, beech_admin, outbox):
    text = "email,name,role,provider\nsam.jones@example.org,Sam,admin,sso\nnew.one@example.org,New One,staff,sso\n"
    result = csv_import.import_members(world.beech, text, actor=beech_admin)
    sent = csv_import.send_invitations(world.beech, result, actor=beech_admin)
    db.session.commit()
    assert sent == 2
    sam = membership_of(world.sso_user, world.beech)
    assert sam.is_pending and not sam.is_usable
    assert "/join/" in outbox.text(outbox.last("sam.jones@example.org"))
    assert membership_of(lookup("sso", "new.one@example.org"), world.beech).is_usable
    assert "/reset/" in outbox.last_link("new.one@example.org")


def test_moving_a_member_to_an_existing_sso_account_waits_for_acceptance(world, beech_admin, outbox):
    create_account(provider="sso", email="pat.lee@example.org", name="Pat", tenants=[world.staffsafe],
                   password=ATTACKERS_PASSWORD)
    moved = service.assign_provider(world.beech, membership_of(world.beech_identity, world.beech).id, "sso",
                                    actor=beech_admin)
    db.session.commit()
    assert moved.pending and moved.membership.is_pending


def test_the_command_line_adds_an_existing_account_only_once_the_person_accepts(runner, world, outbox):
    result = runner.invoke(args=["user", "assign", "--email", "sam.jones@example.org", "--tenant", "beech"])
    assert result.exit_code == 0, result.output
    assert membership_of(world.sso_user, world.beech).is_pending
    assert "Beech Academy has added you" in outbox.last("sam.jones@example.org")["Subject"]


def test_in_production_the_command_line_sets_no_password_for_someone_else(runner, app, world):
    from dataclasses import replace

    app.config["SETTINGS"] = replace(app.config["SETTINGS"], env="production")
    result = runner.invoke(args=["user", "create", "--email", "ops2@cpoms.example", "--provider", "sso",
                                 "--tenant", "oakwood", "--operator", "--password", PASSWORD])
    assert result.exit_code == 1
    assert "first-time link" in result.stderr
    assert lookup("sso", "ops2@cpoms.example") is None


def test_operators_are_sso_accounts(runner, world):
    result = runner.invoke(args=["user", "create", "--email", "ops3@cpoms.example", "--provider", "identity",
                                 "--tenant", "oakwood", "--operator"])
    assert result.exit_code == 1 and "platform operator must have a CPOMS SSO account" in result.stderr


# --- accepting a school ---------------------------------------------------------------------------------------


@pytest.fixture
def pending_sam(world, beech_admin, outbox):
    service.add_member(world.beech, email="sam.jones@example.org", name="Sam", role="staff", provider="sso",
                       actor=beech_admin)
    db.session.commit()
    text = outbox.text(outbox.last("sam.jones@example.org"))
    return "/join/" + text.split("/join/", 1)[1].split()[0]


def test_a_waiting_member_cannot_sign_in_or_get_a_code_until_they_accept(app, world, pending_sam):
    refused = sso_login(app, "beech", "sam.jones@example.org", PASSWORD)
    assert refused.status_code == 200
    html = refused.get_data(as_text=True)
    assert "has added your account, but you have not accepted yet" in html
    # A wrong password learns nothing about the invitation.
    wrong = sso_login(app, "beech", "sam.jones@example.org", "Wrong-Password-1!").get_data(as_text=True)
    assert "Your email address or password was incorrect" in wrong and "accepted" not in wrong
    # Signed in at Oakwood, Sam's session gives Beech's applications nothing either.
    from tests.oidc.conftest import RelyingParty

    browser = Browser(app.test_client())
    browser.login("oakwood", "sam.jones@example.org", provider="sso")
    rp = RelyingParty(browser.client, world.beech_app, world.beech_app_secret)
    response = rp.authorize()
    assert response.status_code == 302 and "code=" not in response.headers["Location"]


def test_opening_the_link_changes_nothing_and_accepting_lets_the_person_in(app, world, pending_sam):
    browser = Browser(app.test_client())
    page = browser.get(pending_sam)
    assert page.status_code == 200 and "Beech Academy" in page.get_data(as_text=True)
    assert membership_of(world.sso_user, world.beech).is_pending  # mail scanners open links too
    accepted = browser.submit(pending_sam, {})
    assert accepted.status_code == 302
    db.session.expire_all()
    assert membership_of(world.sso_user, world.beech).is_usable
    assert db.session.get(Account, world.sso_user.id).email_verified  # the link proved the address
    assert sso_login(app, "beech", "sam.jones@example.org", PASSWORD).status_code == 302
    again = browser.get(pending_sam)
    assert again.status_code == 410 and "already been used" in again.get_data(as_text=True)


def test_accepting_an_account_with_no_password_leads_on_to_setting_one(app, world, beech_admin, outbox):
    created = service.add_member(world.oakwood, email=VICTIM, name="Vic", role="staff", provider="sso",
                                 actor=world.oakwood_admin)
    service.add_member(world.beech, email=VICTIM, name="Vic", role="staff", provider="sso", actor=beech_admin)
    db.session.commit()
    text = outbox.text(outbox.last(VICTIM))
    join = "/join/" + text.split("/join/", 1)[1].split()[0]
    browser = Browser(app.test_client())
    response = browser.submit(join, {})
    assert response.status_code == 302 and response.headers["Location"].startswith("/reset/")
    assert created.account.id == lookup("sso", VICTIM).id


def test_a_join_link_never_sets_a_password_and_a_reset_link_never_joins(app, world, pending_sam, outbox):
    client = app.test_client()
    assert client.get("/reset/" + pending_sam.rsplit("/", 1)[1]).status_code == 410
    Browser(client).submit("/t/oakwood/forgot-password?provider=sso", {"email": "sam.jones@example.org",
                                                                      "provider": "sso"})
    reset_token = outbox.last_link("sam.jones@example.org").rsplit("/", 1)[1]
    assert client.get("/join/" + reset_token).status_code == 410


def test_a_school_may_withdraw_an_invitation_nobody_accepted(app, world, beech_admin, pending_sam):
    member = membership_of(world.sso_user, world.beech)
    service.withdraw_invitation(world.beech, member.id, actor=beech_admin)
    db.session.commit()
    assert world.sso_user.membership_in(world.beech.id) is None
    assert app.test_client().get(pending_sam).status_code == 410


def test_the_join_page_and_mail_name_the_school_that_added_the_person(world, outbox, pending_sam):
    mail = outbox.last("sam.jones@example.org")
    assert mail["Subject"] == "Beech Academy has added you to CPOMS: please accept"
    assert "Beech Academy" in outbox.text(mail) and "nothing changes until you accept" in outbox.text(mail)


# --- email_verified -------------------------------------------------------------------------------------------


def test_email_verified_only_once_a_link_mailed_to_the_address_was_used(app, world, outbox):
    account = db.session.get(Account, world.beech_identity.id)
    assert not account.email_verified
    browser = Browser(app.test_client())
    browser.submit("/t/beech/forgot-password", {"email": "pat.lee@example.org", "provider": "identity"})
    set_password_through(outbox, browser, "pat.lee@example.org", "Walrus-Copper-Meadow-88?")
    db.session.expire_all()
    assert db.session.get(Account, world.beech_identity.id).email_verified
