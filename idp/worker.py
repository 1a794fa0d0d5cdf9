"""`idp worker`: the IdP's background work, so no person's request waits for it.

Each round delivers due back-channel logout notices (oidc.backchannel) and, now and then, clears
expired sign-ins and old notices. Run it beside the web servers on any node; several workers share
the work through the database (notices are leased, PostgreSQL skips rows another worker holds).
SIGTERM or SIGINT ends it after the round in progress."""

from __future__ import annotations

import logging
import signal
import time

from .accounts import sessions
from .extensions import db
from .oidc import backchannel

log = logging.getLogger(__name__)

#: Rounds between the housekeeping chores (at the default interval: about once a minute).
CHORES_EVERY = 60


def one_round(*, chores: bool) -> int:
    """Deliver what is due (and do the chores); returns how many notices were delivered."""
    try:
        delivered = backchannel.deliver_due()
        if chores:
            sessions.clear_expired()
            backchannel.forget_delivered()
            db.session.commit()
        return delivered
    except Exception:
        db.session.rollback()
        raise
    finally:
        db.session.remove()


def run(*, once: bool = False, interval: float = 1.0) -> None:
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    log.info("worker started")
    rounds = 0
    while not stopping:
        try:
            one_round(chores=rounds % CHORES_EVERY == 0)
        except Exception as error:  # the database is away, say: try again next round
            log.warning("worker round failed: %s", type(error).__name__)
        rounds += 1
        if once:
            return
        time.sleep(interval)
    log.info("worker stopped")
