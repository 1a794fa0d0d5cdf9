"""A signed-in person changes their password from Account settings: the current one first, the same
policy and history as a reset, and every other sign-in ends while this one stays."""

from __future__ import annotations

from sqlalchemy import select

from idp import audit
from idp.accounts import passwords, sessions
from idp.extensions import db
from idp.models import Account, AuditEvent
from idp.reset import links
from tests.conftest import PASSWORD, Browser

NEW = "Walrus-Copper-Meadow-88?"


def change(browser, current, new, confirm=None):
    page = "/account/password?tenant=beech"
    return browser.submit(page, {"current": current, "password": new, "confirm": confirm or new}, post_url=page)


def test_the_password_changes_and_only_this_browser_stays_signed_in(app, browser, world):
    browser.login("beech", "pat.lee@example.org")
    elsewhere = Browser(app.test_client())
    elsewhere.login("beech", "pat.lee@example.org")
    response = change(browser, PASSWORD, NEW)
    assert response.status_code == 302
    account = db.session.get(Account, world.beech_identity.id)
    assert passwords.verify_password(account.password_hash, NEW)
    assert browser.get("/t/beech/").status_code == 200
    assert elsewhere.get("/t/beech/").status_code == 302
    assert len(sessions.of_account(account)) == 1


def test_the_current_password_must_be_right(browser, world):
    browser.login("beech", "pat.lee@example.org")
    response = change(browser, "Not-The-Password-1!", NEW)
    assert response.status_code == 400
    assert "Your current password is incorrect" in response.get_data(as_text=True)
    assert passwords.verify_password(db.session.get(Account, world.beech_identity.id).password_hash, PASSWORD)


def test_guessing_the_current_password_here_meets_the_login_limits(browser, world):
    browser.login("beech", "pat.lee@example.org")
    for _ in range(5):
        change(browser, "Not-The-Password-1!", NEW)
    response = change(browser, PASSWORD, NEW)
    assert response.status_code == 429 and "Too many unsuccessful sign-in attempts" in response.get_data(as_text=True)


def test_the_policy_and_history_apply(browser, world):
    browser.login("beech", "pat.lee@example.org")
    html = change(browser, PASSWORD, PASSWORD).get_data(as_text=True)
    assert "You have used this password for CPOMS before" in html
    html = change(browser, PASSWORD, "short").get_data(as_text=True)
    assert "at least one capital letter" in html or "at least 8 characters" in html
    html = change(browser, PASSWORD, NEW, confirm="Something-Else-77!").get_data(as_text=True)
    assert "The two passwords do not match" in html


def test_signed_out_people_are_sent_to_sign_in(client, world):
    response = client.get("/account/password?tenant=beech")
    assert response.status_code == 302 and response.headers["Location"].startswith("/t/beech/login?next=")


def test_a_successful_sign_in_voids_outstanding_reset_links(browser, world, outbox):
    link = links.issue_reset_link(world.beech_identity, world.beech)
    db.session.commit()
    browser.login("beech", "pat.lee@example.org")
    assert browser.get(f"/reset/{link.token}").status_code == 410
    refused = db.session.scalars(select(AuditEvent).where(AuditEvent.event == audit.RESET_EXPIRED)).one()
    assert refused.detail["reason"] == "signed in since"
