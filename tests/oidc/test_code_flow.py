"""The authorization code flow end to end, as a strict relying party sees it."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from idp import audit
from idp.extensions import db
from idp.models import AuditEvent, AuthorizationCode, Token

from .conftest import ISSUER, query_of


def test_signed_out_person_lands_on_the_clients_school_login_page(oakwood_rp, world):
    response = oakwood_rp.authorize()
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith("/t/oakwood/login?")
    assert query_of(location)["next"].startswith("/authorize?")


def test_whole_code_flow_gives_a_valid_id_token_and_userinfo(browser, oakwood_rp, world, frozen_clock):
    # The person signs in on the school's page and comes back to /authorize via `next`.
    first = oakwood_rp.authorize()
    next_url = query_of(first.headers["Location"])["next"]
    login = browser.login("oakwood", "head@oakwood.example.org", next_url=next_url)
    assert login.headers["Location"] == next_url

    frozen_clock.advance(timedelta(seconds=5))
    response = browser.get(next_url)
    assert response.status_code == 302
    params = query_of(response.headers["Location"])
    assert params["state"] == "st-123" and params["iss"] == ISSUER

    frozen_clock.advance(timedelta(seconds=5))
    token_response = oakwood_rp.exchange(params["code"])
    assert token_response.status_code == 200
    assert token_response.headers["Cache-Control"] == "no-store"
    tokens = token_response.get_json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 3600
    assert tokens["refresh_token"] and tokens["access_token"]
    assert set(tokens["scope"].split()) == {"openid", "profile", "email", "offline_access"}

    claims = oakwood_rp.validate_id_token(tokens["id_token"], access_token=tokens["access_token"])
    assert claims["sub"] == world.oakwood_admin.sub
    assert claims["aud"] == oakwood_rp.client_id
    # Nobody has proven this address yet (the account was made with a password, not a mailed link).
    assert claims["email"] == "head@oakwood.example.org" and claims["email_verified"] is False
    assert claims["name"] == "Alex Head"
    assert claims["tenant"] == "oakwood" and claims["roles"] == ["admin"]
    assert claims["amr"] == ["pwd"] and claims["acr"] == "urn:cpoms:acr:password"
    # auth_time is when the password was typed, not when the code was redeemed.
    assert claims["auth_time"] == claims["iat"] - 10

    info = browser.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert info.status_code == 200 and info.headers["Cache-Control"] == "no-store"
    assert info.get_json() == {
        "sub": world.oakwood_admin.sub, "name": "Alex Head", "email": "head@oakwood.example.org",
        "email_verified": False, "tenant": "oakwood", "roles": ["admin"],
    }


def test_codes_and_tokens_are_stored_only_as_hashes(oakwood_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    code = oakwood_rp.code()
    tokens = oakwood_rp.exchange(code).get_json()
    stored = db.session.query(AuthorizationCode).one()
    assert code not in (stored.code_hash,) and len(stored.code_hash) == 64
    token = db.session.query(Token).one()
    assert tokens["access_token"] != token.access_token_hash
    assert tokens["refresh_token"] != token.refresh_token_hash
    assert stored.consumed_at is not None


def test_userinfo_post_with_token_in_form_body(oakwood_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = oakwood_rp.tokens()
    response = browser.client.post("/userinfo", data={"access_token": tokens["access_token"]})
    assert response.status_code == 200 and response.get_json()["sub"] == world.oakwood_admin.sub


def test_userinfo_without_token_asks_for_a_bearer_token(client, world):
    response = client.get("/userinfo")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_userinfo_with_unknown_token_is_invalid_token(client, world):
    response = client.get("/userinfo", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert response.get_json()["error"] == "invalid_token"


def test_access_token_expires_after_its_lifetime(oakwood_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = oakwood_rp.tokens()
    frozen_clock.advance(timedelta(seconds=3601))
    response = browser.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert response.status_code == 401


def test_client_secret_post_works(oakwood_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    response = oakwood_rp.exchange(oakwood_rp.code(), method="post")
    assert response.status_code == 200 and "id_token" in response.get_json()


def test_wrong_client_secret_is_invalid_client(oakwood_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    code = oakwood_rp.code()
    oakwood_rp.secret = "not-the-secret"
    response = oakwood_rp.exchange(code)
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    response = oakwood_rp.exchange(code, method="post")
    assert response.status_code in (400, 401) and response.get_json()["error"] == "invalid_client"


def test_confidential_client_cannot_skip_authentication(oakwood_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    response = oakwood_rp.exchange(oakwood_rp.code(), method="none")
    assert response.get_json()["error"] == "invalid_client"


def test_code_twice_fails_and_revokes_the_tokens_it_gave(oakwood_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    code = oakwood_rp.code()
    tokens = oakwood_rp.exchange(code).get_json()
    again = oakwood_rp.exchange(code)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
    assert browser.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]}).status_code == 401
    assert oakwood_rp.refresh(tokens["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert db.session.query(AuditEvent).filter_by(event=audit.CODE_REUSED).count() == 1


def test_code_expires_after_sixty_seconds(oakwood_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    code = oakwood_rp.code()
    frozen_clock.advance(timedelta(seconds=61))
    assert oakwood_rp.exchange(code).get_json()["error"] == "invalid_grant"


def test_code_is_bound_to_its_client(oakwood_rp, beech_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    code = oakwood_rp.code()
    beech_rp.redirect_uri = oakwood_rp.redirect_uri
    assert beech_rp.exchange(code, verifier=oakwood_rp.verifier).get_json()["error"] == "invalid_grant"


def test_wrong_redirect_uri_at_token_endpoint_is_invalid_grant(oakwood_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    response = oakwood_rp.exchange(oakwood_rp.code(), redirect_uri="https://oakwood.example/other")
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_unregistered_redirect_uri_shows_an_error_page_not_a_redirect(oakwood_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    oakwood_rp.redirect_uri = "https://evil.example/callback"
    response = oakwood_rp.authorize()
    assert response.status_code == 400 and "Location" not in response.headers
    assert "Sorry, this sign-in link does not work" in response.get_data(as_text=True)


def test_redirect_uri_must_match_exactly(oakwood_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    oakwood_rp.redirect_uri = "https://oakwood.example/callback/"
    assert oakwood_rp.authorize().status_code == 400
    oakwood_rp.redirect_uri = "https://oakwood.example/callback?x=1"
    assert oakwood_rp.authorize().status_code == 400


def test_unknown_client_shows_an_error_page(client, world):
    response = client.get("/authorize?response_type=code&client_id=nobody&redirect_uri=https%3A%2F%2Fx.example%2F"
                          "&scope=openid&state=s")
    assert response.status_code == 400 and "Location" not in response.headers
    assert "invalid_client" in response.get_data(as_text=True)


def test_missing_redirect_uri_for_openid_request_is_an_error_page(oakwood_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    response = browser.get(f"/authorize?response_type=code&client_id={oakwood_rp.client_id}&scope=openid&state=s")
    assert response.status_code == 400 and "Location" not in response.headers


def test_unsupported_response_type_is_redirected_with_state_and_iss(oakwood_rp, world):
    response = oakwood_rp.authorize(response_type="token")
    params = query_of(response.headers["Location"])
    assert params == {"error": "unsupported_response_type", "error_description": params["error_description"],
                      "state": "st-123", "iss": ISSUER}


def test_pkce_mismatch_is_invalid_grant(oakwood_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    response = oakwood_rp.exchange(oakwood_rp.code(), verifier="x" * 50)
    assert response.get_json()["error"] == "invalid_grant"


def test_confidential_client_may_skip_pkce(oakwood_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    response = oakwood_rp.exchange(oakwood_rp.code(pkce=False), verifier=None)
    assert response.status_code == 200


def test_code_verifier_without_challenge_is_refused(oakwood_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    response = oakwood_rp.exchange(oakwood_rp.code(pkce=False))
    assert response.get_json()["error"] == "invalid_request"


def test_public_client_flow_with_pkce(public_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    response = public_rp.exchange(public_rp.code(), method="none")
    assert response.status_code == 200
    public_rp.validate_id_token(response.get_json()["id_token"], access_token=response.get_json()["access_token"])


def test_public_client_without_pkce_is_refused_at_authorize(public_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    response = public_rp.authorize(pkce=False)
    params = query_of(response.headers["Location"])
    assert params["error"] == "invalid_request" and params["state"] == "st-123"


def test_public_client_without_verifier_is_refused_at_token(public_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    response = public_rp.exchange(public_rp.code(), verifier=None, method="none")
    assert response.get_json()["error"] == "invalid_request"


def test_plain_pkce_method_is_refused(oakwood_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    response = oakwood_rp.authorize(pkce=False, code_challenge="a" * 43, code_challenge_method="plain")
    assert query_of(response.headers["Location"])["error"] == "invalid_request"
    # A challenge without a method means plain (RFC 7636 4.3): refused too.
    response = oakwood_rp.authorize(pkce=False, code_challenge="a" * 43)
    assert query_of(response.headers["Location"])["error"] == "invalid_request"


def test_unknown_scopes_are_ignored(oakwood_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = oakwood_rp.tokens(scope="openid address")
    assert tokens["scope"] == "openid"
    claims = oakwood_rp.validate_id_token(tokens["id_token"])
    assert "email" not in claims and claims["tenant"] == "oakwood"


def test_request_objects_are_not_supported(oakwood_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    response = oakwood_rp.authorize(request="eyJhbGciOiJub25lIn0.e30.")
    assert query_of(response.headers["Location"])["error"] == "request_not_supported"


def test_authlibs_relying_party_checks_accept_the_id_token(browser, oakwood_rp, world, frozen_clock):
    """The checks authlib's OIDC client runs (CodeIDToken: iss, aud, azp, exp, iat, nonce, at_hash, auth_time)."""
    from authlib.oidc.core import CodeIDToken
    from joserfc import jwt

    browser.login("oakwood", "head@oakwood.example.org")
    tokens = oakwood_rp.tokens(max_age="600")
    decoded = jwt.decode(tokens["id_token"], oakwood_rp.jwks(), algorithms=["RS256"])
    claims = CodeIDToken(decoded.claims, decoded.header, {"iss": {"values": [ISSUER]}},
                         {"nonce": "n-456", "client_id": oakwood_rp.client_id, "max_age": 600,
                          "access_token": tokens["access_token"]})
    claims.validate(now=frozen_clock.now().timestamp())


def test_hostile_parameters_get_protocol_errors_not_server_errors(oakwood_rp, browser, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    oakwood_rp.redirect_uri = 'https://oakwood.example/callback"\\\u00e9'
    assert oakwood_rp.authorize().status_code == 400
    oakwood_rp.redirect_uri = "https://oakwood.example/callback"
    params = query_of(oakwood_rp.authorize(nonce="n" * 401).headers["Location"])
    assert params["error"] == "invalid_request"
    response = oakwood_rp.authorize(response_type='code"\u00e9')
    assert response.status_code == 400 and "unsupported_response_type" in response.get_data(as_text=True)
    for hint in ("garbage", "a.b.c", 'e30."\u00e9".x', "eyJhbGciOiJub25lIn0.e30."):
        response = browser.get("/logout/end?" + urlencode({"id_token_hint": hint}))
        assert response.status_code == 400, hint
