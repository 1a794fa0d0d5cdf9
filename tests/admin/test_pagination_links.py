"""Pagination links keep the page's filters, and nothing else from the query string."""

from idp import audit
from idp.extensions import db


def test_pagination_links_ignore_url_building_options_smuggled_into_the_query(oakwood_browser, world):
    for number in range(60):
        audit.record(audit.LOGIN_FAILED, tenant=world.oakwood, outcome="failure", email=f"x{number}@example.org")
    db.session.commit()
    response = oakwood_browser.get("/t/oakwood/admin/audit", query_string={
        "event": audit.LOGIN_FAILED, "_external": "1", "_scheme": "javascript", "_anchor": "x%0Aalert(1)"})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'rel="next"' in html
    assert "javascript:" not in html and "alert" not in html
    assert f"event={audit.LOGIN_FAILED}" in html and "page=2" in html
