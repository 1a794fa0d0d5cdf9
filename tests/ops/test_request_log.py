"""One log line per request, with a request id, and never a password, token, code or link."""

from __future__ import annotations

import logging

import pytest

from idp.request_log import LOGGER_NAME, REQUEST_ID_HEADER
from tests.conftest import PASSWORD, csrf_token_from


class Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@pytest.fixture
def log():
    handler = Lines()
    logger = logging.getLogger(LOGGER_NAME)
    logger.addHandler(handler)
    yield handler.lines
    logger.removeHandler(handler)


def fields(line: str) -> dict:
    return dict(part.split("=", 1) for part in line.split(" "))


def test_each_request_logs_one_line_with_method_path_status_duration_and_tenant(client, world, log):
    response = client.get("/t/oakwood/login")
    assert len(log) == 1
    entry = fields(log[0])
    assert entry["method"] == "GET" and entry["path"] == "/t/oakwood/login" and entry["status"] == "200"
    assert entry["tenant"] == "oakwood"
    assert float(entry["duration_ms"]) >= 0
    assert entry["request_id"] == response.headers[REQUEST_ID_HEADER]


def test_requests_without_a_tenant_log_none(client, log):
    client.get("/healthz")
    assert "tenant" not in fields(log[0])


def test_query_string_is_never_logged(client, world, log):
    client.get("/t/oakwood/login?provider=sso&next=/oauth/authorize%3Fcode_challenge%3Dsecret")
    entry = fields(log[0])
    assert entry["path"] == "/t/oakwood/login"
    assert "secret" not in log[0] and "?" not in log[0]


def test_reset_link_token_is_logged_as_an_ellipsis(client, log):
    client.get("/reset/Zq3Jk9-very-secret-token")
    assert fields(log[0])["path"] == "/reset/…"
    assert "very-secret-token" not in log[0]


def test_posted_password_and_email_are_not_logged(client, world, log):
    page = client.get("/t/oakwood/login")
    client.post("/t/oakwood/login", data={"csrf_token": csrf_token_from(page.get_data(as_text=True)),
                                          "email": "sam.jones@example.org", "password": PASSWORD,
                                          "provider": "sso"})
    text = "\n".join(log)
    assert PASSWORD not in text and "sam.jones" not in text
    assert fields(log[-1])["method"] == "POST"


def test_a_sane_incoming_request_id_is_kept_and_echoed(client, log):
    response = client.get("/healthz", headers={REQUEST_ID_HEADER: "lb-7f3a.42"})
    assert response.headers[REQUEST_ID_HEADER] == "lb-7f3a.42"
    assert fields(log[0])["request_id"] == "lb-7f3a.42"


@pytest.mark.parametrize("incoming", ["two words", "x" * 300, "<script>", "id=forged status=200"])
def test_an_unsafe_incoming_request_id_is_replaced(client, log, incoming):
    response = client.get("/healthz", headers={REQUEST_ID_HEADER: incoming})
    rid = response.headers[REQUEST_ID_HEADER]
    assert rid != incoming and len(rid) == 32
    assert fields(log[0])["request_id"] == rid


def test_every_request_gets_its_own_id(client, log):
    first = client.get("/healthz").headers[REQUEST_ID_HEADER]
    second = client.get("/healthz").headers[REQUEST_ID_HEADER]
    assert first != second


def test_not_found_pages_are_logged_too(client, log):
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert fields(log[0])["status"] == "404"
