"""Pooled connections: pinged only after sitting idle, and replaced when the ping fails."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from idp.extensions import IDLE_PING_SECONDS, db


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
    if db.engine.dialect.name != "postgresql":
        pytest.skip("needs a server that can end a session (PostgreSQL)")
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
