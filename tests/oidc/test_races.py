"""Two requests at truly the same moment: exactly one redemption of a code or a refresh token wins."""

from __future__ import annotations

import base64

from idp.extensions import db
from tests.concurrency import run_concurrently


def _post_token(app, rp, data):
    def call():
        raw = f"{rp.client_id}:{rp.secret}".encode()
        response = app.test_client().post("/token", data=data,
                                          headers={"Authorization": "Basic " + base64.b64encode(raw).decode()})
        return response.status_code, response.get_json()
    return call


def test_two_concurrent_redemptions_of_one_code_have_exactly_one_winner(app, browser, oakwood_rp, world):
    browser.login("oakwood", "head@oakwood.example.org")
    browser.get("/jwks.json")  # the signing key exists before the race
    code = oakwood_rp.code()
    db.session.commit()
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": oakwood_rp.redirect_uri,
            "code_verifier": oakwood_rp.verifier}
    results = run_concurrently(app, _post_token(app, oakwood_rp, data), n=2)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 400], results
    loser = next(body for status, body in results if status == 400)
    assert loser["error"] == "invalid_grant"


def test_two_concurrent_uses_of_one_refresh_token_have_exactly_one_winner(app, browser, oakwood_rp, world):
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = oakwood_rp.tokens()
    db.session.commit()
    data = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    results = run_concurrently(app, _post_token(app, oakwood_rp, data), n=2)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200, 400], results
