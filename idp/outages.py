"""When the database or Redis cannot serve: a 503 that needs neither, one log line per failed
request, a warning when an outage begins and ends, and one retry of a request whose pooled
connection was cut before it had committed anything or sent anything outside.

`cause_of(error)` is the one place that decides which failures are outages (and which cause
to log); everything else is an ordinary error with its traceback."""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass

from flask import Flask, current_app, g, has_request_context, request, session
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

from .extensions import db

log = logging.getLogger(__name__)

#: Seconds a client is asked to wait. Short, because authorization codes live 60 s: a relying party
#: that waits as told can still redeem its code.
RETRY_AFTER_SECONDS = 10
#: An outage is over at the first request served this long after the last failure, so a database
#: that refuses only writes (read-only) does not log "began" and "ended" on every request.
QUIET_SECONDS = 2.0
UNAVAILABLE_TITLE = "CPOMS is briefly unavailable"
UNAVAILABLE_MESSAGE = "CPOMS is briefly unavailable, please try again in a minute."

# g keys: whether this request may still be run again from the start.
_COMMITTED = "_idp_committed"
_WRITING = "_idp_writing"
_SENT_OUTSIDE = "_idp_sent_outside"
_DATABASE_ANSWERED = "_idp_database_answered"
RETRIED = "idp_retried"
OUTAGE_CAUSE = "idp_outage_cause"


@dataclass(frozen=True)
class Outage:
    #: "database" or "redis": what is unavailable.
    service: str
    #: What went wrong, one word for the log (database-unreachable, lock-timeout, ...).
    cause: str


class ServiceUnavailable(Exception):
    """Raised where a failure of an outside service is recognised (idp.ratelimits)."""

    def __init__(self, outage: Outage):
        super().__init__(outage.cause)
        self.outage = outage


READ_ONLY_SQLSTATE = "25006"  # read_only_sql_transaction
# PostgreSQL SQLSTATEs (appendix A of its manual) that mean "not now" rather than "wrong".
_POSTGRESQL_CAUSES = {
    READ_ONLY_SQLSTATE: "database-read-only",  # read_only_sql_transaction: a standby, or read-only mode
    "57014": "statement-timeout",  # query_canceled (statement_timeout)
    "55P03": "lock-timeout",  # lock_not_available (lock_timeout)
    "57P01": "database-restarting",  # admin_shutdown
    "57P02": "database-restarting",  # crash_shutdown
    "57P03": "database-restarting",  # cannot_connect_now: starting up or in recovery
    "53300": "database-overloaded",  # too_many_connections
}
# SQLite's primary result codes (sqlite.org/rescode.html).
_SQLITE_CAUSES = {
    5: "lock-timeout",  # SQLITE_BUSY: the busy wait ran out
    6: "lock-timeout",  # SQLITE_LOCKED
    8: "database-read-only",  # SQLITE_READONLY
    10: "database-unreachable",  # SQLITE_IOERR
    13: "database-full",  # SQLITE_FULL
    14: "database-unreachable",  # SQLITE_CANTOPEN
}


def cause_of(error: BaseException) -> Outage | None:
    """The outage `error` shows, or None when it is an ordinary error (a bug, bad data)."""
    if isinstance(error, ServiceUnavailable):
        return error.outage
    if isinstance(error, sa_exc.TimeoutError):  # no pooled connection came free in time
        return Outage("database", "database-pool-exhausted")
    if not isinstance(error, sa_exc.DBAPIError):
        return None
    original = error.orig
    sqlstate = getattr(original, "sqlstate", None)
    if sqlstate in _POSTGRESQL_CAUSES:
        return Outage("database", _POSTGRESQL_CAUSES[sqlstate])
    sqlite_code = getattr(original, "sqlite_errorcode", None)
    if sqlite_code is not None and sqlite_code & 0xFF in _SQLITE_CAUSES:
        return Outage("database", _SQLITE_CAUSES[sqlite_code & 0xFF])
    if error.connection_invalidated or (sqlstate or "").startswith("08"):
        return Outage("database", "database-unreachable")
    # psycopg's errors without a SQLSTATE are the connection's own: refused, closed, timed out.
    if isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError)) and sqlstate is None \
            and sqlite_code is None:
        return Outage("database", "database-unreachable")
    return None


class _Outages:
    """Per process: when each service became unavailable, so the log says so once, not per request."""

    def __init__(self):
        self._lock = threading.Lock()
        self._state: dict[str, dict] = {}

    @property
    def any(self) -> bool:
        return bool(self._state)

    def failed(self, outage: Outage) -> None:
        now = time.monotonic()
        with self._lock:
            state = self._state.get(outage.service)
            if state is not None:
                state["last_failure"], state["failures"] = now, state["failures"] + 1
                return
            self._state[outage.service] = {"since": now, "last_failure": now, "failures": 1}
        log.warning("outage began: %s is unavailable (%s); requests that need it answer 503",
                    outage.service, outage.cause)

    def served(self, service: str) -> None:
        state = self._state.get(service)
        if state is None or time.monotonic() - state["last_failure"] < QUIET_SECONDS:
            return
        with self._lock:
            if self._state.pop(service, None) is None:
                return
        log.warning("outage ended: %s is available again after %.1f s (%d requests answered 503)",
                    service, time.monotonic() - state["since"], state["failures"])


outages = _Outages()


def served(service: str) -> None:
    """`service` just answered a request: if it was out, the outage is over."""
    if outages.any:
        outages.served(service)


# --- the answer -------------------------------------------------------------------------


def _protocol_paths() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(exact paths, path prefixes) of the endpoints relying parties call, which answer JSON."""
    from .oidc.metadata import PATHS

    exact = tuple(PATHS[name] for name in (
        "token_endpoint", "userinfo_endpoint", "jwks_uri", "revocation_endpoint",
        "introspection_endpoint", "registration_endpoint",
    ))
    # Client configuration (RFC 7592) lives under the registration endpoint; discovery under /.well-known.
    return exact, (PATHS["registration_endpoint"] + "/", "/.well-known/")


def is_protocol_request() -> bool:
    paths = current_app.extensions.get("idp_protocol_paths")
    if paths is None:
        paths = current_app.extensions["idp_protocol_paths"] = _protocol_paths()
    exact, prefixes = paths
    return request.path in exact or request.path.startswith(prefixes)


def render_page(template: str, **context) -> str:
    """A page rendered without the app's context processors: Flask-Login's would load the signed-in
    account from the database, which is exactly what may be failing when an error page is shown.
    Flashed messages stay in the session for the next real page."""
    return current_app.jinja_env.get_template(template).render(get_flashed_messages=lambda **_: [], **context)


def unavailable(outage: Outage):
    """503 with Retry-After: JSON for relying parties, a page for people that needs no database."""
    outages.failed(outage)
    g.setdefault(OUTAGE_CAUSE, outage.cause)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if is_protocol_request():
        # RFC 6749 4.1.2.1's code for "try again later", understood by OAuth clients everywhere.
        body = {"error": "temporarily_unavailable", "error_description": UNAVAILABLE_MESSAGE}
        return body, 503, headers
    return render_page("unavailable.html", title=UNAVAILABLE_TITLE, message=UNAVAILABLE_MESSAGE), 503, headers


def rollback_quietly() -> None:
    """Roll the session back after a failure; on a dead connection that may fail too, which says
    nothing new."""
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001 - the connection is already known to be broken
        pass


# --- what this request has done that cannot be undone -------------------------------------


def sent_outside() -> None:
    """Something left the process that a retry would send again (a throttle count, a mail)."""
    if has_request_context():
        g.setdefault(_SENT_OUTSIDE, True)


@event.listens_for(Engine, "commit")
def _note_commit(conn):
    # Just before COMMIT goes to the database (after the session's flush, whose statements are
    # still undone by a cut): from here on the outcome of a failure is unknown.
    if has_request_context():
        g.setdefault(_COMMITTED, True)


def _writes_by_itself(conn, statement: str) -> bool:
    # Outside a transaction (extensions.each_statement_commits) a write commits as it runs.
    return conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT" \
        and statement.lstrip()[:6].upper() != "SELECT"


@event.listens_for(Engine, "before_cursor_execute")
def _note_statement(conn, cursor, statement, parameters, context, executemany):
    if has_request_context() and _writes_by_itself(conn, statement):
        g.setdefault(_WRITING, True)


@event.listens_for(Engine, "after_cursor_execute")
def _note_answer(conn, cursor, statement, parameters, context, executemany):
    if not has_request_context():
        return
    if g.pop(_WRITING, None):
        g.setdefault(_COMMITTED, True)
    if outages.any:
        g.setdefault(_DATABASE_ANSWERED, True)


def _may_run_again(error: sa_exc.DBAPIError) -> bool:
    if g.get(_COMMITTED) or g.get(_SENT_OUTSIDE) or g.get(RETRIED):
        return False
    # A write that commits by itself failed: its outcome is unknown, unless the server refused it
    # outright for being read-only (then it did nothing).
    return not g.get(_WRITING) or getattr(error.orig, "sqlstate", None) == READ_ONLY_SQLSTATE


# --- wiring -----------------------------------------------------------------------------


def _start_request() -> None:
    # g can outlive a request (an app context held open around several): start clean.
    for key in (_COMMITTED, _WRITING, _SENT_OUTSIDE, _DATABASE_ANSWERED, RETRIED, OUTAGE_CAUSE):
        g.pop(key, None)


def _note_served(response):
    if outages.any and g.get(_DATABASE_ANSWERED) and OUTAGE_CAUSE not in g:
        outages.served("database")
    return response


def _retrying_once_on_a_cut_connection(dispatch):
    """The view, run once more on a fresh connection when its pooled connection was cut (a restart,
    a failover, a read-only server) and nothing it did has left the process yet: no commit
    attempted (its outcome would be unknown), no write outside a transaction that may have
    committed, no throttle count, no mail. The failed attempt's transaction died with its
    connection, so the second run starts from what the database holds; and the single-use writes
    (a code consumed, a refresh token rotated) are conditional updates that a second run simply
    repeats. The browser's cookie session is put back as it came."""

    @functools.wraps(dispatch)
    def dispatch_request():
        cookie_before = dict(session)
        try:
            return dispatch()
        except sa_exc.DBAPIError as error:
            if not (error.connection_invalidated and _may_run_again(error)):
                raise
        rollback_quietly()  # drops the dead connection; the pool hands out a fresh one
        session.clear()
        session.update(cookie_before)
        g.pop("_login_user", None)  # Flask-Login's account, loaded through the dead connection
        g.pop("idp_sign_ins", None)  # the browser's sign-in, likewise (auth.session)
        g.pop(_DATABASE_ANSWERED, None)
        g.pop(_WRITING, None)
        g.setdefault(RETRIED, True)
        return dispatch()

    return dispatch_request


def _end_session_quietly(exc) -> None:
    """Close the request's session before Flask-SQLAlchemy does (teardowns run last-registered
    first). A connection that died after the answer was made fails the closing ROLLBACK; that
    says nothing about the answer, which must not become a 500 with a traceback."""
    try:
        db.session.remove()
    except sa_exc.DBAPIError:
        # The dead connection is invalidated by now, so closing again only lets go of it.
        db.session.remove()


def _logging_outages_as_one_line(log_exception):
    """Flask's own logging of an exception that escaped the error handlers (one raised by an
    after-request hook, such as a commit at the request boundary): an outage is said by the request
    log line (create_app's error pages answer 503), not with a traceback per request."""

    @functools.wraps(log_exception)
    def log_unless_outage(exc_info):
        if cause_of(exc_info[1]) is None:
            log_exception(exc_info)

    return log_unless_outage


def init_app(app: Flask) -> None:
    app.before_request_funcs.setdefault(None, []).insert(0, _start_request)
    app.after_request(_note_served)
    app.teardown_appcontext(_end_session_quietly)
    app.log_exception = _logging_outages_as_one_line(app.log_exception)
    app.dispatch_request = _retrying_once_on_a_cut_connection(app.dispatch_request)
