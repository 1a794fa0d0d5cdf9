"""Health checks for load balancers: liveness (the process answers, needing nothing) and
readiness (this node can serve now: its database takes writes, Redis answers when configured).
A node that is not ready answers 503, so the load balancer drains traffic from it."""

from __future__ import annotations

from flask import Blueprint, current_app
from sqlalchemy import exc as sa_exc

from . import outages, ratelimits
from .extensions import db
from .models import Account, AuthorizationCode, Membership, Token

bp = Blueprint("ops", __name__)

#: The tables every sign-in and token request writes: while one is locked, no sign-in completes.
HOT_TABLES = tuple(model.__table__.name for model in (Token, AuthorizationCode, Account, Membership))
#: How long readiness waits for those tables. Short: a load balancer polls every second or two,
#: and a lock held longer than this already stalls real requests.
READINESS_LOCK_WAIT_MS = 500


@bp.route("/healthz/live")
def live():
    return {"status": "ok"}, 200


@bp.route("/healthz", endpoint="healthz")  # the older name, which load balancers already poll
@bp.route("/healthz/ready")
def ready():
    problems = {}
    database = _database_problem()
    if database is not None:
        problems["database"] = database
    if current_app.config["SETTINGS"].redis_url and not ratelimits.is_reachable():
        problems["redis"] = "unreachable"
    if problems:
        return {"status": "unavailable", **problems}, 503
    return {"status": "ok"}, 200


def _database_problem() -> str | None:
    """None when the database would take a write to the hot tables now; otherwise what stops it
    (`unreachable`, `read-only`, `locked`), never the error itself (it may name hosts and users)."""
    problem = _check_database()
    if problem == "read-only":
        # A connection made while the server was read-only stays so after it is writable again, and
        # readiness only reads: drop the idle ones and ask a fresh connection, or this node would
        # say read-only (and stay drained) until the pool recycled them.
        db.engine.dispose()
        problem = _check_database()
    elif problem == "cut":
        # The pooled connection died (a restart, a failover); the pool connects afresh, and the
        # answer is that fresh connection's, as for any request (idp.outages).
        problem = _check_database()
    return "unreachable" if problem == "cut" else problem


def _check_database() -> str | None:
    try:
        with db.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                return _postgresql_problem(conn)
            return _sqlite_problem(conn)
    except (sa_exc.DBAPIError, sa_exc.TimeoutError) as error:
        if getattr(error, "connection_invalidated", False):
            return "cut"
        outage = outages.cause_of(error)
        cause = outage.cause if outage is not None else ""
        return {"lock-timeout": "locked", "database-read-only": "read-only"}.get(cause, "unreachable")
    return None


def _postgresql_problem(conn) -> str | None:
    """In one transaction, rolled back when the connection returns to the pool."""
    # SELECT 1 answers on a standby, in read-only mode and beside a locked table alike.
    read_only = conn.exec_driver_sql(
        "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'"
    ).scalar()
    if read_only:
        return "read-only"
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{READINESS_LOCK_WAIT_MS}ms'")
    # The lock INSERT and UPDATE take; it waits behind LOCK TABLE or a pending schema change.
    conn.exec_driver_sql(f"LOCK TABLE {', '.join(HOT_TABLES)} IN ROW EXCLUSIVE MODE")
    return None


def _sqlite_problem(conn) -> str | None:
    """Take the write lock for a moment (a read-only file or a long writer refuses it), waiting no
    longer than PostgreSQL's check does; the connection gets its usual busy wait back."""
    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
    conn.exec_driver_sql(f"PRAGMA busy_timeout = {READINESS_LOCK_WAIT_MS}")
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        conn.exec_driver_sql("ROLLBACK")
    finally:
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {current_app.config['SETTINGS'].database_lock_timeout * 1000}")
    return None
