"""`idp demo-data`: the demo world, loaded idempotently, with client secrets kept out of the database."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from idp.accounts.directory import lookup, page_provider
from idp.demo import ACCOUNTS, DEMO_PASSWORD, clients_file_path, load_demo_data
from idp.extensions import db
from idp.models import Account, Client, Membership, Tenant
from idp.tenants import get_tenant


def counts():
    return [db.session.scalar(select(func.count()).select_from(m)) for m in (Tenant, Account, Membership, Client)]


def test_two_sso_schools_one_identity_only_school_and_a_staffsafe_tenant(app):
    load_demo_data()
    products = {t.slug: t.product for t in db.session.scalars(select(Tenant))}
    assert products == {"oakwood": "cpoms", "elmfield": "cpoms", "riverside": "cpoms", "oakwood-trust": "staffsafe"}
    assert page_provider(get_tenant("oakwood"), None)[1]  # the provider switch is offered
    assert not page_provider(get_tenant("riverside"), None)[1]


def test_the_sso_user_belongs_to_both_sso_schools_and_staffsafe(app):
    load_demo_data()
    sam = lookup("sso", "sam.jones@example.org")
    assert {m.tenant.slug for m in sam.memberships} == {"oakwood", "elmfield", "oakwood-trust"}


def test_there_is_an_admin_and_an_identity_user(app):
    load_demo_data()
    admins = db.session.scalars(select(Membership).where(Membership.role == "admin")).all()
    assert [m.tenant.slug for m in admins] == ["oakwood"]
    identity = {a.email for a in db.session.scalars(select(Account).where(Account.provider == "identity"))}
    assert "pat.lee@riverside.example.org" in identity


def test_loading_twice_changes_nothing(app):
    load_demo_data()
    before = counts()
    secrets_before = json.loads(clients_file_path().read_text())
    load_demo_data()
    assert counts() == before
    assert json.loads(clients_file_path().read_text()) == secrets_before


def test_client_secrets_are_in_the_instance_file_and_only_their_hashes_in_the_database(app):
    load_demo_data()
    written = json.loads(clients_file_path().read_text())
    assert oct(clients_file_path().stat().st_mode & 0o777) == "0o600"
    for entry in written["clients"].values():
        client = db.session.scalar(select(Client).where(Client.client_id == entry["client_id"]))
        assert client.check_client_secret(entry["client_secret"])
        assert entry["client_secret"] != client.secret_hash


def test_a_lost_instance_file_gets_a_new_secret_and_the_old_one_stops_working(app):
    load_demo_data()
    old = json.loads(clients_file_path().read_text())["clients"]["oakwood"]["client_secret"]
    clients_file_path().unlink()
    load_demo_data()
    new = json.loads(clients_file_path().read_text())["clients"]["oakwood"]["client_secret"]
    client = db.session.scalar(select(Client).where(Client.client_id == "demo-oakwood"))
    assert new != old and client.check_client_secret(new) and not client.check_client_secret(old)


def test_app_urls_can_be_moved_and_redirect_uris_follow(app):
    load_demo_data(school_app_url="http://127.0.0.1:6101", staffsafe_app_url="http://localhost:6102/")
    client = db.session.scalar(select(Client).where(Client.client_id == "demo-oakwood-trust"))
    assert client.redirect_uris == ["http://localhost:6102/oakwood-trust/callback"]
    assert client.post_logout_redirect_uris == ["http://localhost:6102/oakwood-trust/"]
    load_demo_data()
    client = db.session.scalar(select(Client).where(Client.client_id == "demo-oakwood"))
    assert client.redirect_uris == ["http://127.0.0.1:5001/oakwood/callback"]


def test_a_person_changes_survive_reloading(app):
    from idp.accounts.directory import set_password_hash
    from idp.accounts.passwords import hash_password, verify_password

    load_demo_data()
    sam = lookup("sso", "sam.jones@example.org")
    set_password_hash(sam, hash_password("Another-Secret-Word-88?"))
    db.session.commit()
    load_demo_data()
    assert verify_password(lookup("sso", "sam.jones@example.org").password_hash, "Another-Secret-Word-88?")


def test_demo_password_meets_the_password_policy(app):
    from idp.accounts import passwords

    for account in ACCOUNTS:
        assert passwords.policy_problems(DEMO_PASSWORD, email=account.email, name=account.name) == []


def test_demo_accounts_sign_in_on_their_schools_login_pages(app, browser):
    load_demo_data()
    assert browser.login("elmfield", "sam.jones@example.org", DEMO_PASSWORD, provider="sso").status_code == 302
    assert browser.login("riverside", "pat.lee@riverside.example.org", DEMO_PASSWORD).status_code == 302


def test_the_school_without_sso_users_shows_no_provider_switch(app, client):
    load_demo_data()
    assert 'id="switch-provider"' not in client.get("/t/riverside/login").get_data(as_text=True)
    assert 'id="switch-provider"' in client.get("/t/oakwood/login").get_data(as_text=True)


def test_summary_lists_urls_and_credentials(app):
    summary = load_demo_data()
    assert summary["apps"]["oakwood"] == "http://127.0.0.1:5001/oakwood/"
    assert summary["apps"]["oakwood-trust"] == "http://127.0.0.1:5002/oakwood-trust/"
    assert "client_secret" not in json.dumps(summary)
    assert DEMO_PASSWORD in summary["text"] and "http://127.0.0.1:5000/t/riverside/login" in summary["text"]
