"""Admin > Users through the browser: list, search, profile, add, provider, links, CSV import."""

from __future__ import annotations

import io

from sqlalchemy import select

from idp import audit
from idp.extensions import db
from idp.models import Account, AuditEvent, Membership, ResetLink, Token
from tests.conftest import csrf_token_from

from .conftest import count_statements, make_token, membership_of


def _add_teachers(tenant, count, start=0):
    # Straight rows: the query-count test is about the page, not about creating accounts.
    for n in range(start, start + count):
        account = Account(provider="identity", tenant_id=tenant.id, email=f"t{n:03}@example.org",
                          name=f"Teacher {n:03}")
        account.memberships.append(Membership(tenant_id=tenant.id, role="staff"))
        db.session.add(account)
    db.session.commit()


def test_users_page_lists_members_with_provider_role_and_status(oakwood_browser, world):
    page = oakwood_browser.get("/t/oakwood/admin/users").get_data(as_text=True)
    assert "4 users" in page
    assert "Alex Head" in page and "New Teacher" in page and "Pat Lee" not in page
    assert "CPOMS SSO" in page and "Invited" in page
    assert 'aria-current="page">Users</a>' in page


def test_users_page_search_and_filters(oakwood_browser, world):
    page = oakwood_browser.get("/t/oakwood/admin/users?q=teacher").get_data(as_text=True)
    page = page.split('id="main-content"', 1)[1]  # the header names the signed-in admin
    assert "1 user found" in page and "New Teacher" in page and "Alex Head" not in page
    page = oakwood_browser.get("/t/oakwood/admin/users?provider=sso").get_data(as_text=True)
    assert "1 user found" in page and "Sam Jones<" in page
    page = oakwood_browser.get("/t/oakwood/admin/users?role=admin").get_data(as_text=True)
    assert "1 user found" in page and "Alex Head" in page
    # Nonsense filters are ignored, never an error.
    assert oakwood_browser.get("/t/oakwood/admin/users?role=owner&provider=x&page=-3").status_code == 200


def test_users_page_paginates_and_keeps_the_filters(oakwood_browser, world):
    _add_teachers(world.oakwood, 30)
    page = oakwood_browser.get("/t/oakwood/admin/users?q=teacher").get_data(as_text=True)
    assert "31 users found" in page and "Page 1 of 2" in page
    assert 'href="/t/oakwood/admin/users?q=teacher&amp;page=2"' in page
    second = oakwood_browser.get("/t/oakwood/admin/users?q=teacher&page=2").get_data(as_text=True)
    assert "Page 2 of 2" in second and "Teacher 029" in second and "Teacher 000" not in second


def test_users_page_uses_the_same_number_of_queries_whatever_the_number_of_members(oakwood_browser, world):
    _add_teachers(world.oakwood, 5)
    oakwood_browser.get("/t/oakwood/admin/users")
    with count_statements() as few:
        assert oakwood_browser.get("/t/oakwood/admin/users").status_code == 200
    _add_teachers(world.oakwood, 55, start=5)
    with count_statements() as many:
        page = oakwood_browser.get("/t/oakwood/admin/users").get_data(as_text=True)
    assert "64 users" in page
    assert len(many) == len(few), many
    assert len(few) <= 8, few


def test_profile_page_shows_details_provider_2fa_and_link_status(oakwood_browser, world, frozen_clock):
    member = membership_of(world.invited, world.oakwood)
    page = oakwood_browser.get(f"/t/oakwood/admin/users/{member.id}").get_data(as_text=True)
    assert 'value="new.teacher@example.org"' in page
    assert "Authentication Provider" in page and "Two-step verification" in page
    assert "No password link has been sent" in page

    response = oakwood_browser.submit(f"/t/oakwood/admin/users/{member.id}", {},
                                      post_url=f"/t/oakwood/admin/users/{member.id}/send-link")
    assert response.status_code == 302
    page = oakwood_browser.get(response.headers["Location"]).get_data(as_text=True)
    assert "A password link was sent to the user." in page
    assert "Last invitation sent" in page and "2 March 2026 at 09:00" in page
    assert "Sent, not used yet" in page and "midnight" in page
    link = db.session.scalars(select(ResetLink).where(ResetLink.account_id == world.invited.id)).one()
    assert link.tenant_id == world.oakwood.id


def test_editing_a_member_with_a_taken_email_shows_the_error_next_to_the_field(oakwood_browser, world):
    member = membership_of(world.invited, world.oakwood)
    response = oakwood_browser.submit(
        f"/t/oakwood/admin/users/{member.id}",
        {"name": "New Teacher", "email": "head@oakwood.example.org", "role": "staff", "active": "yes"},
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "There is a problem" in page
    assert 'href="#email">Another CPOMS Identity account already uses head@oakwood.example.org' in page
    assert db.session.get(Account, world.invited.id).email == "new.teacher@example.org"


def test_editing_a_member_with_nonsense_values_never_errors(oakwood_browser, world):
    member = membership_of(world.invited, world.oakwood)
    response = oakwood_browser.submit(f"/t/oakwood/admin/users/{member.id}",
                                      {"name": "", "email": "nope", "role": "god", "active": "maybe"})
    assert response.status_code == 400
    assert "There is a problem" in response.get_data(as_text=True)


def test_deactivating_through_the_page_revokes_tokens_and_signs_the_member_out(oakwood_browser, world, app):
    from tests.conftest import Browser

    sam = Browser(app.test_client())
    sam.login("oakwood", "sam.jones@example.org", password="Different-Pass-77!")
    assert sam.get("/t/oakwood/").status_code == 200
    token = make_token(world.oakwood_identity, world.oakwood, world.oakwood_app)

    member = membership_of(world.oakwood_identity, world.oakwood)
    response = oakwood_browser.submit(
        f"/t/oakwood/admin/users/{member.id}",
        {"name": "Sam Jones (local)", "email": "sam.jones@example.org", "role": "staff", "active": "no"},
    )
    assert response.status_code == 302
    assert "done=deactivated" in response.headers["Location"]
    assert db.session.get(Token, token.id).revoked_at is not None
    assert sam.get("/t/oakwood/").headers["Location"].startswith("/t/oakwood/login")


def test_adding_a_user_through_the_page_invites_them(oakwood_browser, world, app):
    response = oakwood_browser.submit("/t/oakwood/admin/users/new", {
        "email": "Fresh.Start@Example.org", "name": "Fresh Start", "role": "staff", "provider": "identity"})
    assert response.status_code == 200
    assert "fresh.start@example.org was added" in response.get_data(as_text=True)
    assert "link to set their password" in response.get_data(as_text=True)
    account = db.session.scalars(select(Account).where(Account.email == "fresh.start@example.org")).one()
    assert account.tenant_id == world.oakwood.id and not account.has_password
    mails = [p.read_text() for p in app.config["SETTINGS"].outbox_path.glob("*.eml")]
    assert any("fresh.start@example.org" in mail for mail in mails)


def test_adding_a_user_twice_shows_a_conflict_next_to_the_email(oakwood_browser, world):
    response = oakwood_browser.submit("/t/oakwood/admin/users/new", {
        "email": "head@oakwood.example.org", "name": "Again", "role": "staff", "provider": "identity"})
    assert response.status_code == 200
    assert 'href="#email">head@oakwood.example.org already has a CPOMS Identity account in this school' in \
        response.get_data(as_text=True)


def test_changing_provider_through_the_page_keeps_the_membership(oakwood_browser, world):
    member = membership_of(world.invited, world.oakwood)
    member.role = "admin"
    db.session.commit()
    response = oakwood_browser.submit(f"/t/oakwood/admin/users/{member.id}", {"provider": "sso"},
                                      post_url=f"/t/oakwood/admin/users/{member.id}/provider")
    assert response.status_code == 302
    assert response.headers["Location"].startswith(f"/t/oakwood/admin/users/{member.id}?")
    moved = db.session.get(Membership, member.id)
    assert moved.account.provider == "sso" and moved.role == "admin" and moved.active
    assert db.session.get(Account, world.invited.id).retired
    page = oakwood_browser.get(response.headers["Location"]).get_data(as_text=True)
    assert "told by email which login to use" in page
    assert db.session.scalars(select(AuditEvent).where(AuditEvent.event == audit.PROVIDER_REASSIGNED)).one()


def test_resetting_2fa_through_the_page(oakwood_browser, world):
    member = membership_of(world.oakwood_identity, world.oakwood)
    response = oakwood_browser.submit(f"/t/oakwood/admin/users/{member.id}", {},
                                      post_url=f"/t/oakwood/admin/users/{member.id}/reset-2fa")
    assert response.status_code == 302
    assert db.session.scalars(select(AuditEvent).where(AuditEvent.event == audit.MFA_RESET)).one()


def test_admin_posts_without_a_csrf_token_are_refused(oakwood_browser, world):
    member = membership_of(world.invited, world.oakwood)
    response = oakwood_browser.client.post(f"/t/oakwood/admin/users/{member.id}",
                                           data={"name": "X", "email": "x@example.org", "role": "admin",
                                                 "active": "yes"})
    assert response.status_code in (400, 403)
    assert db.session.get(Account, world.invited.id).name == "New Teacher"


# --- CSV import ------------------------------------------------------------------------------------------------


def _upload(browser, text: str):
    page = browser.get("/t/oakwood/admin/users/import").get_data(as_text=True)
    return browser.client.post(
        "/t/oakwood/admin/users/import",
        data={"csrf_token": csrf_token_from(page), "file": (io.BytesIO(text.encode()), "users.csv")},
        content_type="multipart/form-data",
    )


def _confirm(browser, preview_html: str):
    import html
    import re

    content = html.unescape(re.search(r'name="content" type="hidden" value="([^"]*)"', preview_html).group(1))
    return browser.client.post("/t/oakwood/admin/users/import/confirm",
                               data={"csrf_token": csrf_token_from(preview_html), "content": content})


GOOD_CSV = (
    "email,name,role,provider\n"
    "ann.one@example.org,Ann One,staff,identity\n"
    "bob.two@example.org,Bob Two,admin,sso\n"
    "SAM.JONES@example.org,Sam Jones,staff,identity\n"  # a conflict: already local in oakwood
)


def test_csv_import_preview_lists_row_errors_and_offers_no_import(oakwood_browser, world):
    text = (
        "email,name,role,provider\n"
        "not-an-email,Nobody,staff,identity\n"
        "ann.one@example.org,Ann One,boss,identity\n"
        "cat@example.org,Cat,staff,google\n"
        "dan@example.org,Dan,staff,identity\n"
        "DAN@example.org,Dan Again,staff,identity\n"
        "head@oakwood.example.org,Alex,admin,identity\n"
        "sam.jones@example.org,Sam,staff,sso\n"
    )
    response = _upload(oakwood_browser, text)
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "There is a problem with the file" in page and "6 problems found" in page
    assert "is not a valid email address" in page
    assert "The role must be staff or admin" in page
    assert "The provider must be identity or sso" in page
    assert "Duplicate of line 5" in page
    assert "head@oakwood.example.org already has a CPOMS Identity account in this school" in page
    assert "sam.jones@example.org is already a CPOMS SSO user of this school" in page
    assert "import/confirm" not in page


def test_csv_import_refuses_the_whole_file_when_any_row_is_wrong(oakwood_browser, world):
    before = db.session.query(Account).count()
    good = "email,name,role,provider\nann.one@example.org,Ann One,staff,identity\n"
    preview = _upload(oakwood_browser, good).get_data(as_text=True)
    # Someone tampers with the hidden field: the confirm step re-validates and imports nothing.
    import re

    tampered = re.sub(r'(name="content" type="hidden" value=")[^"]*', r"\g<1>email,name,role,provider&#10;"
                      r"ann.one@example.org,Ann,staff,identity&#10;bad,Bad,staff,identity", preview)
    response = _confirm(oakwood_browser, tampered)
    assert response.status_code == 400
    assert "There is a problem with the file" in response.get_data(as_text=True)
    assert db.session.query(Account).count() == before


def test_csv_import_fails_whole_when_a_conflict_appears_after_the_preview(oakwood_browser, world):
    from idp.admin import service

    text = "email,name,role,provider\nann.one@example.org,Ann One,staff,identity\nzed@example.org,Zed,staff,identity\n"
    preview = _upload(oakwood_browser, text).get_data(as_text=True)
    service.add_member(world.oakwood, email="zed@example.org", name="Zed", role="staff", provider="identity",
                       actor=world.oakwood_admin, mail=False)
    db.session.commit()
    response = _confirm(oakwood_browser, preview)
    assert response.status_code == 400
    assert db.session.scalars(select(Account).where(Account.email == "ann.one@example.org")).first() is None


def test_csv_import_adds_everyone_in_one_go_after_confirmation(oakwood_browser, world):
    text = GOOD_CSV.rsplit("SAM", 1)[0] + "sam.jones@example.org,Sam Jones,admin,sso\n".replace(
        "sam.jones", "carol.three")
    preview = _upload(oakwood_browser, text).get_data(as_text=True)
    assert "Check the 3 users below" in preview and "Nothing has been imported yet" in preview
    assert db.session.scalars(select(Account).where(Account.email == "ann.one@example.org")).first() is None
    response = _confirm(oakwood_browser, preview)
    assert response.status_code == 200
    assert "3 users imported" in response.get_data(as_text=True)
    for email, provider, role in [("ann.one@example.org", "identity", "staff"), ("bob.two@example.org", "sso", "admin"),
                                  ("carol.three@example.org", "sso", "admin")]:
        account = db.session.scalars(select(Account).where(Account.email == email)).one()
        assert account.provider == provider
        assert membership_of(account, world.oakwood).role == role
    added = db.session.scalars(select(AuditEvent).where(AuditEvent.event == audit.MEMBER_ADDED)).all()
    assert len(added) == 3


def test_csv_import_sends_its_invitations_over_one_smtp_connection(oakwood_browser, world, app, smtp_server):
    from dataclasses import replace

    controller, handler = smtp_server
    app.config["SETTINGS"] = replace(app.config["SETTINGS"], mail_url=f"smtp://{controller.hostname}:{controller.port}")
    text = "email,name,role,provider\n" + "".join(
        f"new.person{n}@example.org,New Person {n},staff,identity\n" for n in range(4))
    response = _confirm(oakwood_browser, _upload(oakwood_browser, text).get_data(as_text=True))
    assert "4 users imported" in response.get_data(as_text=True)
    assert sorted(e.rcpt_tos[0] for e in handler.envelopes) == [f"new.person{n}@example.org" for n in range(4)]
    assert len(set(handler.peers)) == 1  # one connection, one TLS negotiation and login, for every invitation


def test_csv_import_of_an_existing_sso_account_adds_it_as_member(oakwood_browser, world):
    preview = _upload(oakwood_browser, "email,name,role,provider\nsam.jones@example.org,Sam,staff,sso\n")
    # Sam is already an SSO member of oakwood: a conflict; at beech he would be added.
    assert "already a CPOMS SSO user of this school" in preview.get_data(as_text=True)


def test_csv_upload_that_is_not_csv_text_is_explained(oakwood_browser, world):
    page = _upload(oakwood_browser, "").get_data(as_text=True)
    assert "Choose a CSV file to upload" in page
    page = _upload(oakwood_browser, "mail,who\nx,y\n").get_data(as_text=True)
    assert "the header must name the columns email,name,role,provider" in page
