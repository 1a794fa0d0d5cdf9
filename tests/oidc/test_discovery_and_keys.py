"""Discovery and JWKS: served from memory with caching headers; key rotation."""

from __future__ import annotations

import json
from datetime import timedelta

from authlib.oauth2 import rfc9207
from authlib.oidc.discovery import OpenIDProviderMetadata
from joserfc import jws

from idp.accounts import mfa
from idp.models import SigningKey

from .conftest import ISSUER, counting_queries


def test_discovery_advertises_every_endpoint(client, world):
    response = client.get("/.well-known/openid-configuration")
    assert response.status_code == 200 and response.mimetype == "application/json"
    doc = response.get_json()
    assert doc["issuer"] == ISSUER
    assert doc["authorization_endpoint"] == ISSUER + "/authorize"
    assert doc["token_endpoint"] == ISSUER + "/token"
    assert doc["userinfo_endpoint"] == ISSUER + "/userinfo"
    assert doc["jwks_uri"] == ISSUER + "/jwks.json"
    assert doc["revocation_endpoint"] == ISSUER + "/revoke"
    assert doc["introspection_endpoint"] == ISSUER + "/introspect"
    assert doc["end_session_endpoint"] == ISSUER + "/logout/end"
    assert doc["registration_endpoint"] == ISSUER + "/register"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["response_types_supported"] == ["code"]
    assert doc["response_modes_supported"] == ["query"]
    assert doc["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert doc["token_endpoint_auth_methods_supported"] == ["client_secret_basic", "client_secret_post", "none"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["subject_types_supported"] == ["public"]
    assert set(doc["scopes_supported"]) == {"openid", "profile", "email", "offline_access"}
    assert {"tenant", "roles", "amr", "acr", "auth_time"} <= set(doc["claims_supported"])
    assert doc["acr_values_supported"] == mfa.ACR_VALUES_SUPPORTED
    assert doc["authorization_response_iss_parameter_supported"] is True
    metadata = OpenIDProviderMetadata(doc)
    metadata.validate(metadata_classes=[rfc9207.AuthorizationServerMetadata])


def test_discovery_is_cacheable_and_answers_304(client, world):
    first = client.get("/.well-known/openid-configuration")
    assert first.headers["Cache-Control"] == "public, max-age=300"
    etag = first.headers["ETag"]
    again = client.get("/.well-known/openid-configuration", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""


def test_discovery_and_jwks_run_no_sql_once_warm(client, world):
    client.get("/jwks.json")
    with counting_queries() as counter:
        client.get("/.well-known/openid-configuration")
        client.get("/jwks.json")
    assert counter.count == 0, counter.statements


def test_jwks_publishes_public_keys_only(client, world):
    response = client.get("/jwks.json")
    assert response.headers["Cache-Control"] == "public, max-age=300" and response.headers["ETag"]
    keys = response.get_json()["keys"]
    assert len(keys) == 1
    key = keys[0]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig" and key["kid"]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)
    etag = response.headers["ETag"]
    assert client.get("/jwks.json", headers={"If-None-Match": etag}).status_code == 304


def kid_of(id_token: str) -> str:
    return jws.extract_compact(id_token.encode()).protected["kid"]


def test_rotation_keeps_the_old_key_published_and_signs_with_the_new_one(
    runner, browser, oakwood_rp, world, frozen_clock
):
    browser.login("oakwood", "head@oakwood.example.org")
    old_token = oakwood_rp.tokens()["id_token"]
    old_kid = kid_of(old_token)

    result = runner.invoke(args=["keys", "rotate", "--json"])
    assert result.exit_code == 0, result.output
    new_kid = json.loads(result.output)["kid"]
    assert new_kid != old_kid

    published = {k["kid"] for k in browser.get("/jwks.json").get_json()["keys"]}
    assert published == {old_kid, new_kid}
    new_token = oakwood_rp.tokens()["id_token"]
    assert kid_of(new_token) == new_kid
    oakwood_rp.validate_id_token(old_token)
    oakwood_rp.validate_id_token(new_token)

    # Once every token the old key signed has expired, it is no longer published.
    frozen_clock.advance(timedelta(seconds=3601 + 60))
    published = {k["kid"] for k in browser.get("/jwks.json").get_json()["keys"]}
    assert published == {new_kid}


def test_another_workers_rotation_is_seen_within_seconds(client, world, frozen_clock, app):
    from idp.extensions import db
    from idp.oidc import keys

    first = {k["kid"] for k in client.get("/jwks.json").get_json()["keys"]}
    # Another process rotates: this process's cache is not told.
    cache = app.extensions.pop("idp_signing_keys")
    rotated = keys.rotate_signing_key()
    app.extensions["idp_signing_keys"] = cache
    assert {k["kid"] for k in client.get("/jwks.json").get_json()["keys"]} == first
    frozen_clock.advance(timedelta(seconds=keys.RELOAD_SECONDS))
    assert rotated.kid in {k["kid"] for k in client.get("/jwks.json").get_json()["keys"]}
    assert db.session.query(SigningKey).count() == 2
