"""How many SQL statements each protocol request costs (targets from the load plan)."""

from __future__ import annotations

from .conftest import counting_queries, query_of


def sign_in_head_of_oakwood(browser):
    browser.login("oakwood", "head@oakwood.example.org")
    # Signing keys and client settings are cached per process; the first request loads them.
    browser.client.get("/jwks.json")


def statements_of(request):
    """The response of `request()` and the counter of the SQL statements it ran."""
    with counting_queries() as counter:
        response = request()
    return response, counter


def test_token_request_runs_at_most_three_statements(browser, oakwood_rp, world, frozen_clock):
    sign_in_head_of_oakwood(browser)
    code = oakwood_rp.code()
    response, counter = statements_of(lambda: oakwood_rp.exchange(code))
    assert response.status_code == 200
    assert counter.count <= 3, counter.statements
    # Consuming the code and storing its tokens stand or fall together.
    assert not any(counter.autocommit), counter.statements


def test_refresh_request_runs_at_most_three_statements(browser, oakwood_rp, world, frozen_clock):
    sign_in_head_of_oakwood(browser)
    tokens = oakwood_rp.tokens()
    response, counter = statements_of(lambda: oakwood_rp.refresh(tokens["refresh_token"]))
    assert response.status_code == 200
    assert counter.count <= 3, counter.statements


def test_userinfo_runs_at_most_two_statements(browser, oakwood_rp, world, frozen_clock):
    sign_in_head_of_oakwood(browser)
    tokens = oakwood_rp.tokens()
    bearer = {"Authorization": "Bearer " + tokens["access_token"]}
    response, counter = statements_of(lambda: browser.client.get("/userinfo", headers=bearer))
    assert response.status_code == 200
    assert counter.count <= 2, counter.statements
    # One read: no transaction around it (BEGIN and ROLLBACK would be two more round trips).
    assert counter.autocommit == [True] * counter.count, counter.statements
    # ...and it ends with the request: what comes next has its transaction again.
    response, counter = statements_of(lambda: oakwood_rp.refresh(tokens["refresh_token"]))
    assert response.status_code == 200
    assert counter.count and not any(counter.autocommit), counter.statements


def test_introspection_runs_one_statement(browser, oakwood_rp, world, frozen_clock):
    sign_in_head_of_oakwood(browser)
    tokens = oakwood_rp.tokens()
    response, counter = statements_of(lambda: oakwood_rp.post("/introspect", {"token": tokens["access_token"]}))
    assert response.get_json()["active"] is True
    assert counter.count <= 1, counter.statements
    assert counter.autocommit == [True] * counter.count, counter.statements


def test_authorize_with_a_live_session_runs_one_statement(browser, oakwood_rp, world, frozen_clock):
    sign_in_head_of_oakwood(browser)
    oakwood_rp.code()
    response, counter = statements_of(oakwood_rp.authorize)
    assert "code" in query_of(response.headers["Location"])
    # One INSERT ... SELECT that writes the code only for a live, member account; the client
    # comes from the per-process cache and the sign-in from the signed cookie.
    assert counter.count == 1, counter.statements
    assert counter.statements[0].lstrip().upper().startswith("INSERT INTO AUTHORIZATION_CODES")
    # Atomic by itself, so it commits alone: one round trip, not BEGIN, INSERT, COMMIT.
    assert counter.autocommit == [True]


def test_authorize_with_a_live_session_leaves_the_cookie_alone(browser, oakwood_rp, world, frozen_clock):
    # The sign-in ends session_ttl after auth_time whatever happens, so nothing is re-signed.
    sign_in_head_of_oakwood(browser)
    response = oakwood_rp.authorize()
    assert "code" in query_of(response.headers["Location"])
    assert "Set-Cookie" not in response.headers
