"""Nothing a relying party (or anyone else) can send to the protocol endpoints produces a 500:
odd credentials are `invalid_client` (401), odd parameters the spec's error codes."""

from __future__ import annotations

import base64

import pytest

from tests.auth.test_odd_input import ODD

CLIENT_AUTHENTICATING = ["/token", "/revoke", "/introspect"]

ODD_BASIC = [
    "Basic ünï",  # not base64 at all, and not ASCII (a 500 here once)
    "Basic " + base64.b64encode(b"\xff\xfe:\xfd").decode(),  # base64 of bytes that are not UTF-8
    "Basic " + base64.b64encode("ü:ï".encode()).decode(),  # UTF-8, but no such client
    "Basic " + base64.b64encode(b"no-colon").decode(),
    "Basic :",
    "Basic",
    "Basic " + "A" * 5000,
    "Basic =====",
]


@pytest.mark.parametrize("path", CLIENT_AUTHENTICATING)
@pytest.mark.parametrize("header", ODD_BASIC)
def test_odd_basic_credentials_are_invalid_client(client, world, path, header):
    environ = {"HTTP_AUTHORIZATION": header.encode("utf-8").decode("latin-1")}
    response = client.post(path, data={"token": "x", "grant_type": "authorization_code", "code": "x",
                                       "redirect_uri": "https://oakwood.example/callback"}, environ_base=environ)
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def test_odd_values_at_every_protocol_endpoint_never_cause_a_server_error(client, world):
    failures = []
    fields = ["grant_type", "code", "refresh_token", "token", "token_type_hint", "client_id", "client_secret",
              "redirect_uri", "code_verifier", "scope", "access_token", "id_token_hint", "state",
              "post_logout_redirect_uri", "response_type", "nonce", "prompt", "max_age", "acr_values",
              "code_challenge", "code_challenge_method", "login_hint"]
    for path in ("/token", "/revoke", "/introspect", "/userinfo", "/authorize", "/logout/end", "/register",
                 "/register/" + "x" * 300):
        for odd in ODD:
            values = {name: odd for name in fields}
            for method, kwargs in (("GET", {"query_string": values}), ("POST", {"data": values})):
                response = client.open(path, method=method, **kwargs)
                if response.status_code >= 500:
                    failures.append((method, path[:30], odd[:20], response.status_code))
    assert not failures
