"""The database pool: every connection a worker needed stays open; pooled connections are
pinged only after sitting idle, and replaced when the ping fails."""

from __future__ import annotations

import runpy
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.pool import NullPool

from idp.extensions import IDLE_PING_SECONDS, db

GUNICORN_CONF = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"


def _needs_postgresql():
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the pool of a database server (PostgreSQL); SQLite's is Flask-SQLAlchemy's own")


def test_a_busy_worker_keeps_the_connections_it_needed(app):
    _needs_postgresql()
    connects = []
    event.listen(db.engine, "connect", lambda *args: connects.append(1))
    busy = 12  # more than SQLAlchemy's default 5 kept connections
    for _ in range(2):
        with ExitStack() as stack:
            for _ in range(busy):
                stack.enter_context(db.engine.connect()).execute(text("SELECT 1"))
    # The second burst reuses all twelve: no connection was closed on return and made again.
    assert len(connects) <= busy
    assert db.engine.pool.checkedin() >= busy


def test_gevent_workers_take_no_more_requests_at_once_than_pooled_connections(monkeypatch):
    monkeypatch.setenv("IDP_DATABASE_URL", "postgresql+psycopg://idp@127.0.0.1:1/idp")
    monkeypatch.setenv("IDP_DATABASE_POOL_SIZE", "7")
    conf = runpy.run_path(str(GUNICORN_CONF))
    assert (conf["worker_class"], conf["worker_connections"]) == ("gevent", 7)


def test_threaded_workers_keep_gunicorns_own_connection_limit(monkeypatch):
    monkeypatch.delenv("IDP_DATABASE_URL", raising=False)
    conf = runpy.run_path(str(GUNICORN_CONF))
    assert conf["worker_class"] == "gthread" and "worker_connections" not in conf


def test_gunicorn_refuses_a_bad_setting_by_name_without_a_traceback(monkeypatch, capsys):
    monkeypatch.setenv("IDP_DATABASE_URL", "postgresql+psycopg://idp@127.0.0.1:1/idp")
    monkeypatch.setenv("IDP_DATABASE_POOL_SIZE", "many")
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(GUNICORN_CONF))
    assert stopped.value.code == 1
    assert "IDP_DATABASE_POOL_SIZE must be a whole number" in capsys.readouterr().err


@pytest.fixture
def pings(app, monkeypatch):
    calls = []
    real_ping = db.engine.dialect.do_ping

    def counting_ping(dbapi_connection):
        calls.append(dbapi_connection)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(db.engine.dialect, "do_ping", counting_ping)
    return calls


def _pooled_record():
    """Check a connection out and back in; its pool record (which the next checkout reuses)."""
    with db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
        record = conn.connection._connection_record
    return record


def _backend_pid(conn) -> int:
    return conn.execute(text("SELECT pg_backend_pid()")).scalar()


def test_a_connection_in_steady_use_is_not_pinged(pings):
    _pooled_record()
    for _ in range(3):
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    assert pings == []


def test_a_connection_idle_for_a_while_is_pinged_before_use(pings):
    record = _pooled_record()
    record.info["idle_since"] -= IDLE_PING_SECONDS + 1
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    assert len(pings) == 1


def test_an_idle_connection_cut_by_the_database_is_replaced_unnoticed(app):
    _needs_postgresql()
    with db.engine.connect() as conn:
        old_pid = _backend_pid(conn)
        record = conn.connection._connection_record
        conn.commit()
    # A restart or failover, as seen by a connection that sat in the pool meanwhile.
    outside = create_engine(db.engine.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with outside.connect() as other:
        other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": old_pid})
    outside.dispose()
    record.info["idle_since"] -= IDLE_PING_SECONDS + 1
    with db.engine.connect() as conn:
        assert _backend_pid(conn) != old_pid
