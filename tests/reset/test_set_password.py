"""The link page: set or reset the password, once, under the password policy."""

import re
import threading
from datetime import timedelta
from html import unescape

from flask import g
from sqlalchemy import select

from idp import audit, clock
from idp.accounts import passwords
from idp.extensions import db
from idp.models import Account, AuditEvent, ResetLink, Token
from idp.accounts import sessions as account_sessions
from idp.reset import links
from tests.conftest import PASSWORD, csrf_token_from

NEW_PASSWORD = "Lantern-Otter-Quarry-19!"


def request_link(browser, slug, email, provider="identity"):
    return browser.submit(f"/t/{slug}/forgot-password?provider={provider}", {"email": email, "provider": provider})


def set_password(browser, url, password=NEW_PASSWORD, confirm=None):
    return browser.submit(url, {"password": password, "confirm": password if confirm is None else confirm})


def events(name):
    return db.session.scalars(select(AuditEvent).where(AuditEvent.event == name).order_by(AuditEvent.id)).all()


def reload(obj):
    db.session.refresh(obj)
    return obj


def test_reset_page_names_the_school_and_the_account(browser, world, outbox):
    request_link(browser, "beech", "pat.lee@example.org")
    html = browser.get(outbox.last_link()).get_data(as_text=True)
    assert "<h1>Reset your password</h1>" in html
    assert "Beech Academy" in html and 'value="pat.lee@example.org"' in html


def test_invited_account_is_asked_to_set_its_password(browser, world, outbox):
    request_link(browser, "oakwood", "new.teacher@example.org")
    message = outbox.last()
    assert message["Subject"] == "Set your CPOMS password for Oakwood Primary School"
    html = browser.get(outbox.last_link()).get_data(as_text=True)
    assert "<h1>Set your password</h1>" in html
    assert reload(db.session.scalars(select(ResetLink)).one()).purpose == "invite"


def test_password_fields_let_password_managers_update_the_right_entry(browser, world, outbox):
    request_link(browser, "beech", "pat.lee@example.org")
    html = browser.get(outbox.last_link()).get_data(as_text=True)
    assert re.search(r'<input type="hidden" name="username" value="pat.lee@example.org" autocomplete="username">', html)
    assert html.count('autocomplete="new-password"') == 2
    assert "password-rules.js" in html and "<script>" not in html and "style=" not in html


def test_rules_are_listed_without_javascript_and_passwords_never_expire(browser, world, outbox):
    request_link(browser, "beech", "pat.lee@example.org")
    html = browser.get(outbox.last_link()).get_data(as_text=True)
    for _, text in passwords.rule_descriptions(8):
        assert text in html
    assert "Passwords do not expire" in html


def test_new_password_works_and_user_is_sent_to_log_in(browser, world, outbox):
    request_link(browser, "beech", "pat.lee@example.org")
    response = set_password(browser, outbox.last_link())
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/t/beech/login?provider=identity")
    login_page = browser.get(response.headers["Location"]).get_data(as_text=True)
    assert "Your new password has been saved" in login_page
    assert browser.get("/t/beech/").status_code == 302  # not signed in automatically
    assert "incorrect" in browser.login("beech", "pat.lee@example.org", PASSWORD).get_data(as_text=True)
    assert browser.login("beech", "pat.lee@example.org", NEW_PASSWORD).status_code == 302


def test_success_is_audited(browser, world, outbox):
    request_link(browser, "beech", "pat.lee@example.org")
    set_password(browser, outbox.last_link())
    (used,) = events(audit.RESET_USED)
    (changed,) = events(audit.PASSWORD_CHANGED)
    assert used.subject_account_id == changed.subject_account_id == world.beech_identity.id
    assert used.tenant_id == world.beech.id


def test_link_works_only_once_and_a_used_link_says_already_used(browser, world, outbox):
    request_link(browser, "beech", "pat.lee@example.org")
    url = outbox.last_link()
    assert set_password(browser, url).status_code == 302
    again = browser.get(url)
    page = again.get_data(as_text=True)
    assert again.status_code == 410 and "<h1>This link has already been used</h1>" in page
    assert "expired" not in page.split("<h1>", 1)[1].split("<form", 1)[0]
    assert 'href="/t/beech/login?provider=identity" id="login-link"' in page


def test_an_expired_link_still_says_expired(browser, world, outbox, frozen_clock):
    request_link(browser, "beech", "pat.lee@example.org")
    url = outbox.last_link()
    frozen_clock.advance(timedelta(days=1))
    page = browser.get(url)
    assert page.status_code == 410 and "<h1>This link has expired</h1>" in page.get_data(as_text=True)


def test_two_simultaneous_submissions_exactly_one_succeeds(app, world, monkeypatch):
    link = links.issue_reset_link(world.beech_identity, world.beech)
    db.session.commit()  # as the request boundary would
    token = link.token
    both_checked = threading.Barrier(2, timeout=20)
    original = passwords.check_policy

    def checked_then_wait(*args, **kwargs):
        original(*args, **kwargs)
        both_checked.wait()  # both requests have passed every check before either claims the link

    monkeypatch.setattr(passwords, "check_policy", checked_then_wait)
    outcomes = []

    def redeem(password):
        with app.app_context():
            try:
                links.redeem_reset_link(links.open_link(token), password, password, ip="192.0.2.1")
                db.session.commit()  # the request boundary
                outcomes.append(("ok", password))
            except links.LinkExpired:
                outcomes.append(("expired", password))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=redeem, args=(p,)) for p in (NEW_PASSWORD, "Walrus-Copper-Meadow-88?")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(o for o, _ in outcomes) == ["expired", "ok"]
    winner = next(p for o, p in outcomes if o == "ok")
    account = reload(world.beech_identity)
    assert passwords.verify_password(account.password_hash, winner)
    assert len(events(audit.PASSWORD_CHANGED)) == 1


def test_expired_link_offers_a_new_one_prefilled(browser, world, frozen_clock, outbox):
    request_link(browser, "oakwood", "sam.jones@example.org", provider="sso")
    url = outbox.last_link()
    frozen_clock.advance(timedelta(days=1))
    page = browser.get(url)
    html = page.get_data(as_text=True)
    assert page.status_code == 410
    assert "This link has expired" in html
    assert 'action="/t/oakwood/forgot-password"' in html
    assert 'value="sam.jones@example.org"' in html
    assert re.search(r'<input[^>]*checked[^>]*value="sso"|<input[^>]*value="sso"[^>]*checked', html)
    # The offered form sends a new link straight away.
    again = browser.client.post("/t/oakwood/forgot-password", data={
        "csrf_token": csrf_token_from(html), "email": "sam.jones@example.org", "provider": "sso"})
    assert "Check your email" in again.get_data(as_text=True)
    assert outbox.last_link() != url


def test_unknown_link_says_it_has_expired_without_naming_anyone(browser, world):
    page = browser.get("/reset/not-a-real-token")
    html = page.get_data(as_text=True)
    assert page.status_code == 410
    assert "This link has expired" in html and "Forgotten your password or using CPOMS for the first time?" in html


def test_every_failed_rule_is_listed_at_once(browser, world, outbox):
    request_link(browser, "beech", "pat.lee@example.org")
    url = outbox.last_link()
    response = set_password(browser, url, "abc", confirm="abd")
    html = unescape(response.get_data(as_text=True))
    for message in (
        "at least 8 characters",
        "at least one capital letter",
        "at least one number",
        "at least one special character",
        "too common or easy to guess",
        "The two passwords do not match",
    ):
        assert message in html
        assert html.count(message) == 2  # in the error summary and next to its field
    assert "There is a problem" in html
    assert browser.get(url).status_code == 200  # a refused password does not use up the link


def test_earlier_password_cannot_be_used_again(browser, world, outbox):
    request_link(browser, "beech", "pat.lee@example.org")
    html = set_password(browser, outbox.last_link(), PASSWORD).get_data(as_text=True)
    assert "You have used this password for CPOMS before" in html
    request_link(browser, "beech", "pat.lee@example.org")
    assert set_password(browser, outbox.last_link(), NEW_PASSWORD).status_code == 302
    request_link(browser, "beech", "pat.lee@example.org")
    assert "used this password" in set_password(browser, outbox.last_link(), PASSWORD).get_data(as_text=True)


def test_server_ticks_the_rules_already_met_after_a_refusal(browser, world, outbox):
    request_link(browser, "beech", "pat.lee@example.org")
    html = set_password(browser, outbox.last_link(), "password", confirm="password").get_data(as_text=True)
    assert re.search(r'data-rule="length" class="met', html)
    assert re.search(r'data-rule="match" class="met', html)
    assert re.search(r'data-rule="capital" class="unmet"', html)


def test_only_the_newest_link_works_and_an_older_one_says_a_newer_link_was_sent(browser, world, outbox):
    request_link(browser, "beech", "pat.lee@example.org")
    first = outbox.last_link()
    request_link(browser, "beech", "pat.lee@example.org")
    second = outbox.last_link()
    assert first != second
    older = browser.get(first)
    assert older.status_code == 410 and "<h1>A newer link was sent</h1>" in older.get_data(as_text=True)
    assert set_password(browser, first).status_code == 410
    assert set_password(browser, second).status_code == 302


def test_a_newer_link_whose_mail_failed_leaves_the_older_one_working(browser, world, outbox):
    request_link(browser, "beech", "pat.lee@example.org")
    first = outbox.last_link()
    # A newer link that nobody received (its mail failed) does not replace the one in the inbox.
    failed = links._create_link(world.beech_identity, world.beech, links.RESET, requested_by=None, ip=None)[0]
    links._mark(failed.id, invalidated_at=clock.now())
    db.session.commit()
    assert browser.get(first).status_code == 200


def test_password_change_ends_other_sessions_links_and_tokens(app, browser, world, outbox):
    account = world.beech_identity
    other_browser = app.test_client()
    from tests.conftest import Browser

    Browser(other_browser).login("beech", "pat.lee@example.org")
    assert other_browser.get("/t/beech/").status_code == 200
    now = clock.now()
    token = Token(client_id=world.beech_app.client_id, account_id=account.id, tenant_id=world.beech.id,
                  access_token_hash="a" * 64, refresh_token_hash="r" * 64, family_id="f", auth_time=0,
                  access_expires_at=now + timedelta(hours=1), refresh_expires_at=now + timedelta(days=30))
    db.session.add(token)
    db.session.commit()
    first = links.issue_reset_link(account, world.beech)
    second = links.issue_reset_link(account, world.beech)

    assert set_password(browser, f"/reset/{second.token}").status_code == 302

    g.pop("_login_user", None)  # the shared test app context would otherwise keep Flask-Login's cached user
    assert other_browser.get("/t/beech/").status_code == 302  # signed out there
    assert reload(token).revoked_at is not None
    assert reload(first).invalidated_at is not None
    assert browser.get(f"/reset/{first.token}").status_code == 410
    assert not account_sessions.of_account(account)  # the server forgot every sign-in


def test_deactivated_member_cannot_use_an_earlier_link(browser, world, outbox):
    request_link(browser, "beech", "pat.lee@example.org")
    world.beech_identity.membership_in(world.beech.id).active = False
    db.session.commit()
    assert browser.get(outbox.last_link()).status_code == 410


def test_invited_user_first_sign_in_end_to_end(app, browser, runner, outbox):
    from idp.tenants import create_tenant

    create_tenant(slug="elm", name="Elm Tree Primary", product="cpoms")
    db.session.commit()
    result = runner.invoke(args=["user", "create", "--email", "Robin.Fox@example.org", "--provider", "identity",
                                 "--tenant", "elm", "--name", "Robin Fox"])
    assert result.exit_code == 0, result.output
    account = db.session.scalars(select(Account).where(Account.email == "robin.fox@example.org")).one()
    assert account.password_hash is None
    # Invited: logging in does not work yet.
    assert "incorrect" in browser.login("elm", "robin.fox@example.org", NEW_PASSWORD).get_data(as_text=True)

    # The person follows 'Forgotten your password or using CPOMS for the first time?' themselves.
    login_page = browser.get("/t/elm/login").get_data(as_text=True)
    href = unescape(re.search(r'href="([^"]*forgot-password[^"]*)"', login_page).group(1))
    sent = browser.submit(href, {"email": "robin.fox@example.org", "provider": "identity"})
    assert "Check your email" in sent.get_data(as_text=True)
    message = outbox.last("robin.fox@example.org")
    assert "Set your" in message["Subject"] and "Elm Tree Primary" in outbox.text(message)

    page = browser.get(outbox.last_link())
    assert "<h1>Set your password</h1>" in page.get_data(as_text=True)
    done = set_password(browser, outbox.last_link())
    assert done.status_code == 302

    signed_in = browser.login("elm", "robin.fox@example.org", NEW_PASSWORD)
    assert signed_in.status_code == 302
    assert browser.get("/t/elm/").status_code == 200


def test_admin_services_issue_and_describe_links(app, world, frozen_clock, outbox):
    assert links.link_status(world.invited, world.oakwood) is None
    link = links.send_invitation(world.invited, world.oakwood, requested_by=world.oakwood_admin, ip="192.0.2.9")
    assert link.purpose == "invite" and len(link.token) >= 43
    assert link.token_hash != link.token and len(link.token_hash) == 64
    status = links.link_status(world.invited, world.oakwood)
    assert status["state"] == "pending" and status["purpose"] == "invite"
    assert status["expires_text"] == "at midnight tonight (00:00 on Tuesday 3 March, UK time)"
    assert status["sent_at"].hour == 9
    (event,) = events(audit.RESET_REQUESTED)
    assert event.actor_account_id == world.oakwood_admin.id and event.ip == "192.0.2.9"
    frozen_clock.advance(timedelta(days=1))
    assert links.link_status(world.invited, world.oakwood)["state"] == "expired"
    assert "Set your" in outbox.last("new.teacher@example.org")["Subject"]


def test_request_logs_never_show_the_token(app, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="werkzeug")
    logging.getLogger("werkzeug").disabled = False
    logging.getLogger("werkzeug").info('%s - - [%s] %s', "127.0.0.1", "now", '"GET /reset/abcDEF123_-xyz HTTP/1.1" 200 -')
    assert "abcDEF123" not in caplog.text and "/reset/[redacted]" in caplog.text


def test_setting_a_new_password_lifts_the_lock_on_failed_logins(app, browser, world, outbox):
    # The locked-out message tells people to set a new password with the forgotten-password link.
    app.config["THROTTLE_RULES"] = {"login-account-ip": "3 per minute"}
    for _ in range(3):
        browser.login("beech", "pat.lee@example.org", "wrong")
    assert browser.login("beech", "pat.lee@example.org", PASSWORD).status_code == 429
    request_link(browser, "beech", "pat.lee@example.org")
    set_password(browser, outbox.last_link())
    assert browser.login("beech", "pat.lee@example.org", NEW_PASSWORD).status_code == 302


def test_rules_are_a_hint_above_the_field_with_neutral_marks_until_something_is_typed(browser, world, outbox):
    request_link(browser, "beech", "pat.lee@example.org")
    html = browser.get(outbox.last_link()).get_data(as_text=True)
    assert html.index('id="password-rules"') < html.index('name="password"')
    assert 'class="rules rules--neutral" id="password-rules"' in html
    assert not re.search(r'data-rule="[a-z]+" class="(met|unmet)', html)
    assert re.search(r'aria-describedby="password-rules-intro password-rules password-advice"[^>]*id="password"', html)


def test_the_email_is_read_only_text_and_a_show_password_toggle_is_offered(browser, world, outbox):
    request_link(browser, "beech", "pat.lee@example.org")
    html = browser.get(outbox.last_link()).get_data(as_text=True)
    assert '<p class="read-only-value" aria-labelledby="username-label" id="username-text">pat.lee@example.org</p>' in html
    assert "readonly" not in html and "disabled" not in html
    assert html.count('class="button button--secondary password-toggle" aria-controls="password" aria-pressed="false" hidden') == 1
    assert 'aria-controls="confirm" aria-pressed="false"' in html


def test_set_password_and_change_password_share_one_new_password_block(app):
    from pathlib import Path

    templates = Path(app.root_path).parent / "templates"
    for name in ("reset/set_password.html", "account_settings/change_password.html"):
        text = (templates / name).read_text()
        assert '{% from "_new_password.html" import new_password %}' in text and 'id="password-rules"' not in text
