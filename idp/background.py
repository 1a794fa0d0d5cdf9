"""Work that must not hold up a response, nor the connection it came on: a small pool of background
threads (greenlets under gunicorn's gevent workers) per process. Hidden-existence mode makes and
mails a reset link here, so neither the answer nor the next request on a keep-alive connection
waits for the mail server (its timing would tell a registered address from an unknown one)."""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Callable

log = logging.getLogger(__name__)

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None
_pending: set[Future] = set()


def _executor() -> ThreadPoolExecutor:
    # A pool per process: one made before gunicorn forked its workers has no threads in them.
    global _pool, _pool_pid
    with _lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool, _pool_pid = ThreadPoolExecutor(max_workers=2, thread_name_prefix="idp-background"), os.getpid()
            _pending.clear()
        return _pool


def run_soon(work: Callable[[], None]) -> None:
    """Run `work` (which opens its own app context) in the background; its failure is logged."""
    future = _executor().submit(_logged, work)
    with _lock:
        _pending.add(future)
    future.add_done_callback(_forget)


def wait_idle(timeout: float = 10) -> None:
    """Until the work submitted so far has finished (tests, and a clean shutdown)."""
    with _lock:
        futures = list(_pending)
    wait(futures, timeout=timeout)


def _logged(work: Callable[[], None]) -> None:
    try:
        work()
    except Exception:  # noqa: BLE001 - a background failure must not vanish silently
        log.exception("background work failed")


def _forget(future: Future) -> None:
    with _lock:
        _pending.discard(future)
