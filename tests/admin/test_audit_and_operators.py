"""Admin > Audit (a tenant's own events, read-only) and the operators' /admin (tenants, all events)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from idp import audit, clock
from idp.accounts.directory import create_account
from idp.admin import service
from idp.extensions import db
from idp.models import AuditEvent, Tenant
from tests.conftest import PASSWORD, Browser

from .conftest import count_statements, membership_of


def test_audit_log_lists_this_tenants_events_newest_first(world, oakwood_browser):
    for n in range(3):
        audit.record(audit.MEMBER_CHANGED, tenant=world.oakwood, actor=world.oakwood_admin,
                     subject=world.invited, n=n)
    audit.record(audit.MEMBER_CHANGED, tenant=world.beech, subject=world.beech_identity, secret_marker="beech")
    db.session.commit()
    page = service.list_audit(world.oakwood, event=audit.MEMBER_CHANGED)
    assert [row.event.detail["n"] for row in page.items] == [2, 1, 0]
    assert all(row.event.tenant_id == world.oakwood.id for row in service.list_audit(world.oakwood).items)
    html = oakwood_browser.get("/t/oakwood/admin/audit").get_data(as_text=True)
    assert "User&#39;s details changed" in html and "new.teacher@example.org" in html and "secret_marker" not in html


def test_audit_log_filters_by_user_and_event_and_paginates(world, oakwood_browser):
    for n in range(60):
        audit.record(audit.MEMBER_CHANGED, tenant=world.oakwood, subject=world.invited, n=n)
    audit.record(audit.MEMBER_DEACTIVATED, tenant=world.oakwood, subject=world.oakwood_identity)
    db.session.commit()
    by_user = service.list_audit(world.oakwood, email="NEW.TEACHER@example.org")
    assert by_user.total == 60 and by_user.pages == 2 and len(by_user.items) == 50
    by_event = service.list_audit(world.oakwood, event=audit.MEMBER_DEACTIVATED)
    assert by_event.total == 1 and by_event.items[0].subject_email == "sam.jones@example.org"
    html = oakwood_browser.get("/t/oakwood/admin/audit?user=new.teacher@example.org&page=2").get_data(as_text=True)
    assert "60 events" in html and "Page 2 of 2" in html
    assert oakwood_browser.get("/t/oakwood/admin/audit?event=made.up&page=x").status_code == 200


def test_audit_log_has_no_way_to_change_events(oakwood_browser):
    for method in ("post", "put", "delete"):
        response = getattr(oakwood_browser.client, method)("/t/oakwood/admin/audit")
        assert response.status_code == 405


def test_admin_actions_record_actor_subject_and_ip(world, oakwood_browser):
    member = membership_of(world.invited, world.oakwood)
    oakwood_browser.submit(f"/t/oakwood/admin/users/{member.id}",
                           {"name": "Renamed", "email": "new.teacher@example.org", "role": "staff", "active": "yes"})
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.event == audit.MEMBER_CHANGED)).one()
    assert (event.tenant_id, event.actor_account_id, event.subject_account_id) == (
        world.oakwood.id, world.oakwood_admin.id, world.invited.id)
    assert event.ip == "127.0.0.1" and event.outcome == "success"


# --- operators ---------------------------------------------------------------------------------------------


def _operator_browser(app, world):
    """An operator signed in with their password and authenticator code (operators must use both)."""
    from tests.mfa.conftest import enrol

    clock.clock.freeze(clock.now())
    operator = create_account(provider="sso", email="ops@cpoms.example", name="Ops", tenants=[world.staffsafe],
                              password=PASSWORD, is_operator=True)
    enrolment = enrol(operator)
    browser = Browser(app.test_client())
    verify = browser.login("oakwood-staffsafe", "ops@cpoms.example", provider="sso").headers["Location"]
    assert browser.submit(verify, {"code": enrolment.code()}).status_code == 302
    return browser


@pytest.fixture(autouse=True)
def _unfreeze_clock():
    yield
    clock.clock.unfreeze()


def test_operators_page_lists_tenants_with_member_and_client_counts(app, world):
    browser = _operator_browser(app, world)
    with count_statements() as statements:
        page = browser.get("/admin").get_data(as_text=True)
    assert "oakwood" in page and "Beech Academy" in page
    summaries = {s.tenant.slug: (s.members, s.clients) for s in service_list_tenants()}
    assert summaries == {"oakwood": (4, 2), "beech": (1, 1), "oakwood-staffsafe": (2, 1)}
    tenant_selects = [s for s in statements if "FROM tenants" in s and "count" in s.lower()]
    assert len(tenant_selects) == 1


def service_list_tenants():
    from idp.admin.operators import list_tenants

    return list_tenants()


def test_operator_creates_and_edits_a_tenant(app, world):
    browser = _operator_browser(app, world)
    response = browser.submit("/admin/tenants/new", {
        "slug": "elm", "name": "Elm School", "product": "cpoms", "timezone": "Europe/Dublin",
        "require_2fa": "admins", "hide_unknown_email": "y"})
    assert response.status_code == 302
    elm = db.session.scalars(select(Tenant).where(Tenant.slug == "elm")).one()
    assert (elm.timezone, elm.require_2fa, elm.hide_unknown_email) == ("Europe/Dublin", "admins", True)
    response = browser.submit("/admin/tenants/elm", {
        "name": "Elm Primary", "product": "staffsafe", "timezone": "Europe/London", "require_2fa": "off"})
    assert response.status_code == 302
    db.session.expire_all()
    elm = db.session.get(Tenant, elm.id)
    assert (elm.name, elm.product, elm.hide_unknown_email) == ("Elm Primary", "staffsafe", False)
    names = [e.event for e in db.session.scalars(select(AuditEvent).where(AuditEvent.tenant_id == elm.id))]
    assert names == [audit.TENANT_CREATED, audit.TENANT_CHANGED]


def test_operator_form_errors_are_shown_next_to_the_field(app, world):
    browser = _operator_browser(app, world)
    page = browser.submit("/admin/tenants/new", {"slug": "Bad Slug!", "name": "X", "product": "cpoms",
                                                 "timezone": "Mars/Olympus", "require_2fa": "off"})
    assert 'href="#slug">' in page.get_data(as_text=True)
    page = browser.submit("/admin/tenants/new", {"slug": "oakwood", "name": "X", "product": "cpoms",
                                                 "timezone": "Europe/London", "require_2fa": "off"})
    assert "already exists" in page.get_data(as_text=True)
    page = browser.submit("/admin/tenants/beech", {"name": "Beech", "product": "cpoms",
                                                   "timezone": "Mars/Olympus", "require_2fa": "off"})
    assert 'href="#timezone">' in page.get_data(as_text=True)


def test_operators_see_every_tenants_audit_events(app, world):
    audit.record(audit.MEMBER_CHANGED, tenant=world.beech, subject=world.beech_identity)
    audit.record(audit.MEMBER_CHANGED, tenant=world.oakwood, subject=world.invited)
    db.session.commit()
    browser = _operator_browser(app, world)
    page = browser.get("/admin/audit?event=member.changed").get_data(as_text=True)
    assert "2 events" in page and "<td>beech</td>" in page and "<td>oakwood</td>" in page


def test_tenant_admins_are_not_operators(oakwood_browser, client):
    assert oakwood_browser.get("/admin").status_code == 403
    assert oakwood_browser.get("/admin/audit").status_code == 403
    assert oakwood_browser.client.post("/admin/tenants/new", data={"slug": "x"}).status_code in (400, 403)
    # Signed out: the platform's sign-in page, then back to /admin.
    anonymous = Browser(client.application.test_client())
    response = anonymous.get("/admin")
    assert response.status_code == 302 and response.headers["Location"] == "/login?next=/admin"


def test_operator_sets_a_schools_sign_in_lifetimes_in_minutes(app, world):
    browser = _operator_browser(app, world)
    page = browser.get("/admin/tenants/beech").get_data(as_text=True)
    assert 'name="session_max_age" type="text" value="480"' in page or 'value="480"' in page
    response = browser.submit("/admin/tenants/beech", {
        "name": "Beech Academy", "product": "cpoms", "timezone": "Europe/London", "require_2fa": "off",
        "session_max_age": "240", "session_idle_timeout": "10"})
    assert response.status_code == 302
    db.session.expire_all()
    beech = db.session.get(Tenant, world.beech.id)
    assert (beech.session_max_age, beech.session_idle_timeout) == (4 * 3600, 600)
    refused = browser.submit("/admin/tenants/beech", {
        "name": "Beech Academy", "product": "cpoms", "timezone": "Europe/London", "require_2fa": "off",
        "session_max_age": "240", "session_idle_timeout": "1"})
    assert 'href="#session_idle_timeout">' in refused.get_data(as_text=True)
