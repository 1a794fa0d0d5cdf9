"""Behind a TLS-terminating proxy: X-Forwarded-* are believed only when
IDP_TRUSTED_PROXIES says how many proxies stand in front (ProxyFix), so a
client cannot forge its address to dodge throttling or poison the audit log."""

from __future__ import annotations

import pytest
from flask import request, url_for

from idp.extensions import db
from idp.models import AuditEvent
from tests.conftest import PASSWORD

PROXY_HEADERS = {
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "login.cpoms.example",
}
TRUSTED = {"trusted_proxies": 1, "issuer": "https://login.cpoms.example"}


@pytest.fixture
def whoami(app):
    """What the application believes about a request, after the middleware."""

    def view():
        return {"ip": request.remote_addr, "scheme": request.scheme, "host": request.host,
                "healthz": url_for("ops.healthz", _external=True)}

    app.add_url_rule("/_test/whoami", "test_whoami", view)
    return lambda **kw: app.test_client().get("/_test/whoami", **kw).get_json()


def _failed_login(browser, ip: str, **kw):
    headers = {**PROXY_HEADERS, "X-Forwarded-For": ip}
    page = browser.client.get("/t/beech/login", headers=headers, **kw)
    from tests.conftest import csrf_token_from

    return browser.client.post(
        "/t/beech/login", headers={**headers, "Referer": "https://login.cpoms.example/t/beech/login"},
        data={"csrf_token": csrf_token_from(page.get_data(as_text=True)), "email": "pat.lee@example.org",
              "password": "wrong", "provider": "identity"}, **kw)


def test_forwarded_headers_are_ignored_without_trusted_proxies(whoami):
    seen = whoami(headers=PROXY_HEADERS)
    assert seen["ip"] == "127.0.0.1" and seen["scheme"] == "http" and seen["host"] == "localhost"
    assert seen["healthz"] == "http://localhost/healthz"


@pytest.mark.parametrize("app_overrides", [TRUSTED])
def test_forwarded_headers_are_honoured_from_a_trusted_proxy(whoami, app_overrides):
    seen = whoami(headers=PROXY_HEADERS)
    assert seen == {"ip": "203.0.113.7", "scheme": "https", "host": "login.cpoms.example",
                    "healthz": "https://login.cpoms.example/healthz"}


@pytest.mark.parametrize("app_overrides", [TRUSTED])
def test_only_the_nearest_proxys_entry_is_trusted(whoami, app_overrides):
    # A client may send its own X-Forwarded-For; the proxy appends the real address.
    seen = whoami(headers={**PROXY_HEADERS, "X-Forwarded-For": "10.6.6.6, 203.0.113.7"})
    assert seen["ip"] == "203.0.113.7"


def test_audit_records_the_connection_address_when_no_proxy_is_trusted(browser, world):
    _failed_login(browser, "203.0.113.7")
    ips = {ip for (ip,) in db.session.query(AuditEvent.ip)}
    assert "127.0.0.1" in ips and "203.0.113.7" not in ips


@pytest.mark.parametrize("app_overrides", [TRUSTED])
def test_audit_records_the_client_address_given_by_a_trusted_proxy(browser, world, app_overrides):
    _failed_login(browser, "203.0.113.7")
    assert "203.0.113.7" in {ip for (ip,) in db.session.query(AuditEvent.ip)}


def test_forged_forwarded_for_does_not_dodge_ip_throttling(app, browser, world):
    app.config["THROTTLE_RULES"] = {"login-ip": "2 per minute"}
    for ip in ("198.51.100.1", "198.51.100.2"):
        _failed_login(browser, ip)
    assert _failed_login(browser, "198.51.100.3").status_code == 429


@pytest.mark.parametrize("app_overrides", [TRUSTED])
def test_ip_throttling_counts_each_client_behind_a_trusted_proxy(app, browser, world, app_overrides):
    # A whole school behind one proxy must not lock out a different school's users.
    app.config["THROTTLE_RULES"] = {"login-ip": "2 per minute"}
    for _ in range(2):
        _failed_login(browser, "198.51.100.1")
    assert _failed_login(browser, "198.51.100.1").status_code == 429
    assert _failed_login(browser, "198.51.100.2").status_code == 200


@pytest.mark.parametrize("app_overrides", [TRUSTED])
def test_sign_in_works_over_https_behind_the_proxy(app, client, world, app_overrides):
    # Over https Flask-WTF requires a same-origin Referer on every form post; browsers
    # only send one if the page's Referrer-Policy allows it for same-origin requests.
    page = client.get("/t/beech/login", headers=PROXY_HEADERS)
    policy = page.headers["Referrer-Policy"]
    assert policy in ("same-origin", "strict-origin", "strict-origin-when-cross-origin", "origin")
    from tests.conftest import csrf_token_from

    response = client.post(
        "/t/beech/login",
        headers={**PROXY_HEADERS, "Referer": "https://login.cpoms.example/t/beech/login"},
        data={"csrf_token": csrf_token_from(page.get_data(as_text=True)), "email": "pat.lee@example.org",
              "password": PASSWORD, "provider": "identity"},
    )
    assert response.status_code == 302
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("idp_session="))
    assert "Secure" in cookie


@pytest.mark.parametrize("app_overrides", [{}, TRUSTED])
def test_discovery_names_the_issuer_whatever_host_the_request_claims(client, app, app_overrides):
    issuer = app.config["SETTINGS"].issuer
    document = client.get("/.well-known/openid-configuration",
                          headers={**PROXY_HEADERS, "X-Forwarded-Host": "evil.example", "Host": "evil2.example"})
    document = document.get_json()
    assert document["issuer"] == issuer
    endpoints = [value for name, value in document.items() if name.endswith(("_endpoint", "_uri"))]
    assert endpoints and all(url.startswith(issuer + "/") for url in endpoints)


@pytest.mark.parametrize("app_overrides", [{"trusted_proxies": 1, "issuer": "https://schools.example/idp"}])
def test_a_trusted_proxy_may_mount_the_idp_under_a_path(client, world, app_overrides):
    # X-Forwarded-Prefix: the proxy serves the IdP at https://schools.example/idp/...
    response = client.get(
        "/authorize",
        query_string={"response_type": "code", "client_id": world.oakwood_app.client_id,
                      "redirect_uri": "https://oakwood.example/callback", "scope": "openid"},
        headers={**PROXY_HEADERS, "X-Forwarded-Host": "schools.example", "X-Forwarded-Prefix": "/idp"},
    )
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/idp/t/oakwood/login")
