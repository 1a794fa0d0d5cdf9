"""Admin > Applications: register (secret shown once, only its hash stored), edit, rotate, delete,
and initial access tokens for dynamic registration from the UI and the CLI."""

from __future__ import annotations

import json
import re

from sqlalchemy import select

from idp import audit
from idp.extensions import db
from idp.models import AuditEvent, Client, InitialAccessToken, Token
from idp.models.base import hash_secret
from idp.oidc.registry import tenant_for_initial_access_token

from .conftest import make_token


def _events(name):
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.event == name)))


def test_applications_page_lists_only_this_tenants_clients(oakwood_browser, world):
    page = oakwood_browser.get("/t/oakwood/admin/applications").get_data(as_text=True)
    assert "Oakwood CPOMS" in page and "Oakwood mobile" in page
    assert "Beech CPOMS" not in page and "StaffSafe" not in page


def test_registering_shows_the_secret_once_and_stores_only_its_hash(oakwood_browser, world):
    response = oakwood_browser.submit("/t/oakwood/admin/applications/new", {
        "name": "Oakwood Library", "redirect_uris": "https://library.example/cb\r\nhttps://library.example/cb2",
        "post_logout_redirect_uris": "https://library.example/bye", "client_type": "confidential"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    client_id = re.search(r'id="client-id">([^<]+)<', page).group(1)
    secret = re.search(r'id="client-secret">([^<]+)<', page).group(1)
    assert "It will not be shown again" in page
    client = db.session.scalars(select(Client).where(Client.client_id == client_id)).one()
    assert client.tenant_id == world.oakwood.id
    assert client.redirect_uris == ["https://library.example/cb", "https://library.example/cb2"]
    assert client.secret_hash == hash_secret(secret) and secret not in repr(client.__dict__)
    assert client.check_client_secret(secret)
    # Never again: the application's page has no secret on it.
    later = oakwood_browser.get(f"/t/oakwood/admin/applications/{client_id}").get_data(as_text=True)
    assert secret not in later and 'id="client-secret"' not in later
    [event] = _events(audit.CLIENT_REGISTERED)
    assert event.tenant_id == world.oakwood.id and event.detail["client_id"] == client_id
    assert secret not in json.dumps(event.detail)


def test_registering_a_public_client_has_no_secret(oakwood_browser, world):
    response = oakwood_browser.submit("/t/oakwood/admin/applications/new", {
        "name": "Oakwood app", "redirect_uris": "http://127.0.0.1:9000/cb", "client_type": "public"})
    page = response.get_data(as_text=True)
    assert 'id="client-secret"' not in page and "must use PKCE" in page
    client = db.session.scalars(select(Client).where(Client.name == "Oakwood app")).one()
    assert client.is_public and client.secret_hash is None


def test_bad_redirect_uris_are_shown_next_to_the_field(oakwood_browser, world):
    response = oakwood_browser.submit("/t/oakwood/admin/applications/new", {
        "name": "Bad", "redirect_uris": "http://evil.example/cb#x", "client_type": "confidential"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'href="#redirect_uris">' in page
    assert db.session.scalars(select(Client).where(Client.name == "Bad")).first() is None


def test_editing_an_application(oakwood_browser, world):
    client_id = world.oakwood_app.client_id
    response = oakwood_browser.submit(f"/t/oakwood/admin/applications/{client_id}", {
        "name": "Oakwood CPOMS (new)", "redirect_uris": "https://oakwood.example/callback\nhttps://new.example/cb",
        "post_logout_redirect_uris": ""})
    assert response.status_code == 302
    db.session.expire_all()
    client = db.session.get(Client, world.oakwood_app.id)
    assert client.name == "Oakwood CPOMS (new)"
    assert client.redirect_uris == ["https://oakwood.example/callback", "https://new.example/cb"]
    assert client.post_logout_redirect_uris == []
    [event] = _events(audit.CLIENT_CHANGED)
    assert event.detail["changed"] == ["client_name", "post_logout_redirect_uris", "redirect_uris"]


def test_editing_with_a_bad_uri_keeps_the_old_values(oakwood_browser, world):
    client_id = world.oakwood_app.client_id
    response = oakwood_browser.submit(f"/t/oakwood/admin/applications/{client_id}", {
        "name": "X", "redirect_uris": "ftp://nope"})
    assert response.status_code == 400
    db.session.expire_all()
    assert db.session.get(Client, world.oakwood_app.id).name == "Oakwood CPOMS"


def test_rotating_the_secret_shows_a_new_one_once_and_the_old_one_stops_working(oakwood_browser, world):
    client_id = world.oakwood_app.client_id
    response = oakwood_browser.submit(f"/t/oakwood/admin/applications/{client_id}", {},
                                      post_url=f"/t/oakwood/admin/applications/{client_id}/rotate")
    page = response.get_data(as_text=True)
    secret = re.search(r'id="client-secret">([^<]+)<', page).group(1)
    assert "the previous secret no longer works" in page
    db.session.expire_all()
    client = db.session.get(Client, world.oakwood_app.id)
    assert client.check_client_secret(secret)
    assert not client.check_client_secret(world.oakwood_app_secret)
    assert _events(audit.CLIENT_CHANGED)[0].detail["changed"] == ["client_secret"]


def test_deleting_asks_for_confirmation_then_revokes_its_tokens(oakwood_browser, world):
    client_id = world.oakwood_app.client_id
    token = make_token(world.oakwood_identity, world.oakwood, world.oakwood_app)
    confirm = oakwood_browser.get(f"/t/oakwood/admin/applications/{client_id}/delete").get_data(as_text=True)
    assert "Delete Oakwood CPOMS?" in confirm and "cannot be undone" in confirm
    assert db.session.get(Client, world.oakwood_app.id) is not None
    response = oakwood_browser.submit(f"/t/oakwood/admin/applications/{client_id}/delete", {})
    assert "Oakwood CPOMS was deleted" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Client, world.oakwood_app.id) is None
    assert db.session.get(Token, token.id).revoked_at is not None
    assert _events(audit.CLIENT_DELETED)[0].detail["client_id"] == client_id
    assert _events(audit.CLIENT_DELETED)[0].detail["tokens_revoked"] == 1


def test_initial_access_token_from_the_page_is_shown_once_and_belongs_to_the_tenant(oakwood_browser, world):
    response = oakwood_browser.submit("/t/oakwood/admin/applications", {},
                                      post_url="/t/oakwood/admin/applications/initial-access-token")
    page = response.get_data(as_text=True)
    token = re.search(r'id="initial-access-token">([^<]+)<', page).group(1)
    assert "it will not be shown again" in page
    row = db.session.scalars(select(InitialAccessToken)).one()
    assert row.token_hash == hash_secret(token) and row.tenant_id == world.oakwood.id
    assert row.created_by_account_id == world.oakwood_admin.id
    assert tenant_for_initial_access_token(token).id == world.oakwood.id
    assert tenant_for_initial_access_token(token + "x") is None
    assert token not in oakwood_browser.get("/t/oakwood/admin/applications").get_data(as_text=True)


def test_initial_access_token_from_the_cli(runner, world):
    result = runner.invoke(args=["client", "token", "--tenant", "beech", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["tenant"] == "beech"
    assert tenant_for_initial_access_token(data["initial_access_token"]).slug == "beech"
    text = runner.invoke(args=["client", "token", "--tenant", "beech"])
    assert "initial_access_token: " in text.output and "shown only now" in text.output
    unknown = runner.invoke(args=["client", "token", "--tenant", "nowhere"])
    assert unknown.exit_code == 1 and "Error:" in unknown.output


def test_initial_access_tokens_expire(world, frozen_clock):
    from datetime import timedelta

    from idp.oidc.registry import issue_initial_access_token

    token = issue_initial_access_token(world.beech)
    db.session.commit()
    frozen_clock.advance(timedelta(days=8))
    assert tenant_for_initial_access_token(token) is None
