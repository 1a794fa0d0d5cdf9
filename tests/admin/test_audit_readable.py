"""The audit log in words: events and details a person reads, the school's own time, and a CSV
download of exactly what the filters show, safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone

from idp import audit, clock
from idp.admin import service
from idp.extensions import db
from tests.conftest import Browser


def test_every_event_code_has_words_and_an_unknown_one_reads_too():
    for code in service.audit_event_names():
        assert audit.describe(code) in audit.DESCRIPTIONS.values(), code
    assert audit.describe(audit.LOGIN_SUCCEEDED) == "Logged in"
    assert audit.describe("widget.was_polished") == "Widget was polished"


def test_details_are_labelled_fields_not_python_output():
    assert audit.describe_detail({"amr": ["pwd", "otp"], "provider": "sso", "hidden": True, "link_id": 4}) == [
        ("Methods", "password, authenticator app code"), ("Account type", "CPOMS SSO"),
        ("Unknown addresses hidden", "yes")]


def test_audit_page_shows_words_and_the_schools_time(world, oakwood_browser, frozen_clock):
    # 2 July: British Summer Time, an hour ahead of UTC.
    frozen_clock.freeze(datetime(2026, 7, 2, 8, 5, 3, tzinfo=timezone.utc))
    audit.record(audit.LOGIN_SUCCEEDED, tenant=world.oakwood, actor=world.invited, subject=world.invited,
                 provider="identity", amr=["pwd"])
    db.session.commit()
    html = oakwood_browser.get("/t/oakwood/admin/audit").get_data(as_text=True)
    assert "<td>Logged in</td>" in html and "<td>Succeeded</td>" in html
    assert "<dt>Methods</dt><dd>password</dd>" in html and "[&#39;pwd&#39;]" not in html
    assert "2 Jul 2026, 09:05:03" in html and "Time (UK time)" in html
    assert "Times are in UK time (Europe/London)" in html
    assert '<option value="login.succeeded">Logged in</option>' in html


def test_operator_audit_is_in_utc_and_says_so_with_a_csv_of_every_school(world, app):
    from tests.admin.test_audit_and_operators import _operator_browser

    try:
        browser = _operator_browser(app, world)
        audit.record(audit.MEMBER_CHANGED, tenant=world.beech, subject=world.beech_identity)
        db.session.commit()
        html = browser.get("/admin/audit").get_data(as_text=True)
        assert "Times are in UTC, for every school." in html and "Time (UTC)" in html
        rows = list(csv.reader(io.StringIO(browser.get("/admin/audit.csv").get_data(as_text=True))))
        assert rows[0][:2] == ["Time (UTC)", "Tenant"]
        assert "beech" in [row[1] for row in rows[1:]]
    finally:
        clock.clock.unfreeze()


def test_audit_csv_has_the_filtered_events_only_with_formulas_neutralised(world, oakwood_browser):
    audit.record(audit.MEMBER_CHANGED, tenant=world.oakwood, subject=world.invited, outcome="=HYPERLINK(\"x\")",
                 ip="-2+3")
    audit.record(audit.MEMBER_CHANGED, tenant=world.oakwood, subject=world.oakwood_identity)
    audit.record(audit.MEMBER_DEACTIVATED, tenant=world.oakwood, subject=world.invited)
    audit.record(audit.MEMBER_CHANGED, tenant=world.beech, subject=world.beech_identity, changes="beech-only")
    db.session.commit()
    page = oakwood_browser.get("/t/oakwood/admin/audit?event=member.changed&user=new.teacher@example.org")
    assert ('href="/t/oakwood/admin/audit.csv?event=member.changed&amp;user=new.teacher@example.org"'
            in page.get_data(as_text=True))
    response = oakwood_browser.get("/t/oakwood/admin/audit.csv?user=new.teacher@example.org&event=member.changed")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="audit-oakwood-')
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][:3] == ["Time (UK time)", "Event", "Event code"]
    assert len(rows) == 2
    assert rows[1][1:3] == ["User's details changed", "member.changed"]
    assert rows[1][3] == "'=HYPERLINK(\"x\")" and rows[1][6] == "'-2+3"
    # Every school's CSV is its own: Beech's event is not in Oakwood's.
    everything = oakwood_browser.get("/t/oakwood/admin/audit.csv").get_data(as_text=True)
    assert "beech-only" not in everything and everything.count("\n") == 5  # the heading, three events and the admin's login


def test_spreadsheet_formulas_are_neutralised_in_every_cell():
    for dangerous in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert service.spreadsheet_safe(dangerous) == "'" + dangerous
    assert service.spreadsheet_safe("Logged in") == "Logged in" and service.spreadsheet_safe(None) == ""


def test_audit_csv_needs_the_schools_admin(world, client, beech_browser):
    assert beech_browser.get("/t/oakwood/admin/audit.csv").status_code == 403
    assert client.get("/t/oakwood/admin/audit.csv").status_code == 302  # to the login page
    assert Browser(client).get("/t/oakwood/admin/audit.csv?event=nonsense&user=" + "x" * 400).status_code == 302
