"""A member's page shows what the school cannot change as text, offers an admin nothing they may
not do to themselves, links back to the list, and the admin header says who is signed in."""

from __future__ import annotations

import re

from .conftest import membership_of


def _page(browser, world, account) -> str:
    member = membership_of(account, world.oakwood)
    return browser.get(f"/t/oakwood/admin/users/{member.id}").get_data(as_text=True)


def _inputs(html: str) -> dict[str, str]:
    return {name: kind for kind, name in re.findall(r'<input[^>]*type="([a-z]+)"[^>]*name="([a-z_]+)"', html)} | {
        name: kind for name, kind in re.findall(r'<input[^>]*name="([a-z_]+)"[^>]*type="([a-z]+)"', html)}


def test_a_shared_sso_members_name_and_email_are_read_only_text(oakwood_browser, world):
    html = _page(oakwood_browser, world, world.sso_user)  # also a member of the StaffSafe tenant
    fields = _inputs(html)
    assert fields.get("name") == "hidden" and fields.get("email") == "hidden"
    assert '<p class="read-only-value" aria-labelledby="name-label">Sam Jones</p>' in html
    assert '<p class="read-only-value" aria-labelledby="email-label">sam.jones@example.org</p>' in html


def test_a_school_only_members_details_are_editable(oakwood_browser, world):
    fields = _inputs(_page(oakwood_browser, world, world.invited))
    assert fields.get("name") == "text" and fields.get("email") == "email"
    assert fields.get("active") == "radio" and fields.get("role") == "radio"


def test_an_admins_own_record_offers_no_deactivation_role_removal_or_provider_change(oakwood_browser, world):
    html = _page(oakwood_browser, world, world.oakwood_admin)
    fields = _inputs(html)
    assert fields.get("role") == "hidden" and fields.get("active") == "hidden"
    assert 'value="no"' not in html.split('id="provider-heading"')[0].split("<h2>Details</h2>")[1]
    assert "You cannot deactivate yourself. Ask another administrator." in html
    assert "You cannot remove your own admin access from yourself. Ask another administrator." in html
    assert "Change provider" not in html


def test_every_member_page_links_back_to_the_list(oakwood_browser, world):
    back = 'class="back-link" href="/t/oakwood/admin/users">Back to Users</a>'
    assert back in _page(oakwood_browser, world, world.invited)
    assert back in oakwood_browser.get("/t/oakwood/admin/users/new").get_data(as_text=True)
    assert back in oakwood_browser.get("/t/oakwood/admin/users/import").get_data(as_text=True)


def test_the_admin_header_shows_who_is_signed_in_with_a_sign_out_button(oakwood_browser, world):
    html = oakwood_browser.get("/t/oakwood/admin/users").get_data(as_text=True)
    header = html.split('<header', 1)[1].split("</header>", 1)[0]
    assert "Signed in as <strong>Alex Head</strong>" in header and "head@oakwood.example.org" in header
    assert 'action="/logout"' in header and 'name="csrf_token"' in header and 'name="tenant" value="oakwood"' in header
    token = re.search(r'name="csrf_token" value="([^"]+)"', header).group(1)
    out = oakwood_browser.client.post("/logout", data={"csrf_token": token, "tenant": "oakwood"})
    assert out.status_code == 302 and "/t/oakwood/login" in out.headers["Location"]
    assert oakwood_browser.get("/t/oakwood/admin/users").status_code == 302  # signed out: to the login page
