"""How many SQL statements each protocol request costs (targets from the load plan)."""

from __future__ import annotations

from .conftest import counting_queries, query_of


def warm(client):
    # Signing keys and client settings are cached per process; the first request loads them.
    client.get("/jwks.json")


def test_token_request_runs_at_most_three_statements(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    warm(browser.client)
    code = oakwood_rp.code()
    with counting_queries() as counter:
        response = oakwood_rp.exchange(code)
    assert response.status_code == 200
    assert counter.count <= 3, counter.statements


def test_refresh_request_runs_at_most_three_statements(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = oakwood_rp.tokens()
    with counting_queries() as counter:
        response = oakwood_rp.refresh(tokens["refresh_token"])
    assert response.status_code == 200
    assert counter.count <= 3, counter.statements


def test_userinfo_runs_at_most_two_statements(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = oakwood_rp.tokens()
    with counting_queries() as counter:
        response = browser.client.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert response.status_code == 200
    assert counter.count <= 2, counter.statements


def test_introspection_runs_one_statement(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    tokens = oakwood_rp.tokens()
    with counting_queries() as counter:
        body = oakwood_rp.post("/introspect", {"token": tokens["access_token"]}).get_json()
    assert body["active"] is True
    assert counter.count <= 1, counter.statements


def test_authorize_with_a_live_session(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    warm(browser.client)
    oakwood_rp.code()
    with counting_queries() as counter:
        response = oakwood_rp.authorize()
    assert "code" in query_of(response.headers["Location"])
    statements = [s for s in counter.statements]
    # The protocol's own cost is the one INSERT of the code; the rest is loading the
    # signed-in account (auth.session) and asking the 2FA policy (accounts.mfa).
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 1 and "authorization_codes" in inserts[0]
    assert counter.count <= 3, statements
