"""Dynamic client registration (RFC 7591) with a school's initial access token, and
management of the registered client (RFC 7592)."""

from __future__ import annotations

from idp.extensions import db
from idp.models import Client
from idp.oidc import registry

from .conftest import RelyingParty

METADATA = {
    "client_name": "Oakwood timetable",
    "redirect_uris": ["https://timetable.example/callback"],
    "post_logout_redirect_uris": ["https://timetable.example/bye"],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "client_secret_basic",
}


def initial_token(tenant) -> str:
    token = registry.issue_initial_access_token(tenant)
    db.session.commit()
    return token


def register(client, token, metadata=METADATA):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/register", json=metadata, headers=headers)


def test_registered_client_belongs_to_the_tokens_school_and_can_sign_people_in(client, browser, world,
                                                                                 frozen_clock):
    response = register(client, initial_token(world.oakwood))
    assert response.status_code == 201 and response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["client_id"] and body["client_secret"] and body["registration_access_token"]
    assert body["registration_client_uri"] == "http://127.0.0.1:5000/register/" + body["client_id"]
    assert body["redirect_uris"] == METADATA["redirect_uris"]
    stored = db.session.query(Client).filter_by(client_id=body["client_id"]).one()
    assert stored.tenant_id == world.oakwood.id and stored.secret_hash != body["client_secret"]

    rp = RelyingParty(client, stored, body["client_secret"])
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = rp.tokens()
    assert rp.validate_id_token(tokens["id_token"])["tenant"] == "oakwood"


def test_initial_access_token_is_required_and_works_once(client, world):
    assert register(client, None).status_code == 401
    assert register(client, "made-up").get_json()["error"] == "invalid_token"
    token = initial_token(world.oakwood)
    assert register(client, token).status_code == 201
    assert register(client, token).status_code == 401


def test_two_registrations_racing_with_one_token_spend_it_once(world, monkeypatch):
    """Both read the token before either spent it: only one registration gets the school."""
    token = initial_token(world.oakwood)
    row = registry._usable_initial_access_token(token)
    monkeypatch.setattr(registry, "_usable_initial_access_token", lambda _token: row)
    assert registry.use_initial_access_token(token) == world.oakwood
    assert registry.use_initial_access_token(token) is None


def test_refused_registration_does_not_spend_the_token(client, world):
    token = initial_token(world.oakwood)
    bad = {**METADATA, "redirect_uris": ["http://timetable.example/callback"]}
    response = register(client, token, bad)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_redirect_uri"
    assert register(client, token).status_code == 201


def test_unsupported_metadata_is_invalid_client_metadata(client, world):
    token = initial_token(world.oakwood)
    response = register(client, token, {**METADATA, "grant_types": ["client_credentials"]})
    assert response.get_json()["error"] == "invalid_client_metadata"
    assert register(client, token, [1, 2]).get_json()["error"] == "invalid_request"


def test_public_client_registration_has_no_secret(client, world):
    response = register(client, initial_token(world.oakwood),
                        {**METADATA, "token_endpoint_auth_method": "none"})
    body = response.get_json()
    assert response.status_code == 201 and "client_secret" not in body
    assert db.session.query(Client).filter_by(client_id=body["client_id"]).one().is_public


def test_registration_management_read_update_delete(client, browser, world, frozen_clock):
    body = register(client, initial_token(world.oakwood)).get_json()
    uri = "/register/" + body["client_id"]
    auth = {"Authorization": "Bearer " + body["registration_access_token"]}

    read = client.get(uri, headers=auth)
    assert read.status_code == 200 and read.get_json()["client_name"] == "Oakwood timetable"
    assert client.get(uri, headers={"Authorization": "Bearer wrong"}).status_code in (400, 401, 403)

    update = client.put(uri, headers=auth, json={**METADATA, "client_id": body["client_id"],
                                                 "redirect_uris": ["https://timetable.example/new"]})
    assert update.status_code == 200 and update.get_json()["redirect_uris"] == ["https://timetable.example/new"]

    stored = db.session.query(Client).filter_by(client_id=body["client_id"]).one()
    rp = RelyingParty(client, stored, body["client_secret"])
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = rp.tokens()

    assert client.delete(uri, headers=auth).status_code == 204
    assert db.session.query(Client).filter_by(client_id=body["client_id"]).count() == 0
    assert client.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).status_code == 401
    response = rp.authorize()
    assert response.status_code == 400 and "Location" not in response.headers


def test_metadata_longer_than_what_is_stored_is_invalid_client_metadata_and_spends_no_token(client, world):
    # Fine on SQLite, an error on PostgreSQL (a 200-character column): refused alike on both.
    token = initial_token(world.oakwood)
    for too_long in ({"client_name": "n" * 5000},
                     {"redirect_uris": ["https://timetable.example/" + "p" * 3000]},
                     {"redirect_uris": [f"https://timetable.example/{n}" for n in range(registry.MAX_URIS + 1)]},
                     {"post_logout_redirect_uris": ["https://timetable.example/" + "p" * 3000]}):
        response = register(client, token, {**METADATA, **too_long})
        assert response.status_code == 400, too_long
        body = response.get_json()
        assert body["error"] in ("invalid_client_metadata", "invalid_redirect_uri")
        assert "characters or fewer" in body["error_description"] or "at most" in body["error_description"]
    assert register(client, token).status_code == 201  # the token was not spent by the refusals


def test_a_name_change_longer_than_the_column_is_refused_when_managing_the_client(client, world):
    body = register(client, initial_token(world.oakwood)).get_json()
    response = client.put(f"/register/{body['client_id']}", json={**METADATA, "client_id": body["client_id"],
                                                                  "client_name": "n" * 5000},
                          headers={"Authorization": f"Bearer {body['registration_access_token']}"})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_client_metadata"
