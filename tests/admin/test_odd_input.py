"""Nothing an admin can type or put in a URL produces a 500: odd, huge, duplicated and undecodable input."""

import pytest

from tests.conftest import csrf_token_from

HUGE = "99999999999999999999999"
ODD = ["", "x" * 5000, "\u202e\u0000", "a\r\nBcc: x@example.org", "<script>alert(1)</script>", "é" * 300, "-1", HUGE]
FIELDS = ["email", "password", "provider", "next", "name", "role", "active", "code", "confirm", "q", "page",
          "user", "event", "content", "tenant", "redirect_uris", "post_logout_redirect_uris", "client_type"]


def test_a_page_number_too_big_for_the_database_shows_a_page_not_an_error(oakwood_browser):
    for url in ("/t/oakwood/admin/users", "/t/oakwood/admin/audit"):
        response = oakwood_browser.get(url, query_string={"page": HUGE})
        assert response.status_code == 200, url


@pytest.mark.parametrize("path", ["users/{big}", "users/{big}/provider", "users/{big}/reset-2fa",
                                  "users/{big}/send-link"])
def test_a_member_id_too_big_for_the_database_is_not_found(oakwood_browser, path):
    url = "/t/oakwood/admin/" + path.format(big=HUGE)
    token = csrf_token_from(oakwood_browser.get("/t/oakwood/admin/users/new").get_data(as_text=True))
    assert oakwood_browser.get(url).status_code in (404, 405)
    assert oakwood_browser.client.post(url, data={"csrf_token": token}).status_code == 404


def test_odd_form_and_query_values_never_cause_a_server_error(oakwood_browser, world):
    client = oakwood_browser.client
    member_id = world.oakwood_identity.memberships[0].id
    urls = [f"/t/oakwood/admin/users/{member_id}", f"/t/oakwood/admin/users/{member_id}/provider",
            "/t/oakwood/admin/users", "/t/oakwood/admin/users/new", "/t/oakwood/admin/users/import",
            "/t/oakwood/admin/users/import/confirm", "/t/oakwood/admin/applications/new",
            f"/t/oakwood/admin/applications/{world.oakwood_app.client_id}", "/t/oakwood/admin/audit",
            "/account/security", "/account/security/devices", "/account/security/recovery-codes",
            "/account/security/devices/1/confirm", "/t/oakwood/login/verify"]
    token = csrf_token_from(client.get("/t/oakwood/admin/users/new").get_data(as_text=True))
    failures = []
    for url in urls:
        for odd in ODD:
            values = {name: odd for name in FIELDS}
            for method, kwargs in (("GET", {"query_string": values}), ("POST", {"data": {"csrf_token": token, **values}})):
                response = client.open(url, method=method, **kwargs)
                if response.status_code >= 500:
                    failures.append((method, url, odd[:20], response.status_code))
        undecodable = client.post(url, data=b"email=%ff%fe&name=%c3&csrf_token=" + token.encode(),
                                  content_type="application/x-www-form-urlencoded")
        duplicated = client.post(url, data={"csrf_token": token, "email": ["a@example.org", "b@example.org"],
                                            "role": ["admin", "member"]})
        for response in (undecodable, duplicated, client.put(url), client.delete(url)):
            if response.status_code >= 500:
                failures.append(("odd", url, response.status_code))
    assert not failures
    assert oakwood_browser.get("/t/oakwood/admin/users").status_code == 200  # still signed in throughout
