"""tests.concurrency.run_concurrently really overlaps its calls, each in its own
session and connection, and a compare-and-set has exactly one winner on both
databases (SQLite waits for the write lock instead of failing)."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import update

from idp import clock
from idp.extensions import db
from idp.models import ResetLink
from idp.models.base import hash_secret, new_secret
from tests.concurrency import failures, run_concurrently, successes


def _reset_link(world) -> ResetLink:
    link = ResetLink(token_hash=hash_secret(new_secret()), account=world.beech_identity, tenant=world.beech,
                     expires_at=clock.now() + timedelta(hours=1))
    db.session.add(link)
    db.session.commit()
    return link


def test_calls_overlap_in_time(app):
    inside = []
    both_inside = threading.Event()
    lock = threading.Lock()

    def call():
        with lock:
            inside.append(threading.get_ident())
            if len(inside) == 2:
                both_inside.set()
        # Only true concurrency gets both calls here before either returns.
        return both_inside.wait(timeout=10)

    assert run_concurrently(app, call, n=2) == [True, True]


def test_each_call_has_its_own_session_and_connection(app):
    all_connected = threading.Barrier(3, timeout=10)

    def call():
        connection = db.session.connection().connection.dbapi_connection
        all_connected.wait()  # hold every connection at once, so none is reused from the pool
        return id(db.session()), id(connection)

    sessions, connections = zip(*run_concurrently(app, call, n=3))
    assert len(set(sessions)) == 3 and len(set(connections)) == 3


def test_compare_and_set_has_exactly_one_winner(app, world):
    link_id = _reset_link(world).id

    def use_link():
        result = db.session.execute(
            update(ResetLink).where(ResetLink.id == link_id, ResetLink.used_at.is_(None)).values(used_at=clock.now())
        )
        db.session.commit()
        return result.rowcount

    for _ in range(3):
        db.session.execute(update(ResetLink).values(used_at=None))
        db.session.commit()
        results = run_concurrently(app, use_link, n=4)
        assert failures(results) == []
        assert sorted(results) == [0, 0, 0, 1]
    assert db.session.get(ResetLink, link_id).used_at is not None


def test_exceptions_are_returned_not_raised(app):
    def boom():
        raise ValueError("no")

    results = run_concurrently(app, [lambda: 1, boom])
    assert successes(results) == [1]
    assert isinstance(results[1], ValueError)
