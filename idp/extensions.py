"""Flask extensions, created unbound here and bound in create_app."""

import time
from contextlib import contextmanager

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InvalidatePoolError


def engine_options(settings) -> dict:
    """SQLAlchemy engine options for the configured database: every wait bounded, and no
    statement parameter (emails, names, password hashes) in an error message or log line."""
    if settings.database_url.startswith("sqlite"):
        # The driver's timeout is SQLite's busy wait: a writer waits this long for the write
        # lock (gunicorn workers, concurrent redemptions), then fails and the request answers 503.
        return {
            "hide_parameters": True,
            "connect_args": {"timeout": settings.database_lock_timeout, "check_same_thread": False},
        }
    # Every connection a worker has needed stays open. SQLAlchemy's default keeps 5 and closes
    # the rest on return, so a worker with more requests in flight connected afresh over and
    # over (600 new connections in a 20 s benchmark run), which cost PostgreSQL more CPU than
    # the requests themselves (bench/README.md). Idle connections are pinged by
    # ping_idle_connections, not on every checkout.
    return {
        "pool_size": settings.database_pool_size,
        "max_overflow": 0,
        "pool_use_lifo": True,
        "pool_recycle": settings.database_pool_recycle,
        "pool_timeout": settings.database_connect_timeout,
        "hide_parameters": True,
        "connect_args": {
            "connect_timeout": settings.database_connect_timeout,
            # Set when the connection starts (no round trip): gunicorn's timeout never stops a gevent
            # request, so without these a locked table held a /token request for 45 s, which then
            # consumed its code for a client that had long gone.
            "options": f"-c statement_timeout={settings.database_statement_timeout * 1000}"
                       f" -c lock_timeout={settings.database_lock_timeout * 1000}",
        },
    }


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, connection_record):
    """SQLite as a real multi-process store: WAL lets readers run beside a writer,
    and foreign keys are enforced like PostgreSQL (the busy wait is engine_options')."""
    if type(dbapi_connection).__module__.split(".")[0] not in ("sqlite3", "pysqlite2"):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL cannot corrupt the database; it only risks the last commits on power loss.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


#: A pooled connection that sat unused this long is pinged before it is handed out.
IDLE_PING_SECONDS = 10.0


def ping_idle_connections(engine: Engine) -> None:
    """Replace a pooled connection that a database restart or failover cut while it sat idle.

    SQLAlchemy's pool_pre_ping would ping on every checkout: a round trip on every request,
    ~10% of an SSO flow's CPU (bench/README.md). A connection in steady use was just proven
    alive, so only one idle for IDLE_PING_SECONDS is pinged (the pool hands out the most recently
    used connection first, so the idle ones are the spare ones); a failed ping discards it and every
    connection made before it, and the pool connects afresh. A connection cut while in steady use
    fails that one statement, and the pool then discards every connection made before it."""
    # A duration, not a time of day: idp.clock may be frozen in tests, monotonic never is.

    @event.listens_for(engine, "checkin")
    def _note_idle_since(dbapi_connection, connection_record):
        connection_record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, connection_record, connection_proxy):
        idle_since = connection_record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The server restarted or failed over: every connection made before this one is dead too.
            raise InvalidatePoolError("idle pooled connection no longer answers") from error


#: SQLSTATEs after which a connection must not be used again: it reached a server that is
#: read-only (a standby, a demoted primary, default_transaction_read_only) or shutting down.
#: A connection made during a read-only spell stays read-only after the server is writable again.
_DISCARD_SQLSTATES = ("25006", "57P01", "57P02", "57P03")


def discard_connections_on_failover(engine: Engine) -> None:
    """A statement refused because the server is read-only or shutting down counts as a cut
    connection: SQLAlchemy discards it and every pooled connection made before it, so the next
    request connects afresh (after a failover, to the new primary) instead of failing on
    connections that will never write again."""

    @event.listens_for(engine, "handle_error")
    def _discard_if_failed_over(context):
        if getattr(context.original_exception, "sqlstate", None) in _DISCARD_SQLSTATES:
            context.is_disconnect = True


@contextmanager
def each_statement_commits():
    """Run the block's statements in autocommit, for work that is one statement atomic by itself
    (a lone read, an INSERT ... SELECT): BEGIN and COMMIT around it are two more round trips that
    buy nothing. The session's transaction ends with the block, so later statements get a
    transaction of their own. Only at the start of a transaction; otherwise nothing changes."""
    if db.session().in_transaction():
        yield
        return
    db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    try:
        yield
    except BaseException:
        db.session.rollback()
        raise
    db.session.commit()


# Stable constraint names so Alembic migrations work the same on SQLite and PostgreSQL.
metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

db = SQLAlchemy(metadata=metadata)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
