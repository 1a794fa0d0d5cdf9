"""What a strict certified relying party (and the OpenID conformance suite) checks that the
other flow tests do not: max_age=0, id_token_hint and login_hint at the authorization endpoint,
a missing response_type."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from .conftest import ISSUER, query_of


def _head_id_token(browser, oakwood_rp) -> str:
    browser.login("oakwood", "head@oakwood.example.org")
    return oakwood_rp.tokens()["id_token"]


def test_max_age_zero_asks_for_the_password_even_right_after_signing_in(browser, oakwood_rp, world, frozen_clock):
    # OIDC Core 3.1.2.1: "max_age=0 is equivalent to prompt=login".
    browser.login("oakwood", "head@oakwood.example.org")
    response = oakwood_rp.authorize(max_age="0")
    location = response.headers["Location"]
    assert urlsplit(location).path == "/t/oakwood/login"
    next_url = query_of(location)["next"]
    assert "max_age" not in query_of(next_url)
    browser.login("oakwood", "head@oakwood.example.org", next_url=next_url)
    assert "code" in query_of(browser.get(next_url).headers["Location"])


def test_max_age_zero_with_prompt_none_is_login_required(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    params = query_of(oakwood_rp.authorize(max_age="0", prompt="none").headers["Location"])
    assert params["error"] == "login_required" and params["state"] == "st-123"


def test_id_token_hint_of_the_signed_in_person_gives_a_code_without_a_page(browser, oakwood_rp, world, frozen_clock):
    hint = _head_id_token(browser, oakwood_rp)
    frozen_clock.advance(timedelta(minutes=5))
    params = query_of(oakwood_rp.authorize(id_token_hint=hint, prompt="none").headers["Location"])
    assert "code" in params, params


def test_expired_id_token_hint_still_names_the_person(browser, oakwood_rp, world, frozen_clock):
    from idp.extensions import db

    world.oakwood.session_idle_timeout = 4 * 3600  # the sign-in outlives its ID token here
    db.session.commit()
    hint = _head_id_token(browser, oakwood_rp)
    frozen_clock.advance(timedelta(hours=2))
    params = query_of(oakwood_rp.authorize(id_token_hint=hint, prompt="none").headers["Location"])
    assert "code" in params, params


def test_id_token_hint_naming_someone_else_with_prompt_none_is_login_required(
    browser, oakwood_rp, world, frozen_clock
):
    hint = _head_id_token(browser, oakwood_rp)
    browser.login("oakwood", "sam.jones@example.org", provider="sso")
    params = query_of(oakwood_rp.authorize(id_token_hint=hint, prompt="none").headers["Location"])
    assert params["error"] == "login_required" and params["state"] == "st-123"
    assert "code" not in params


def test_id_token_hint_naming_someone_else_asks_for_a_fresh_sign_in(browser, oakwood_rp, world, frozen_clock):
    hint = _head_id_token(browser, oakwood_rp)
    browser.login("oakwood", "sam.jones@example.org", provider="sso")
    location = oakwood_rp.authorize(id_token_hint=hint).headers["Location"]
    assert urlsplit(location).path == "/t/oakwood/login"
    next_url = query_of(location)["next"]
    # Whoever now signs in gets the code (the client checks sub); the hint must not loop them.
    assert "id_token_hint" not in query_of(next_url)
    browser.login("oakwood", "head@oakwood.example.org", next_url=next_url)
    code = query_of(browser.get(next_url).headers["Location"])["code"]
    claims = oakwood_rp.validate_id_token(oakwood_rp.exchange(code).get_json()["id_token"])
    assert claims["sub"] == world.oakwood_admin.sub


def test_forged_id_token_hint_is_invalid_request(browser, oakwood_rp, world, frozen_clock):
    hint = _head_id_token(browser, oakwood_rp)
    header, payload, signature = hint.split(".")
    forged = ".".join([header, payload, signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")])
    for bad in (forged, "not-a-jwt"):
        params = query_of(oakwood_rp.authorize(id_token_hint=bad).headers["Location"])
        assert params["error"] == "invalid_request" and params["state"] == "st-123", params


def test_missing_response_type_is_invalid_request_with_state_and_iss(oakwood_rp, world):
    # RFC 6749 4.1.2.1: a missing required parameter is invalid_request (a value we do not
    # offer is unsupported_response_type).
    url = oakwood_rp.authorize_url().replace("response_type=code&", "")
    params = query_of(oakwood_rp.http.get(url).headers["Location"])
    assert params["error"] == "invalid_request" and params["state"] == "st-123" and params["iss"] == ISSUER


def test_login_hint_fills_in_the_email_address_on_the_login_page(oakwood_rp, client, world):
    location = oakwood_rp.authorize(login_hint="head@oakwood.example.org").headers["Location"]
    assert query_of(location)["login_hint"] == "head@oakwood.example.org"
    page = client.get(location).get_data(as_text=True)
    assert 'value="head@oakwood.example.org"' in page


def test_userinfo_refuses_a_token_sent_both_in_the_header_and_the_body(browser, oakwood_rp, world, frozen_clock):
    # RFC 6750 2: one method per request; 3.1: otherwise invalid_request (400).
    browser.login("oakwood", "head@oakwood.example.org")
    access = oakwood_rp.tokens()["access_token"]
    response = oakwood_rp.http.post("/userinfo", data={"access_token": access},
                                    headers={"Authorization": "Bearer " + access})
    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_request"
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_request"'
    assert "sub" not in response.get_json()


def test_narrowed_refresh_keeps_the_originally_granted_scope_for_later_refreshes(
    browser, oakwood_rp, world, frozen_clock
):
    # RFC 6749 6: the new refresh token's scope is that of the one presented; omitting
    # scope means "as originally granted".
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = oakwood_rp.tokens()
    narrow = oakwood_rp.post("/token", {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                        "scope": "openid offline_access"}).get_json()
    assert narrow["scope"] == "openid offline_access"
    info = oakwood_rp.http.get("/userinfo", headers={"Authorization": "Bearer " + narrow["access_token"]})
    assert "email" not in info.get_json() and "name" not in info.get_json()

    again = oakwood_rp.refresh(narrow["refresh_token"]).get_json()
    assert set(again["scope"].split()) == {"openid", "profile", "email", "offline_access"}
    wide = oakwood_rp.post("/token", {"grant_type": "refresh_token", "refresh_token": again["refresh_token"],
                                      "scope": "openid email"})
    assert wide.status_code == 200 and wide.get_json()["scope"] == "openid email"
    wider = oakwood_rp.post("/token", {"grant_type": "refresh_token", "refresh_token": wide.get_json()["refresh_token"],
                                       "scope": "openid email phone"})
    assert wider.get_json()["error"] == "invalid_scope"
