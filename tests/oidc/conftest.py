"""A relying party driving the IdP through HTTP, and an SQL statement counter."""

from __future__ import annotations

import base64
import hashlib
import secrets
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import event

from idp import clock
from idp.extensions import db
from tests.conftest import PASSWORD

ISSUER = "http://127.0.0.1:5000"


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def query_of(location: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


class RelyingParty:
    """One registered client of the world, with the calls its backend would make."""

    def __init__(self, http, client, secret: str | None):
        self.http = http
        self.client = client
        self.client_id = client.client_id
        self.secret = secret
        self.redirect_uri = client.redirect_uris[0]
        self.verifier, self.challenge = pkce_pair()

    def authorize_url(self, *, scope="openid profile email offline_access", state="st-123", nonce="n-456",
                      pkce=True, **extra) -> str:
        from urllib.parse import urlencode

        params = {"response_type": "code", "client_id": self.client_id, "redirect_uri": self.redirect_uri,
                  "scope": scope, "state": state}
        if nonce:
            params["nonce"] = nonce
        if pkce:
            params.update(code_challenge=self.challenge, code_challenge_method="S256")
        params.update({k: v for k, v in extra.items() if v is not None})
        return "/authorize?" + urlencode(params)

    def authorize(self, **kw):
        return self.http.get(self.authorize_url(**kw))

    def code(self, **kw) -> str:
        response = self.authorize(**kw)
        assert response.status_code == 302, response.get_data(as_text=True)
        location = response.headers["Location"]
        assert location.startswith(self.redirect_uri + "?"), location
        params = query_of(location)
        assert "code" in params, params
        return params["code"]

    def auth(self, method: str = "basic") -> dict:
        if method == "basic" and self.secret:
            raw = f"{self.client_id}:{self.secret}".encode()
            return {"headers": {"Authorization": "Basic " + base64.b64encode(raw).decode()}, "data": {}}
        if method == "post" and self.secret:
            return {"headers": {}, "data": {"client_id": self.client_id, "client_secret": self.secret}}
        return {"headers": {}, "data": {"client_id": self.client_id}}

    def post(self, path: str, data: dict, method: str = "basic"):
        auth = self.auth(method)
        return self.http.post(path, data={**auth["data"], **data}, headers=auth["headers"])

    def exchange(self, code: str, *, verifier: str | None = "default", method: str = "basic", redirect_uri=None):
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri or self.redirect_uri}
        verifier = self.verifier if verifier == "default" else verifier
        if verifier:
            data["code_verifier"] = verifier
        return self.post("/token", data, method)

    def refresh(self, refresh_token: str, method: str = "basic"):
        return self.post("/token", {"grant_type": "refresh_token", "refresh_token": refresh_token}, method)

    def tokens(self, **kw) -> dict:
        response = self.exchange(self.code(**kw))
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def jwks(self) -> KeySet:
        return KeySet.import_key_set(self.http.get("/jwks.json").get_json())

    def validate_id_token(self, id_token: str, *, nonce: str | None = "n-456", access_token: str | None = None) -> dict:
        """What a strict relying party checks (OIDC Core 3.1.3.7)."""
        token = jwt.decode(id_token, self.jwks(), algorithms=["RS256"])
        assert token.header["alg"] == "RS256" and token.header["kid"]
        claims = token.claims
        registry = jwt.JWTClaimsRegistry(
            now=clock.timestamp(),
            iss={"essential": True, "value": ISSUER},
            sub={"essential": True},
            aud={"essential": True, "value": self.client_id},
            exp={"essential": True},
            iat={"essential": True},
            auth_time={"essential": True},
        )
        registry.validate(claims)
        assert claims["exp"] > clock.timestamp() >= claims["iat"]
        if nonce:
            assert claims["nonce"] == nonce
        else:
            assert "nonce" not in claims
        if access_token:
            assert claims["at_hash"] == at_hash(access_token)
        return claims


@pytest.fixture
def oakwood_rp(client, world):
    return RelyingParty(client, world.oakwood_app, world.oakwood_app_secret)


@pytest.fixture
def staffsafe_rp(client, world):
    return RelyingParty(client, world.staffsafe_app, world.staffsafe_app_secret)


@pytest.fixture
def beech_rp(client, world):
    return RelyingParty(client, world.beech_app, world.beech_app_secret)


@pytest.fixture
def public_rp(client, world):
    return RelyingParty(client, world.public_app, None)


@pytest.fixture
def signed_in_sso(browser, world, frozen_clock):
    """Sam, the SSO account (member of oakwood and oakwood-staffsafe), signed in at oakwood."""
    response = browser.login("oakwood", "sam.jones@example.org", provider="sso")
    assert response.status_code == 302
    return world.sso_user


class QueryCounter:
    def __init__(self):
        self.statements: list[str] = []
        #: Per statement: whether it committed on its own (no BEGIN/COMMIT round trips around it).
        self.autocommit: list[bool] = []

    @property
    def count(self) -> int:
        return len(self.statements)


@contextmanager
def counting_queries():
    """Every SQL statement the app's engine runs inside the block."""
    counter = QueryCounter()

    def record(conn, cursor, statement, parameters, context, executemany):
        counter.statements.append(statement)
        counter.autocommit.append(conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT")

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield counter
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


@pytest.fixture
def password():
    return PASSWORD
