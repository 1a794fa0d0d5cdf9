"""While the database or Redis cannot serve: pages answer 503 with Retry-After and a page that needs
no database, protocol endpoints answer JSON, the log gets one line per failed request (no traceback,
nothing secret), waits are bounded, and a request whose pooled connection was cut is run once more
only when that cannot do anything twice."""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.pool import NullPool

from idp import create_app, outages
from idp.extensions import db
from idp.models import AuthorizationCode, Token
from idp.request_log import LOGGER_NAME
from tests.conftest import FAST_ARGON2, PASSWORD, Browser, csrf_token_from
from tests.oidc.conftest import RelyingParty
from tests.servers import free_port

UNAVAILABLE = "CPOMS is briefly unavailable, please try again in a minute"
SUPPORT = "01756 797766"
DEAD_DATABASES = {
    "postgresql": "postgresql+psycopg://idp:secret-pw@127.0.0.1:{port}/idp",
    "sqlite": "sqlite:////nonexistent-folder/for/sure/idp.sqlite3",
}


@pytest.fixture(autouse=True)
def no_outage_in_progress():
    outages.outages._state.clear()
    yield
    outages.outages._state.clear()


@pytest.fixture(params=sorted(DEAD_DATABASES))
def dead_database_app(request, app, tmp_path):
    """An app whose database cannot be reached, sharing the `app` fixture's session key, so a
    browser signed in on `app` is signed in here too."""
    return create_app({
        "database_url": DEAD_DATABASES[request.param].format(port=free_port()),
        "instance_path": tmp_path / "dead", "secret_key": app.config["SECRET_KEY"], "TESTING": True,
        **FAST_ARGON2,
    })


def _moved_to(client, other_app):
    """A test client of `other_app` with `client`'s cookies (the same browser, another app)."""
    moved = other_app.test_client()
    for cookie in client._cookies.values():
        moved.set_cookie(cookie.key, cookie.value, domain=cookie.domain, path=cookie.path)
    return moved


@contextmanager
def captured_logs():
    """Every log record of the process, as the handlers would print them (tracebacks included)."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(logging.Formatter("%(name)s %(levelname)s %(message)s").format(record))

    handler = Collect(level=logging.DEBUG)
    watched = [logging.getLogger(), logging.getLogger(LOGGER_NAME)]  # the request log does not propagate
    levels = [logger.level for logger in watched]
    for logger in watched:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        for logger, level in zip(watched, levels):
            logger.removeHandler(handler)
            logger.setLevel(level)


# --- what people and relying parties see ------------------------------------------------


def test_a_login_page_says_briefly_unavailable_with_retry_after_when_the_database_is_down(
        dead_database_app, browser, world):
    browser.login("oakwood", "head@oakwood.example.org")  # signed in: rendering must not load the account
    response = _moved_to(browser.client, dead_database_app).get("/t/oakwood/login")
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    page = response.get_data(as_text=True)
    assert UNAVAILABLE in page and SUPPORT in page
    assert "Oakwood" not in page  # no school named: the school could not be looked up
    assert response.headers["Cache-Control"] == "no-store"


def test_an_error_page_for_a_signed_in_person_needs_no_database(dead_database_app, browser, world):
    browser.login("oakwood", "head@oakwood.example.org")
    response = _moved_to(browser.client, dead_database_app).get("/no/such/page")
    assert response.status_code == 404 and "Page not found" in response.get_data(as_text=True)


CLIENT = {"client_id": "some-client", "client_secret": "its-secret"}


@pytest.mark.parametrize("method, path, sent", [
    ("POST", "/token", {"data": {"grant_type": "authorization_code", "code": "abc", **CLIENT}}),
    ("GET", "/userinfo", {"headers": {"Authorization": "Bearer some-token"}}),
    ("POST", "/revoke", {"data": {"token": "abc", **CLIENT}}),
    ("POST", "/introspect", {"data": {"token": "abc", **CLIENT}}),
    ("GET", "/jwks.json", {}),
    ("POST", "/register", {"headers": {"Authorization": "Bearer initial-token"},
                           "json": {"redirect_uris": ["https://rp.example/cb"]}}),
])
def test_protocol_endpoints_answer_json_503_when_the_database_is_down(dead_database_app, method, path, sent):
    response = dead_database_app.test_client().open(path, method=method, **sent)
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.is_json and response.get_json()["error"] == "temporarily_unavailable"
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/token", 405), ("POST", "/jwks.json", 405), ("POST", "/register/some-client", 405),
    ("GET", "/.well-known/no-such-document", 404),
])
def test_protocol_endpoints_answer_every_error_as_json(client, method, path, status):
    response = client.open(path, method=method)
    assert response.status_code == status
    assert response.is_json and response.get_json()["error"] in ("invalid_request", "not_found")


def test_an_unexpected_failure_at_the_token_endpoint_is_a_json_server_error(client, world, monkeypatch):
    from idp.oidc import keys

    def broken():
        raise RuntimeError("a bug")

    monkeypatch.setattr(keys, "current_signing_key", broken)
    response = client.post("/token", data={"grant_type": "authorization_code", "code": "x"})
    assert response.status_code == 500
    assert response.get_json()["error"] == "server_error"


# --- the log ----------------------------------------------------------------------------


def test_an_outage_logs_one_line_per_request_a_warning_when_it_begins_and_ends_and_no_traceback(
        tmp_path, monkeypatch):
    monkeypatch.setattr(outages, "QUIET_SECONDS", 0)
    folder = tmp_path / "not-yet"  # the database file's folder is missing: SQLite cannot open it
    app = create_app({"database_url": f"sqlite:///{folder / 'idp.sqlite3'}", "instance_path": tmp_path / "i",
                      "TESTING": True})
    client = app.test_client()
    with captured_logs() as lines:
        for _ in range(3):
            assert client.get("/t/oakwood/login").status_code == 503
        failed = [line for line in lines if line.startswith(LOGGER_NAME)]
        assert len(failed) == 3 and all("status=503 " in line and "cause=database-unreachable" in line
                                        for line in failed)
        assert [line for line in lines if "outage began" in line] == [
            "idp.outages WARNING outage began: database is unavailable (database-unreachable); "
            "requests that need it answer 503"]
        folder.mkdir()
        with app.app_context():
            db.create_all()  # not the migrations: Alembic's logging set-up would drop this capture
        assert client.get("/t/oakwood/login").status_code == 404  # answered again (no such school yet)
    assert len([line for line in lines if "outage ended: database is available again" in line]) == 1
    assert not any("Traceback" in line for line in lines)


def test_no_secret_reaches_any_log_line_while_the_database_is_down(dead_database_app, browser, world):
    browser.login("oakwood", "head@oakwood.example.org")
    page = browser.client.get("/t/oakwood/login")
    moved = _moved_to(browser.client, dead_database_app)
    with captured_logs() as lines:
        moved.get("/authorize?client_id=c1&redirect_uri=https%3A%2F%2Fx.example%2Fcb&code_challenge=chal-SECRET"
                  "&state=state-SECRET&response_type=code&scope=openid")
        moved.get("/reset/reset-token-SECRET")
        moved.post("/t/oakwood/login", data={"csrf_token": csrf_token_from(page.get_data(as_text=True)),
                                             "email": "head@oakwood.example.org", "password": PASSWORD,
                                             "provider": "identity"})
        moved.post("/token", data={"grant_type": "authorization_code", "code": "code-SECRET"},
                   headers={"Authorization": "Basic Y2xpZW50OnNlY3JldC1TRUNSRVQ="})
    text_ = "\n".join(lines)
    assert text_.count("status=503") == 4
    for secret in ("SECRET", "head@oakwood", PASSWORD, "secret-pw", "Y2xpZW50"):
        assert secret not in text_


def test_log_records_of_every_logger_are_redacted_tracebacks_included(app):
    with captured_logs() as lines:
        logging.getLogger("gunicorn.error").info("Error handling request %s", "/authorize?code_challenge=abc123")
        logging.getLogger("gunicorn.error").info("Error handling request %s", "/reset/tok3n-value")
        logging.getLogger("gunicorn.access").info('"GET /join/j0in-t0ken HTTP/1.1" 200')
        try:
            raise ValueError('duplicate key (email)=(kim@school.example) hash $argon2id$v=19$m=1024,t=1,p=1$c2FsdA$aGFzaA'
                             ' [parameters: (\'kim@school.example\', \'Kim\')]')
        except ValueError:
            logging.getLogger("sqlalchemy.engine").exception("statement failed for %s", "pat@school.example")
    text_ = "\n".join(lines)
    assert "/authorize?[redacted]" in text_ and "abc123" not in text_
    assert "/reset/[redacted]" in text_ and "tok3n" not in text_
    assert "/join/[redacted]" in text_ and "j0in-t0ken" not in text_
    assert "Traceback" in text_ and "ValueError" in text_
    for secret in ("kim@school", "pat@school", "$argon2id", "aGFzaA", "'Kim'"):
        assert secret not in text_


def test_statement_parameters_are_hidden_from_database_errors(app):
    from sqlalchemy.exc import DBAPIError

    with pytest.raises(DBAPIError) as failed:
        db.session.execute(text("SELECT * FROM no_such_table WHERE email = :email"), {"email": "kim@school.example"})
    db.session.rollback()
    assert "kim@school.example" not in str(failed.value)


# --- bounded waits ----------------------------------------------------------------------


@contextmanager
def hot_table_locked(url: str, at_most: float = 10.0):
    """Another client holds the tokens table (PostgreSQL) or the write lock (SQLite) until the block
    ends, or for `at_most` seconds, so that a request that waits unbounded fails the test, not hangs it."""
    engine = create_engine(url, poolclass=NullPool)
    locked, release = threading.Event(), threading.Event()

    def hold():
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("LOCK TABLE tokens IN ACCESS EXCLUSIVE MODE"))
            else:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            locked.set()
            release.wait(at_most)
            conn.exec_driver_sql("ROLLBACK")

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(10)
    try:
        yield
    finally:
        release.set()
        holder.join()
        engine.dispose()


def _signed_in_rp(client, world) -> RelyingParty:
    from idp.oidc.keys import current_signing_key

    current_signing_key()  # made (and committed) by the first token request otherwise
    Browser(client).login("oakwood", "head@oakwood.example.org")
    return RelyingParty(client, world.oakwood_app, world.oakwood_app_secret)


@pytest.mark.parametrize("app_overrides", [{"database_lock_timeout": 1}])
def test_a_token_request_behind_a_locked_table_answers_503_in_bounded_time_and_keeps_its_code(
        app, client, world, app_overrides):
    rp = _signed_in_rp(client, world)
    code = rp.code()
    with hot_table_locked(db.engine.url.render_as_string(hide_password=False)):
        started = time.monotonic()
        response = rp.exchange(code)
        waited = time.monotonic() - started
    assert response.status_code == 503 and response.get_json()["error"] == "temporarily_unavailable"
    assert "Retry-After" in response.headers
    assert waited < 5, f"waited {waited:.1f} s for a lock bounded at 1 s"
    # Nothing was issued to a client that was told to try again, and its code still works.
    assert db.session.scalar(select(db.func.count()).select_from(Token)) == 0
    assert rp.exchange(code).status_code == 200


@pytest.mark.parametrize("app_overrides", [{"database_statement_timeout": 1, "database_lock_timeout": 30}])
def test_a_statement_that_runs_past_the_statement_timeout_answers_503(app, client, world, app_overrides):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("statement_timeout is PostgreSQL's; SQLite's only wait is its busy wait (the test above)")
    rp = _signed_in_rp(client, world)
    code = rp.code()
    with hot_table_locked(db.engine.url.render_as_string(hide_password=False)):
        started = time.monotonic()
        response = rp.exchange(code)
        assert time.monotonic() - started < 5
    assert response.status_code == 503 and response.get_json()["error"] == "temporarily_unavailable"


# --- Redis configured but unreachable: throttled actions fail closed ----------------------------


@pytest.fixture
def redis_down_app(app, tmp_path):
    return create_app({
        "database_url": app.config["SQLALCHEMY_DATABASE_URI"], "instance_path": tmp_path / "no-redis",
        "secret_key": app.config["SECRET_KEY"], "redis_url": f"redis://127.0.0.1:{free_port()}/0",
        "TESTING": True, **FAST_ARGON2,
    })


def _assert_unavailable_page(response):
    assert response.status_code == 503, response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0
    assert UNAVAILABLE in response.get_data(as_text=True)


def test_with_redis_down_the_login_and_reset_posts_answer_503(redis_down_app, world):
    browser = Browser(redis_down_app.test_client())
    _assert_unavailable_page(browser.login("oakwood", "head@oakwood.example.org"))
    _assert_unavailable_page(browser.submit("/t/oakwood/forgot-password",
                                            {"email": "head@oakwood.example.org", "provider": "identity"}))


def test_with_redis_down_a_second_factor_code_check_answers_503(redis_down_app, browser, world, frozen_clock):
    from tests.mfa.conftest import enrol

    enrolment = enrol(world.oakwood_admin)
    db.session.commit()
    assert browser.login("oakwood", "head@oakwood.example.org").status_code == 302  # to the code page
    moved = Browser(_moved_to(browser.client, redis_down_app))
    _assert_unavailable_page(moved.submit("/t/oakwood/login/verify", {"code": enrolment.code()}))


def test_with_redis_down_a_live_sign_in_still_gets_codes_tokens_and_userinfo(redis_down_app, client, world):
    _signed_in_rp(client, world)
    moved = _moved_to(client, redis_down_app)
    rp = RelyingParty(moved, world.oakwood_app, world.oakwood_app_secret)
    tokens = rp.tokens()
    info = moved.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert info.status_code == 200 and info.get_json()["email"] == "head@oakwood.example.org"


# --- one retry on a fresh connection, only when nothing can happen twice ---------------------


@contextmanager
def connection_cut_at(statement_starts: str):
    """The pooled connection is cut (as by a restart or failover) when it is about to run the
    first statement that starts with `statement_starts` ("COMMIT" for the commit itself)."""
    cut = threading.Event()

    def cut_once(conn):
        if not cut.is_set():
            cut.set()
            conn.connection.dbapi_connection.close()

    def before_statement(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(statement_starts):
            cut_once(conn)

    def before_commit(conn):
        if statement_starts == "COMMIT":
            cut_once(conn)

    event.listen(db.engine, "before_cursor_execute", before_statement)
    event.listen(db.engine, "commit", before_commit)
    try:
        yield cut
    finally:
        event.remove(db.engine, "before_cursor_execute", before_statement)
        event.remove(db.engine, "commit", before_commit)


def _token_rows() -> int:
    db.session.expire_all()
    return db.session.scalar(select(db.func.count()).select_from(Token))


def test_a_read_whose_connection_was_cut_is_answered_from_a_fresh_connection(app, client, world):
    rp = _signed_in_rp(client, world)
    tokens = rp.tokens()
    with captured_logs() as lines, connection_cut_at("SELECT") as cut:
        info = client.get("/userinfo", headers={"Authorization": "Bearer " + tokens["access_token"]})
    assert cut.is_set()
    assert info.status_code == 200 and info.get_json()["email"] == "head@oakwood.example.org"
    assert any("path=/userinfo status=200" in line and "retried=1" in line for line in lines)


def test_a_token_request_cut_after_consuming_its_code_is_run_again_and_issues_once(app, client, world):
    rp = _signed_in_rp(client, world)
    code = rp.code()
    with connection_cut_at("INSERT INTO TOKENS") as cut:
        response = rp.exchange(code)
    assert cut.is_set()
    assert response.status_code == 200, response.get_data(as_text=True)
    assert _token_rows() == 1
    assert db.session.scalar(select(AuthorizationCode.consumed_at)) is not None
    assert rp.exchange(code).get_json()["error"] == "invalid_grant"  # still single use


def test_a_request_whose_commit_was_cut_is_not_run_again(app, client, world):
    rp = _signed_in_rp(client, world)
    code = rp.code()
    with captured_logs() as lines, connection_cut_at("COMMIT") as cut:
        response = rp.exchange(code)
    assert cut.is_set()
    # The commit's outcome is unknown to the IdP: the client is told to try again, never given
    # a second answer from a second run.
    assert response.status_code == 503 and response.get_json()["error"] == "temporarily_unavailable"
    assert not any("retried=1" in line for line in lines)
    assert _token_rows() == 0  # this cut came before the commit reached the database
    assert rp.exchange(code).status_code == 200  # so the client's retry is answered


@pytest.fixture
def reads_after(app):
    """/_test/read: a read, after counting a throttle when ?count=1 (a write outside the database)."""
    from idp.ratelimits import LOGIN_PER_IP

    def view():
        from flask import request

        if request.args.get("count"):
            LOGIN_PER_IP.hit("192.0.2.1")
        return {"tokens": db.session.scalar(select(db.func.count()).select_from(Token))}

    app.add_url_rule("/_test/read", "test_read", view)
    return app.test_client()


def test_a_request_that_counted_a_throttle_is_not_run_again(reads_after):
    with connection_cut_at("SELECT") as cut:
        assert reads_after.get("/_test/read?count=1").status_code == 503
    assert cut.is_set()
    with connection_cut_at("SELECT") as cut:  # the control: the same read alone is run again
        assert reads_after.get("/_test/read").status_code == 200
    assert cut.is_set()


def test_a_connection_left_read_only_by_a_failover_is_discarded_and_the_request_run_again(app, client, world):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("read-only connections (a standby, default_transaction_read_only) are PostgreSQL's")
    rp = _signed_in_rp(client, world)
    db.session.commit()  # the test's session gives its connection back to the pool
    # The pool's next connection was made while the server was read-only, and stays so.
    with db.engine.connect() as conn:
        conn.exec_driver_sql("SET SESSION default_transaction_read_only = on")
        conn.commit()
    with captured_logs() as lines:
        code = rp.code()  # its one statement, a write outside a transaction, is refused and run again
        assert rp.exchange(code).status_code == 200
    assert any("path=/authorize status=302" in line and "retried=1" in line for line in lines)
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "off"


def test_a_connection_that_dies_after_the_answer_was_made_does_not_turn_it_into_an_error(app):
    def view():
        count = db.session.scalar(select(db.func.count()).select_from(Token))  # a transaction is open
        db.session.connection().connection.dbapi_connection.close()  # the server goes away
        return {"tokens": count}

    app.add_url_rule("/_test/answered", "test_answered", view)
    answers = []
    # In a thread of its own, the request has its own app context and closes its session at the end,
    # as under gunicorn (the test's context, held open, would keep it).
    request_alone = threading.Thread(target=lambda: answers.append(app.test_client().get("/_test/answered")))
    with captured_logs() as lines:
        request_alone.start()
        request_alone.join()
    assert answers[0].status_code == 200 and answers[0].get_json() == {"tokens": 0}
    assert not any("Traceback" in line for line in lines)


def test_a_database_failure_after_the_view_answers_503_without_a_traceback(app, tmp_path):
    """As when the request boundary's commit (an after-request hook) finds the database gone."""
    from sqlalchemy.exc import OperationalError

    failing = create_app({"database_url": app.config["SQLALCHEMY_DATABASE_URI"], "instance_path": tmp_path,
                          "PROPAGATE_EXCEPTIONS": False})

    commits = []

    @failing.after_request
    def commit_at_the_boundary(response):
        commits.append(response.status_code)
        if len(commits) == 1:  # the error page's own commit, after the rollback, has nothing to send
            raise OperationalError("COMMIT", {}, ConnectionError("server closed the connection unexpectedly"))
        return response

    with captured_logs() as lines:
        response = failing.test_client().get("/healthz/live")
    assert response.status_code == 503 and "Retry-After" in response.headers
    assert not any("Traceback" in line for line in lines)
