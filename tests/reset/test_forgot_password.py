"""The forgotten-password page, as the help page describes it."""

import logging
import re
from html import unescape

import pytest
from sqlalchemy import event, select

from idp import audit
from idp.extensions import db
from idp.models import AuditEvent, ResetLink

UNKNOWN = "The email address you entered does not exist"


def ask_for_link(browser, slug, email, provider="identity", **kw):
    return browser.submit(f"/t/{slug}/forgot-password?provider={provider}", {"email": email, "provider": provider}, **kw)


def events(name):
    return db.session.scalars(select(AuditEvent).where(AuditEvent.event == name).order_by(AuditEvent.id)).all()


def test_page_has_reset_password_button_and_email_field(client, world):
    html = client.get("/t/oakwood/forgot-password").get_data(as_text=True)
    assert "Forgotten your password or using CPOMS for the first time?" in html
    assert ">Reset Password</button>" in html
    assert 'name="email"' in html and 'name="csrf_token"' in html


def test_provider_choice_defaults_to_the_provider_the_login_page_showed(client, world):
    html = client.get("/t/oakwood/forgot-password?provider=sso").get_data(as_text=True)
    assert "Authentication Provider" in html
    assert re.search(r'<input[^>]*checked[^>]*value="sso"|<input[^>]*value="sso"[^>]*checked', html)
    assert "CPOMS Identity" in html and "CPOMS SSO" in html
    assert "access to more than one CPOMS system (including CPOMS StaffSafe)" in html
    html = client.get("/t/oakwood/forgot-password").get_data(as_text=True)
    assert re.search(r'<input[^>]*checked[^>]*value="identity"|<input[^>]*value="identity"[^>]*checked', html)


def test_login_page_link_opens_forgot_password_with_its_provider(client, world):
    login = client.get("/t/oakwood/login?provider=sso").get_data(as_text=True)
    href = re.search(r'href="([^"]*forgot-password[^"]*)"', login).group(1).replace("&amp;", "&")
    html = client.get(href).get_data(as_text=True)
    assert re.search(r'<input[^>]*checked[^>]*value="sso"|<input[^>]*value="sso"[^>]*checked', html)


def test_provider_choice_hidden_when_school_has_no_sso_users(client, world):
    html = client.get("/t/beech/forgot-password?provider=sso").get_data(as_text=True)
    assert "Authentication Provider" not in html
    assert 'name="provider" value="identity"' in html


def test_known_email_gets_a_link_and_is_told_to_check_junk_and_whitelist(browser, world, outbox, frozen_clock):
    response = ask_for_link(browser, "beech", "Pat.Lee@example.org")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Check your email" in html and "pat.lee@example.org" in html
    assert "at midnight tonight (00:00 on Tuesday 3 March, UK time)" in html
    assert "junk, clutter and 'Other'" in unescape(html)
    assert "whitelist" in html and "notifications@cpoms.net" in html
    message = outbox.last("pat.lee@example.org")
    assert "Beech Academy" in message["Subject"]
    assert outbox.last_link().startswith("/reset/")


def test_colleague_can_ask_for_another_users_link(browser, world, outbox):
    browser.login("oakwood", "head@oakwood.example.org")
    ask_for_link(browser, "oakwood", "new.teacher@example.org")
    assert outbox.last()["To"].addresses[0].addr_spec == "new.teacher@example.org"


def test_unknown_email_shows_documented_message_with_help(browser, world, outbox):
    response = ask_for_link(browser, "oakwood", "nobody@example.org")
    html = unescape(response.get_data(as_text=True))
    assert UNKNOWN in html
    assert html.count(UNKNOWN) == 2  # error summary and next to the field
    assert "correct URL" in html and "spelling mistakes" in html
    assert "CPOMS Administrator" in html and "'Admin' area > 'Users' tab" in html
    assert "Authentication Provider" in html and "choose 'CPOMS SSO'" in html
    assert outbox.messages() == []
    assert [e.outcome for e in events(audit.RESET_REQUESTED)] == ["unknown_email"]


def test_wrong_authentication_provider_is_an_unknown_email(browser, world, outbox):
    # new.teacher@ has only an Identity account at oakwood.
    html = ask_for_link(browser, "oakwood", "new.teacher@example.org", provider="sso").get_data(as_text=True)
    assert UNKNOWN in html
    assert outbox.messages() == []


def test_sso_account_found_through_the_sso_choice(browser, world, outbox):
    html = ask_for_link(browser, "oakwood", "sam.jones@example.org", provider="sso").get_data(as_text=True)
    assert "Check your email" in html
    link = db.session.scalars(select(ResetLink)).one()
    assert link.account_id == world.sso_user.id and link.tenant_id == world.oakwood.id


def test_identity_and_sso_accounts_with_the_same_email_are_told_apart(browser, world):
    ask_for_link(browser, "oakwood", "sam.jones@example.org", provider="identity")
    link = db.session.scalars(select(ResetLink)).one()
    assert link.account_id == world.oakwood_identity.id


def test_email_of_another_school_does_not_exist_here(browser, world, outbox):
    assert UNKNOWN in ask_for_link(browser, "oakwood", "pat.lee@example.org").get_data(as_text=True)


def test_deactivated_member_gets_no_link(browser, world, outbox):
    world.beech_identity.membership_in(world.beech.id).active = False
    db.session.commit()
    html = ask_for_link(browser, "beech", "pat.lee@example.org").get_data(as_text=True)
    assert UNKNOWN in html
    assert outbox.messages() == []
    assert [e.outcome for e in events(audit.RESET_REQUESTED)] == ["inactive"]


def test_invalid_email_is_explained_next_to_the_field(browser, world):
    html = ask_for_link(browser, "oakwood", "not an email").get_data(as_text=True)
    assert "Enter an email address in the correct format" in html


def test_requests_are_audited(browser, world):
    ask_for_link(browser, "beech", "pat.lee@example.org")
    (event,) = events(audit.RESET_REQUESTED)
    assert event.outcome == "success" and event.subject_account_id == world.beech_identity.id
    assert event.tenant_id == world.beech.id


class TestRateLimits:
    @pytest.fixture(autouse=True)
    def tight_limits(self, app):
        app.config["THROTTLE_RULES"] = {"reset-email": "2 per 10 minutes", "reset-ip": "3 per 10 minutes"}

    def test_too_many_requests_for_one_email_are_refused_with_a_clear_message(self, browser, world, outbox):
        for _ in range(2):
            assert "Check your email" in ask_for_link(browser, "beech", "pat.lee@example.org").get_data(as_text=True)
        response = ask_for_link(browser, "beech", "pat.lee@example.org")
        assert response.status_code == 429
        assert "several password links in a short time" in response.get_data(as_text=True)
        assert len(outbox.messages()) == 2
        assert events(audit.RESET_REQUESTED)[-1].outcome == "throttled"

    def test_too_many_requests_from_one_address_are_refused(self, browser, world):
        for email in ("a@example.org", "b@example.org", "c@example.org"):
            ask_for_link(browser, "beech", email)
        response = ask_for_link(browser, "beech", "pat.lee@example.org")
        assert response.status_code == 429


class TestHiddenUnknownEmail:
    @pytest.fixture(autouse=True)
    def hide(self, world):
        world.oakwood.hide_unknown_email = True
        db.session.commit()

    @staticmethod
    def neutral(html, email):
        html = html.replace(email, "EMAIL")
        return re.sub(r'name="csrf_token"[^>]*value="[^"]+"', "", html)

    def test_known_and_unknown_addresses_get_the_same_answer(self, browser, world, outbox):
        known = ask_for_link(browser, "oakwood", "new.teacher@example.org", buffered=True)
        unknown = ask_for_link(browser, "oakwood", "nobody@example.org", buffered=True)
        assert known.status_code == unknown.status_code == 200
        assert UNKNOWN not in unknown.get_data(as_text=True)
        assert "If <strong>EMAIL</strong> is registered" in self.neutral(known.get_data(as_text=True),
                                                                         "new.teacher@example.org")
        assert self.neutral(known.get_data(as_text=True), "new.teacher@example.org") == self.neutral(
            unknown.get_data(as_text=True), "nobody@example.org")
        assert known.headers.get("Content-Length") != "0"

    def test_known_address_still_gets_its_mail_after_the_answer(self, browser, world, outbox):
        from idp import background

        ask_for_link(browser, "oakwood", "new.teacher@example.org", buffered=True)
        background.wait_idle()
        message = outbox.last("new.teacher@example.org")
        assert "Set your" in message["Subject"]
        link = db.session.scalars(select(ResetLink)).one()
        db.session.refresh(link)
        assert link.sent_at is not None

    def test_the_mail_is_made_off_the_request_and_its_connection(self, browser, world, outbox, monkeypatch):
        """Not when the response closes, in the worker that serves the connection: a slow mail server
        would then delay the next request on a keep-alive connection for a known address only."""
        import threading

        from idp import background
        from idp.reset import links

        ran_in, real = [], links.issue_reset_link
        monkeypatch.setattr(links, "issue_reset_link",
                            lambda *a, **kw: ran_in.append(threading.current_thread()) or real(*a, **kw))
        response = ask_for_link(browser, "oakwood", "new.teacher@example.org", buffered=True)
        response.close()
        background.wait_idle()
        assert ran_in and ran_in[0] is not threading.current_thread()
        assert "Set your" in outbox.last("new.teacher@example.org")["Subject"]

    def test_both_cases_do_the_same_database_work_before_the_answer(self, browser, world, monkeypatch):
        # A known address's link and mail are made after the response: before it, the two cases
        # run the very same statements, so the answer's timing cannot tell them apart.
        from idp.reset import links

        deferred = []
        monkeypatch.setattr(links, "_issue_after_response", lambda *args: deferred.append(args) or (lambda: None))
        statements = []

        def record(conn, cursor, statement, parameters, context, executemany):
            statements.append(statement)

        page = browser.get("/t/oakwood/forgot-password?provider=sso").get_data(as_text=True)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        work = []
        for email in ("sam.jones@example.org", "nobody@example.org"):
            statements.clear()
            event.listen(db.engine, "before_cursor_execute", record)
            try:
                browser.client.post("/t/oakwood/forgot-password", data={
                    "csrf_token": token, "email": email, "provider": "sso"})
            finally:
                event.remove(db.engine, "before_cursor_execute", record)
            work.append(list(statements))
        assert work[0] == work[1] and work[0]
        assert len(deferred) == 1  # only the known address has a link to make, after the answer
        assert db.session.scalars(select(ResetLink)).first() is None
        assert [e.outcome for e in events(audit.RESET_REQUESTED)] == ["accepted", "unknown_email"]


class TestMailFailure:
    @pytest.fixture
    def app_overrides(self, unused_port):
        return {"mail_url": f"smtp://127.0.0.1:{unused_port}"}

    def test_connection_refused_is_a_temporary_error_and_leaves_no_usable_link(
            self, browser, world, outbox, caplog, monkeypatch):
        # Alembic's fileConfig (run by the migrated fixture) disables loggers that already existed.
        monkeypatch.setattr(logging.getLogger("idp.mail.delivery"), "disabled", False)
        caplog.set_level(logging.INFO)
        response = ask_for_link(browser, "beech", "pat.lee@example.org")
        html = response.get_data(as_text=True)
        assert response.status_code == 503
        assert "please try again in a few minutes" in html.lower()
        link = db.session.scalars(select(ResetLink)).one()
        db.session.refresh(link)
        assert link.invalidated_at is not None and not link.is_usable
        assert events(audit.RESET_REQUESTED)[-1].outcome == "delivery_failed"
        assert "not sent" in caplog.text
        assert "/reset/" not in caplog.text


@pytest.fixture
def unused_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_pasted_address_with_spaces_and_capitals_is_found(browser, world, outbox):
    html = ask_for_link(browser, "beech", "  Pat.Lee@EXAMPLE.org ").get_data(as_text=True)
    assert "Check your email" in html
    assert outbox.last()["To"].addresses[0].addr_spec == "pat.lee@example.org"
