"""Run the same operation several times at truly the same moment, to prove a
race has exactly one winner (code redemption, reset links, refresh rotation,
TOTP steps).

    from tests.concurrency import run_concurrently, successes

    db.session.commit()                      # the threads only see committed rows
    results = run_concurrently(app, lambda: redeem(code), n=2)
    assert len(successes(results)) == 1

Each call runs in its own thread with its own app context, so it has its own
SQLAlchemy session and database connection, as two requests in two workers
would. All threads wait at a barrier and are released together. A call that
raises gives its exception as its result instead of failing the helper.
To drive HTTP instead, let `fn` use its own `app.test_client()`."""

from __future__ import annotations

import threading
from typing import Any, Callable, Sequence

from idp.extensions import db

TIMEOUT = 60.0


def run_concurrently(app, fn: Callable[[], Any] | Sequence[Callable[[], Any]], n: int = 2) -> list[Any]:
    """Results (or raised exceptions) of the calls, in the order the calls were given."""
    calls = list(fn) if isinstance(fn, (list, tuple)) else [fn] * n
    barrier = threading.Barrier(len(calls), timeout=TIMEOUT)
    results: list[Any] = [None] * len(calls)

    def worker(index: int) -> None:
        with app.app_context():
            try:
                barrier.wait()
                results[index] = calls[index]()
                db.session.commit()
            except BaseException as error:  # noqa: BLE001  the caller inspects every outcome
                db.session.rollback()
                results[index] = error
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
        if thread.is_alive():
            raise TimeoutError("a concurrent call did not finish (deadlock?)")
    # The caller's session must see what the threads committed.
    try:
        db.session.expire_all()
    except RuntimeError:  # no app context in the caller
        pass
    return results


def successes(results: list[Any]) -> list[Any]:
    return [result for result in results if not isinstance(result, BaseException)]


def failures(results: list[Any]) -> list[BaseException]:
    return [result for result in results if isinstance(result, BaseException)]
