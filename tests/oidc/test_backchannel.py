"""OpenID Connect Back-Channel Logout 1.0: when a sign-in ends, every client that received tokens in
it (and registered a back-channel logout URI) is sent a signed logout token by the worker."""

from __future__ import annotations

import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs

import pytest
from joserfc import jwt
from sqlalchemy import select

from idp import audit, clock
from idp.accounts import sessions
from idp.extensions import db
from idp.models import AuditEvent, LogoutNotice, Token
from idp.oidc import backchannel, registry
from tests.concurrency import run_concurrently
from tests.conftest import Browser, csrf_token_from


class Receiver:
    """A relying party's back-channel logout endpoint on a local port, answering `status`."""

    def __init__(self, status: int = 200):
        self.status = status
        self.tokens: list[str] = []
        self.hosts: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                receiver.tokens.extend(form.get("logout_token", []))
                receiver.hosts.append(self.headers.get("Host"))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_port}/backchannel-logout"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(world):
    receiving = Receiver()
    for client in (world.oakwood_app, world.staffsafe_app):
        registry.update_client(client, backchannel_logout_uri=receiving.uri, backchannel_logout_session_required=True)
    db.session.commit()
    yield receiving
    receiving.close()


def sign_out(browser, slug="oakwood"):
    token = csrf_token_from(browser.get(f"/t/{slug}/").get_data(as_text=True))
    return browser.client.post("/logout", data={"csrf_token": token, "tenant": slug})


def test_id_tokens_name_the_sign_in_they_came_from(signed_in_sso, oakwood_rp, staffsafe_rp, browser):
    a = oakwood_rp.validate_id_token(oakwood_rp.tokens()["id_token"])
    b = staffsafe_rp.validate_id_token(staffsafe_rp.tokens()["id_token"])
    row = sessions.of_account(signed_in_sso)[0]
    assert a["sid"] == b["sid"] == row.sid


def test_discovery_advertises_back_channel_logout_with_sessions(client):
    metadata = client.get("/.well-known/openid-configuration").get_json()
    assert metadata["backchannel_logout_supported"] is True
    assert metadata["backchannel_logout_session_supported"] is True


def test_signing_out_tells_every_client_that_got_tokens_in_that_sign_in(
        signed_in_sso, browser, oakwood_rp, staffsafe_rp, receiver, world, frozen_clock):
    sid = oakwood_rp.validate_id_token(oakwood_rp.tokens()["id_token"])["sid"]
    staffsafe_rp.tokens()
    response = sign_out(browser)
    assert response.status_code == 302
    notices = db.session.scalars(select(LogoutNotice).order_by(LogoutNotice.client_id)).all()
    assert sorted(n.client_id for n in notices) == sorted([world.oakwood_app.client_id, world.staffsafe_app.client_id])
    # Nothing was sent during the person's request: the worker sends them.
    assert receiver.tokens == []
    assert backchannel.deliver_due() == 2
    assert len(receiver.tokens) == 2
    keys = oakwood_rp.jwks()
    for token in receiver.tokens:
        decoded = jwt.decode(token, keys, algorithms=["RS256"])
        claims = decoded.claims
        assert decoded.header["typ"] == "logout+jwt" and decoded.header["kid"]
        assert claims["iss"] == "http://127.0.0.1:5000" and claims["sid"] == sid
        assert claims["sub"] == world.sso_user.sub
        assert claims["aud"] in (world.oakwood_app.client_id, world.staffsafe_app.client_id)
        assert claims["events"] == {"http://schemas.openid.net/event/backchannel-logout": {}}
        assert claims["jti"] and claims["iat"] == clock.timestamp() and "nonce" not in claims
    assert len({jwt.decode(t, keys).claims["jti"] for t in receiver.tokens}) == 2
    assert all(n.delivered_at is not None for n in db.session.scalars(select(LogoutNotice)))


def test_a_client_that_got_no_tokens_in_the_sign_in_is_not_told(
        signed_in_sso, browser, oakwood_rp, receiver, world, frozen_clock):
    oakwood_rp.tokens()
    sign_out(browser)
    assert [n.client_id for n in db.session.scalars(select(LogoutNotice))] == [world.oakwood_app.client_id]


def test_refresh_tokens_without_offline_access_end_with_the_sign_in(
        signed_in_sso, browser, oakwood_rp, receiver, world, frozen_clock):
    online = oakwood_rp.tokens(scope="openid profile email")
    offline = oakwood_rp.tokens(scope="openid profile email offline_access")
    sign_out(browser)
    assert oakwood_rp.refresh(online["refresh_token"]).status_code == 400
    assert oakwood_rp.refresh(offline["refresh_token"]).status_code == 200  # section 2.7: offline stays


def test_refresh_tokens_without_offline_access_end_when_the_sign_in_times_out(
        signed_in_sso, browser, oakwood_rp, world, frozen_clock):
    """An idle timeout or maximum age ends the sign-in without anyone signing out: its refresh
    tokens end with it, and the whole family is revoked."""
    online = oakwood_rp.tokens(scope="openid profile email")
    offline = oakwood_rp.tokens(scope="openid profile email offline_access")
    frozen_clock.advance(timedelta(seconds=world.oakwood.session_idle_timeout + 60))
    refused = oakwood_rp.refresh(online["refresh_token"])
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_grant"
    assert "sign-in" in refused.get_json()["error_description"]
    db.session.expire_all()
    assert all(row.revoked_at is not None for row in db.session.scalars(select(Token).where(Token.offline.is_(False))))
    assert oakwood_rp.refresh(offline["refresh_token"]).status_code == 200


def test_an_app_refreshing_keeps_its_sign_in_from_idling_out(
        signed_in_sso, browser, oakwood_rp, world, frozen_clock):
    """A refresh is the sign-in in use (the person is working in the app), so the idle time starts
    again; the sign-in's maximum age still ends it."""
    idle = timedelta(seconds=world.oakwood.session_idle_timeout)
    tokens = oakwood_rp.tokens(scope="openid profile email")
    for _ in range(3):
        frozen_clock.advance(idle - timedelta(minutes=1))
        response = oakwood_rp.refresh(tokens["refresh_token"])
        assert response.status_code == 200, response.get_json()
        tokens = response.get_json()
    frozen_clock.advance(timedelta(seconds=world.oakwood.session_max_age))
    assert oakwood_rp.refresh(tokens["refresh_token"]).status_code == 400


def test_a_code_not_yet_exchanged_when_the_sign_in_ends_gives_no_tokens(
        signed_in_sso, browser, oakwood_rp, world, frozen_clock):
    code = oakwood_rp.code()
    sign_out(browser)
    response = oakwood_rp.exchange(code)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_a_failed_delivery_is_retried_with_backoff_and_then_given_up(
        signed_in_sso, browser, oakwood_rp, receiver, world, frozen_clock, caplog):
    receiver.status = 500
    oakwood_rp.tokens()
    sign_out(browser)
    assert backchannel.deliver_due() == 0
    notice = db.session.scalars(select(LogoutNotice)).one()
    assert (notice.attempts, notice.last_status, notice.last_error) == (1, 500, "HTTP 500")
    assert backchannel.deliver_due() == 0 and len(receiver.tokens) == 1  # not due again yet
    frozen_clock.advance(timedelta(seconds=11))
    assert backchannel.deliver_due() == 0 and len(receiver.tokens) == 2
    receiver.status = 200
    frozen_clock.advance(timedelta(seconds=21))
    assert backchannel.deliver_due() == 1
    db.session.expire_all()
    assert db.session.scalars(select(LogoutNotice)).one().delivered_at is not None


def test_a_relying_party_that_never_answers_is_given_up_after_an_hour_and_the_admin_sees_it(
        signed_in_sso, browser, oakwood_rp, receiver, world, frozen_clock):
    receiver.close()
    oakwood_rp.tokens()
    sign_out(browser)
    for _ in range(20):
        backchannel.deliver_due()
        frozen_clock.advance(timedelta(minutes=10))
    notice = db.session.scalars(select(LogoutNotice)).one()
    assert notice.failed_at is not None and notice.delivered_at is None
    assert db.session.scalars(select(AuditEvent).where(AuditEvent.event == audit.LOGOUT_NOTICE_FAILED)).one()
    status = backchannel.delivery_status(world.oakwood)[world.oakwood_app.client_id]
    assert status.failed_recently == 1 and status.waiting == 0 and status.last_error


def test_two_workers_deliver_each_notice_once(app, signed_in_sso, browser, oakwood_rp, staffsafe_rp, receiver,
                                              frozen_clock):
    oakwood_rp.tokens()
    staffsafe_rp.tokens()
    sign_out(browser)
    db.session.commit()
    results = run_concurrently(app, backchannel.deliver_due, n=2)
    assert sum(results) == 2 and len(receiver.tokens) == 2


def test_ending_sign_ins_by_a_password_change_tells_the_clients(
        signed_in_sso, browser, oakwood_rp, receiver, world, frozen_clock):
    from idp.accounts import credentials

    oakwood_rp.tokens()
    credentials.change_password(world.sso_user, "Walrus-Copper-Meadow-88?")
    db.session.commit()
    assert backchannel.deliver_due() == 1


def test_the_admin_page_registers_the_uri_and_shows_deliveries(app, world, receiver, frozen_clock):
    admin = Browser(app.test_client())
    admin.login("oakwood", "head@oakwood.example.org")
    page = admin.get(f"/t/oakwood/admin/applications/{world.oakwood_app.client_id}").get_data(as_text=True)
    assert receiver.uri in page and "Last delivered" in page
    refused = admin.submit(f"/t/oakwood/admin/applications/{world.oakwood_app.client_id}", {
        "name": "Oakwood CPOMS", "redirect_uris": "https://oakwood.example/callback",
        "backchannel_logout_uri": "http://oakwood.example/logout#frag"})
    assert refused.status_code == 400 and "must not contain a fragment" in refused.get_data(as_text=True)


def test_dynamic_registration_takes_and_echoes_the_back_channel_metadata(client, world):
    token = registry.issue_initial_access_token(world.oakwood)
    db.session.commit()
    metadata = {"client_name": "Timetable", "redirect_uris": ["https://timetable.example/cb"],
                "backchannel_logout_uri": "https://timetable.example/bc", "backchannel_logout_session_required": True}
    body = client.post("/register", json=metadata, headers={"Authorization": f"Bearer {token}"}).get_json()
    assert body["backchannel_logout_uri"] == "https://timetable.example/bc"
    assert body["backchannel_logout_session_required"] is True
    token = registry.issue_initial_access_token(world.oakwood)
    db.session.commit()
    bad = client.post("/register", json={**metadata, "backchannel_logout_uri": "http://timetable.example/bc"},
                      headers={"Authorization": f"Bearer {token}"})
    assert bad.status_code == 400 and bad.get_json()["error"] == "invalid_client_metadata"


def test_the_worker_command_runs_a_round(runner, signed_in_sso, browser, oakwood_rp, receiver, frozen_clock):
    oakwood_rp.tokens()
    sign_out(browser)
    result = runner.invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert len(receiver.tokens) == 1


def test_in_production_a_uri_on_a_private_network_is_refused_at_delivery(
        app, signed_in_sso, browser, oakwood_rp, receiver, frozen_clock):
    from dataclasses import replace

    oakwood_rp.tokens()
    sign_out(browser)
    app.config["SETTINGS"] = replace(app.config["SETTINGS"], env="production")
    backchannel.deliver_due()
    notice = db.session.scalars(select(LogoutNotice)).one()
    assert receiver.tokens == [] and "non-public address" in notice.last_error


def test_a_pinned_session_connects_to_the_checked_address_and_still_names_the_host(receiver):
    """The address checked is the one connected to; the request still says which site it is for
    (Host header, and for https the TLS server name and certificate check)."""
    port = receiver.server.server_port
    with backchannel._pinned("127.0.0.1") as http:
        response = http.post(f"http://rp.invalid:{port}/backchannel-logout", data={"logout_token": "t"}, timeout=3)
    assert response.status_code == 200
    assert receiver.tokens == ["t"] and receiver.hosts == [f"rp.invalid:{port}"]


def test_in_production_the_notice_goes_to_the_address_that_was_checked(app, monkeypatch):
    """DNS rebinding: a name that resolves to a public address when checked and to the IdP's own
    network a moment later must not get the request into that network. The connection is made to
    the address checked, never to the name looked up again."""
    from dataclasses import replace

    import urllib3.util.connection

    app.config["SETTINGS"] = replace(app.config["SETTINGS"], env="production")
    lookups, connected = [], []

    def resolve(host, *args, **kwargs):
        lookups.append(host)
        answer = "93.184.215.14" if len(lookups) == 1 else "127.0.0.1"  # rebinds after the first answer
        return [(2, 1, 6, "", (answer, 0))]

    def connect(address, *args, **kwargs):
        connected.append(address[0])
        raise OSError("no network in this test")

    monkeypatch.setattr(backchannel.socket, "getaddrinfo", resolve)
    monkeypatch.setattr(urllib3.util.connection.socket, "getaddrinfo", resolve)
    monkeypatch.setattr(urllib3.util.connection, "create_connection", connect)
    outcome = backchannel.post_logout_token("https://rp.example/backchannel-logout", "token")
    assert outcome.delivered is False
    assert connected == ["93.184.215.14"]


@pytest.mark.parametrize("address, public", [
    ("93.184.215.14", True), ("2606:4700::1", True), ("10.0.0.1", False), ("127.0.0.1", False), ("169.254.169.254", False),
    ("::1", False), ("fd00::1", False), ("::ffff:10.0.0.1", False), ("2002:a00:1::", False), ("64:ff9b::a00:1", False),
    ("64:ff9b:1::a00:1", False), ("::a00:1", False), ("64:ff9b::5db8:d70e", True), ("::ffff:0:a00:1", False),
])
def test_only_public_addresses_are_sent_notices(address, public):
    """IPv6 forms that carry an IPv4 address (mapped, 6to4, NAT64) are judged by what they reach."""
    import ipaddress

    assert backchannel._is_public(ipaddress.ip_address(address)) is public


def test_tokens_remember_their_sign_in(signed_in_sso, oakwood_rp, world):
    oakwood_rp.tokens()
    row = db.session.scalars(select(Token)).one()
    assert row.sid == sessions.of_account(world.sso_user)[0].sid and row.offline is True
