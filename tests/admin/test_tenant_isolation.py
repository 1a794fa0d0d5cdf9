"""An admin of one school can neither read nor change anything of another, whatever URL or field they forge."""

from __future__ import annotations

import pytest

from idp.extensions import db
from idp.models import Account, Client, Membership
from tests.conftest import Browser

from .conftest import membership_of, snapshot


def test_admin_pages_send_a_signed_out_visitor_to_the_tenant_login(client, world):
    response = client.get("/t/oakwood/admin/users?q=sam")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/t/oakwood/login?next=")
    assert "admin/users" in response.headers["Location"]


def test_staff_member_gets_403(world, client):
    browser = Browser(client)
    browser.login("oakwood", "sam.jones@example.org", password="Different-Pass-77!")
    for url in ("/t/oakwood/admin/users", "/t/oakwood/admin/applications", "/t/oakwood/admin/audit",
                f"/t/oakwood/admin/users/{membership_of(world.invited, world.oakwood).id}"):
        assert browser.get(url).status_code == 403, url


def test_admin_of_one_tenant_gets_403_on_another_tenants_admin_area(beech_browser, world):
    for url in ("/t/oakwood/admin/users", "/t/oakwood/admin/applications", "/t/oakwood/admin/audit",
                "/t/oakwood/admin/users/new", "/t/oakwood/admin/users/import"):
        assert beech_browser.get(url).status_code == 403, url


def test_admin_of_one_tenant_cannot_post_to_another_tenants_admin_area(beech_browser, world):
    token = _csrf(beech_browser)
    oak_member = membership_of(world.invited, world.oakwood).id
    before = snapshot()
    posts = [
        (f"/t/oakwood/admin/users/{oak_member}", {"name": "Hacked", "email": "x@example.org", "role": "admin",
                                                  "active": "yes"}),
        (f"/t/oakwood/admin/users/{oak_member}/provider", {"provider": "sso"}),
        (f"/t/oakwood/admin/users/{oak_member}/send-link", {}),
        ("/t/oakwood/admin/users/new", {"email": "spy@example.org", "name": "Spy", "role": "admin",
                                        "provider": "identity"}),
        (f"/t/oakwood/admin/applications/{world.oakwood_app.client_id}/rotate", {}),
        (f"/t/oakwood/admin/applications/{world.oakwood_app.client_id}/delete", {}),
        ("/t/oakwood/admin/applications/initial-access-token", {}),
    ]
    for url, data in posts:
        response = beech_browser.client.post(url, data={"csrf_token": token, **data})
        assert response.status_code == 403, url
    assert snapshot() == before


FORGED_MEMBER_ACTIONS = [
    ("get", "", {}),
    ("post", "", {"name": "Hacked", "email": "hacked@example.org", "role": "admin", "active": "no"}),
    ("post", "/provider", {"provider": "sso"}),
    ("post", "/reset-2fa", {}),
    ("post", "/send-link", {}),
]


@pytest.mark.parametrize("method,suffix,data", FORGED_MEMBER_ACTIONS)
def test_another_tenants_member_id_in_my_url_is_404_without_side_effect(beech_browser, world, method, suffix,
                                                                        data):
    oak_member = membership_of(world.oakwood_identity, world.oakwood).id
    assert_not_found_and_nothing_changed(beech_browser, method, f"/t/beech/admin/users/{oak_member}{suffix}", data,
                                         hidden="Sam Jones")


FORGED_CLIENT_ACTIONS = [
    ("get", "", {}),
    ("post", "", {"name": "Stolen", "redirect_uris": "https://evil.example/cb"}),
    ("post", "/rotate", {}),
    ("get", "/delete", {}),
    ("post", "/delete", {}),
]


@pytest.mark.parametrize("method,suffix,data", FORGED_CLIENT_ACTIONS)
def test_another_tenants_client_id_in_my_url_is_404_without_side_effect(beech_browser, world, method, suffix,
                                                                        data):
    url = f"/t/beech/admin/applications/{world.oakwood_app.client_id}{suffix}"
    assert_not_found_and_nothing_changed(beech_browser, method, url, data, hidden="Oakwood CPOMS")


def assert_not_found_and_nothing_changed(browser, method, url, data, *, hidden):
    """The forged request is a 404 that shows nothing of the other tenant (`hidden`) and changes no row."""
    before = snapshot()
    if method == "get":
        response = browser.get(url)
    else:
        response = browser.client.post(url, data={"csrf_token": _csrf(browser), **data})
    assert response.status_code == 404
    assert hidden not in response.get_data(as_text=True)
    assert snapshot() == before


def test_forged_tenant_and_account_fields_in_a_form_are_ignored(beech_browser, world):
    # The beech admin edits their own member but smuggles oakwood ids into the form.
    pat = membership_of(world.beech_identity, world.beech)
    oak = membership_of(world.oakwood_identity, world.oakwood)
    response = beech_browser.client.post(
        f"/t/beech/admin/users/{pat.id}",
        data={"csrf_token": _csrf(beech_browser), "name": "Pat Lee", "email": "pat.lee@example.org",
              "role": "staff", "active": "yes", "tenant": "oakwood", "tenant_id": world.oakwood.id,
              "member_id": oak.id, "account_id": world.oakwood_identity.id, "membership_id": oak.id},
    )
    assert response.status_code == 302
    db.session.expire_all()
    sam = db.session.get(Account, world.oakwood_identity.id)
    assert (sam.name, sam.email) == ("Sam Jones (local)", "sam.jones@example.org")
    assert db.session.get(Membership, oak.id).tenant_id == world.oakwood.id


def test_adding_a_user_with_a_forged_tenant_field_adds_them_to_my_tenant_only(beech_browser, world):
    response = beech_browser.client.post(
        "/t/beech/admin/users/new",
        data={"csrf_token": _csrf(beech_browser), "email": "newbie@example.org", "name": "Newbie",
              "role": "admin", "provider": "identity", "tenant": "oakwood", "tenant_id": world.oakwood.id},
    )
    assert response.status_code == 200
    account = db.session.query(Account).filter_by(email="newbie@example.org").one()
    assert account.tenant_id == world.beech.id
    assert [m.tenant_id for m in account.memberships] == [world.beech.id]


def test_adding_an_existing_sso_user_shows_nothing_of_their_other_tenants(beech_browser, world):
    response = beech_browser.client.post(
        "/t/beech/admin/users/new",
        data={"csrf_token": _csrf(beech_browser), "email": "sam.jones@example.org", "name": "Sam",
              "role": "staff", "provider": "sso"},
    )
    assert response.status_code == 200
    member = membership_of(world.sso_user, world.beech)
    page = beech_browser.get(f"/t/beech/admin/users/{member.id}").get_data(as_text=True)
    for other in ("Oakwood", "oakwood", "StaffSafe", "Staffsafe"):
        assert other not in page


def test_beech_audit_log_shows_no_oakwood_events(beech_browser, oakwood_browser, world):
    # The oakwood admin's sign-in is an oakwood event; beech's log must not list it.
    page = beech_browser.get("/t/beech/admin/audit?user=head@oakwood.example.org").get_data(as_text=True)
    assert "head@oakwood.example.org</td>" not in page
    assert "0 events" in page


def test_a_deactivated_admin_is_refused(oakwood_browser, world):
    membership_of(world.oakwood_admin, world.oakwood).active = False
    db.session.commit()
    assert oakwood_browser.get("/t/oakwood/admin/users").status_code == 403


def test_the_home_page_links_admins_to_admin_users(oakwood_browser):
    page = oakwood_browser.get("/t/oakwood/").get_data(as_text=True)
    assert 'href="/t/oakwood/admin/users"' in page
    assert oakwood_browser.get("/t/oakwood/admin/users").status_code == 200


def test_client_of_another_tenant_still_exists_after_forged_delete(beech_browser, world):
    beech_browser.client.post(f"/t/beech/admin/applications/{world.oakwood_app.client_id}/delete",
                              data={"csrf_token": _csrf(beech_browser)})
    assert db.session.get(Client, world.oakwood_app.id) is not None


def _csrf(browser) -> str:
    from tests.conftest import csrf_token_from

    return csrf_token_from(browser.get("/t/beech/admin/users/new").get_data(as_text=True))


def test_a_school_that_requires_2fa_for_admins_is_not_administered_on_a_password_only_sign_in(world, client):
    # Sam signs in at Oakwood (no 2FA policy) and then opens StaffSafe's admin area, where admins need 2FA.
    membership_of(world.sso_user, world.staffsafe).role = "admin"
    world.staffsafe.require_2fa = "admins"
    db.session.commit()
    browser = Browser(client)
    assert browser.login("oakwood", "sam.jones@example.org", provider="sso").status_code == 302
    response = browser.get("/t/oakwood-staffsafe/admin/users")
    assert response.status_code == 302
    # Not enrolled: the school's policy sends the admin to set up a key first, then back here.
    assert response.headers["Location"].startswith("/account/security?tenant=oakwood-staffsafe&next=")
