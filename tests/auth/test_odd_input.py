"""Nothing someone signed out can send to the sign-in, reset and second-step pages produces a 500."""

from tests.conftest import csrf_token_from

ODD = ["", "x" * 5000, "\u202e\u0000", "a\r\nBcc: x@example.org", "<svg onload=alert(1)>", "é" * 300,
       "99999999999999999999999"]
FIELDS = ["email", "password", "provider", "next", "code", "confirm", "tenant", "reason"]


def test_odd_form_and_query_values_never_cause_a_server_error(client, world):
    world.beech.hide_unknown_email = True
    token = csrf_token_from(client.get("/t/oakwood/login").get_data(as_text=True))
    failures = []
    for url in ("/t/oakwood/login", "/t/oakwood/login/verify", "/t/oakwood/forgot-password",
                "/t/beech/forgot-password", "/reset/not-a-token", "/reset/" + "x" * 3000, "/t/" + "x" * 3000 + "/login",
                "/account/security", "/account/security/devices/99999999999999999999999/remove", "/logout", "/t/oakwood/"):
        for odd in ODD:
            values = {name: odd for name in FIELDS}
            for method, kwargs in (("GET", {"query_string": values}), ("POST", {"data": {"csrf_token": token, **values}})):
                response = client.open(url, method=method, **kwargs)
                if response.status_code >= 500:
                    failures.append((method, url[:40], odd[:20], response.status_code))
        undecodable = client.post(url, data=b"email=%ff%fe&password=%ff&csrf_token=" + token.encode(),
                                  content_type="application/x-www-form-urlencoded")
        if undecodable.status_code >= 500:
            failures.append(("undecodable", url[:40], undecodable.status_code))
    assert not failures


def test_a_nul_character_in_any_value_is_a_clear_400(client, world):
    # PostgreSQL cannot store NUL in text; it must be refused before any query, on every endpoint.
    for url in ("/t/oakwood/login?provider=\x00", "/t/oakwood/forgot-password?provider=sso\x00"):
        response = client.get(url)
        assert response.status_code == 400
        assert "not allowed" in response.get_data(as_text=True)
    response = client.post("/token", data={"grant_type": "authorization_code", "code": "a\x00b"})
    assert response.status_code == 400
