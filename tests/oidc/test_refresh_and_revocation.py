"""Refresh rotation and reuse, revocation (RFC 7009) and introspection (RFC 7662)."""

from __future__ import annotations

from datetime import timedelta

from idp import audit
from idp.extensions import db
from idp.models import AuditEvent, Token

from .conftest import ISSUER


def bearer(tokens) -> dict:
    return {"Authorization": "Bearer " + tokens["access_token"]}


def test_refresh_rotates_and_keeps_the_original_authentication(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    first = oakwood_rp.tokens()
    original = oakwood_rp.validate_id_token(first["id_token"])
    frozen_clock.advance(timedelta(minutes=30))
    response = oakwood_rp.refresh(first["refresh_token"])
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    second = response.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    claims = oakwood_rp.validate_id_token(second["id_token"], nonce=None, access_token=second["access_token"])
    assert claims["sub"] == original["sub"] and claims["auth_time"] == original["auth_time"]
    assert claims["iat"] == original["iat"] + 1800 and claims["amr"] == ["pwd"]
    assert browser.get("/userinfo", headers=bearer(second)).status_code == 200
    rows = db.session.query(Token).all()
    assert len({row.family_id for row in rows}) == 1 and len(rows) == 2


def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    first = oakwood_rp.tokens()
    second = oakwood_rp.refresh(first["refresh_token"]).get_json()
    reuse = oakwood_rp.refresh(first["refresh_token"])
    assert reuse.status_code == 400 and reuse.get_json()["error"] == "invalid_grant"
    # The thief's reuse also ends the legitimate latest tokens.
    assert oakwood_rp.refresh(second["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert browser.get("/userinfo", headers=bearer(second)).status_code == 401
    assert db.session.query(AuditEvent).filter_by(event=audit.REFRESH_REUSED).count() == 1


def test_refresh_token_of_another_client_is_invalid_grant(browser, oakwood_rp, public_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = oakwood_rp.tokens()
    assert public_rp.refresh(tokens["refresh_token"], method="none").get_json()["error"] == "invalid_grant"
    assert oakwood_rp.refresh(tokens["refresh_token"]).status_code == 200


def test_refresh_rechecks_membership(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = oakwood_rp.tokens()
    world.oakwood_admin.membership_in(world.oakwood.id).active = False
    db.session.commit()
    assert oakwood_rp.refresh(tokens["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert browser.get("/userinfo", headers=bearer(tokens)).status_code == 401


def test_refresh_token_expires(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = oakwood_rp.tokens()
    frozen_clock.advance(timedelta(days=31))
    assert oakwood_rp.refresh(tokens["refresh_token"]).get_json()["error"] == "invalid_grant"


def test_refresh_may_narrow_but_not_widen_scope(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = oakwood_rp.tokens(scope="openid email")
    wider = oakwood_rp.post("/token", {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                       "scope": "openid email profile"})
    assert wider.get_json()["error"] == "invalid_scope"
    narrower = oakwood_rp.post("/token", {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                          "scope": "openid"})
    assert narrower.status_code == 200 and narrower.get_json()["scope"] == "openid"


def test_unsupported_grant_type(oakwood_rp, world):
    response = oakwood_rp.post("/token", {"grant_type": "password", "username": "x", "password": "y"})
    assert response.get_json()["error"] == "unsupported_grant_type"


def introspect(rp, token, **extra):
    return rp.post("/introspect", {"token": token, **extra})


def test_introspection_describes_an_active_access_token(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = oakwood_rp.tokens()
    body = introspect(oakwood_rp, tokens["access_token"]).get_json()
    assert body["active"] is True and body["client_id"] == oakwood_rp.client_id
    assert body["sub"] == world.oakwood_admin.sub and body["iss"] == ISSUER and body["aud"] == oakwood_rp.client_id
    assert body["token_type"] == "Bearer" and body["exp"] - body["iat"] == 3600
    assert set(body["scope"].split()) == {"openid", "profile", "email", "offline_access"}
    assert body["tenant"] == "oakwood"


def test_revoked_access_token_is_inactive(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = oakwood_rp.tokens()
    response = oakwood_rp.post("/revoke", {"token": tokens["access_token"], "token_type_hint": "access_token"})
    assert response.status_code == 200
    assert introspect(oakwood_rp, tokens["access_token"]).get_json() == {"active": False}
    assert browser.get("/userinfo", headers=bearer(tokens)).status_code == 401
    # Revoking the access token leaves the refresh token usable.
    assert oakwood_rp.refresh(tokens["refresh_token"]).status_code == 200


def test_revoking_a_refresh_token_ends_its_family(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = oakwood_rp.tokens()
    assert oakwood_rp.post("/revoke", {"token": tokens["refresh_token"]}).status_code == 200
    assert introspect(oakwood_rp, tokens["refresh_token"]).get_json() == {"active": False}
    assert introspect(oakwood_rp, tokens["access_token"]).get_json() == {"active": False}
    assert oakwood_rp.refresh(tokens["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert db.session.query(AuditEvent).filter_by(event=audit.TOKEN_REVOKED).count() == 1


def test_revoking_an_unknown_token_is_fine(oakwood_rp, world):
    assert oakwood_rp.post("/revoke", {"token": "never-issued"}).status_code == 200


def test_revocation_needs_client_authentication(oakwood_rp, world):
    oakwood_rp.secret = "wrong"
    assert oakwood_rp.post("/revoke", {"token": "x"}).get_json()["error"] == "invalid_client"


def test_client_cannot_revoke_another_clients_token(browser, oakwood_rp, public_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = oakwood_rp.tokens()
    response = public_rp.post("/revoke", {"token": tokens["access_token"]}, method="none")
    assert response.status_code == 400
    assert introspect(oakwood_rp, tokens["access_token"]).get_json()["active"] is True


def test_public_client_revokes_its_own_token(browser, public_rp, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = public_rp.exchange(public_rp.code(), method="none").get_json()
    assert public_rp.post("/revoke", {"token": tokens["refresh_token"]}, method="none").status_code == 200
    assert introspect(oakwood_rp, tokens["access_token"]).get_json() == {"active": False}


def test_introspection_by_another_schools_client_says_inactive(browser, oakwood_rp, beech_rp, staffsafe_rp,
                                                              world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = oakwood_rp.tokens()
    assert introspect(beech_rp, tokens["access_token"]).get_json() == {"active": False}
    assert introspect(staffsafe_rp, tokens["access_token"]).get_json() == {"active": False}


def test_introspection_of_refresh_token(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = oakwood_rp.tokens()
    body = introspect(oakwood_rp, tokens["refresh_token"], token_type_hint="refresh_token").get_json()
    assert body["active"] is True and body["token_type"] == "refresh_token"
    oakwood_rp.refresh(tokens["refresh_token"])
    assert introspect(oakwood_rp, tokens["refresh_token"]).get_json() == {"active": False}


def test_expired_access_token_is_inactive(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = oakwood_rp.tokens()
    frozen_clock.advance(timedelta(hours=2))
    assert introspect(oakwood_rp, tokens["access_token"]).get_json() == {"active": False}


def test_public_client_cannot_introspect(browser, public_rp, world, frozen_clock):
    response = public_rp.post("/introspect", {"token": "x"}, method="none")
    assert response.get_json()["error"] == "invalid_client"


def test_introspection_without_token_parameter_is_invalid_request(oakwood_rp, world):
    assert oakwood_rp.post("/introspect", {}).get_json()["error"] == "invalid_request"


def test_unknown_token_type_hint_is_ignored(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = oakwood_rp.tokens()
    assert introspect(oakwood_rp, tokens["access_token"], token_type_hint="id_token").get_json()["active"] is True
    # A wrong hint still finds the token (RFC 7009 2.1: the search extends to every type).
    response = oakwood_rp.post("/revoke", {"token": tokens["refresh_token"], "token_type_hint": "access_token"})
    assert response.status_code == 200
    assert introspect(oakwood_rp, tokens["refresh_token"]).get_json() == {"active": False}
    assert oakwood_rp.post("/revoke", {"token": "x", "token_type_hint": "banana"}).status_code == 200
