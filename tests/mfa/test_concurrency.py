"""Two submissions of one code at the same moment: exactly one signs in (the step is claimed atomically)."""

from __future__ import annotations

import threading

from idp.accounts import mfa
from idp.extensions import db
from idp.models import Account

from .conftest import enrol


def race(app, account_id, code, runners=2):
    barrier = threading.Barrier(runners)
    results = []

    def attempt():
        with app.app_context():
            account = db.session.get(Account, account_id)
            barrier.wait()
            try:
                results.append(mfa.verify_second_factor(account, code, tenant=None, ip=None))
            except mfa.InvalidCode:
                results.append("refused")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=attempt) for _ in range(runners)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return sorted(results)


def test_one_code_submitted_twice_at_once_succeeds_exactly_once(app, world, frozen_clock):
    enrolment = enrol(world.beech_identity)
    for _ in range(3):
        assert race(app, world.beech_identity.id, enrolment.code()) == ["otp", "refused"]
        frozen_clock.advance(__import__("datetime").timedelta(seconds=30))


def test_one_recovery_code_submitted_twice_at_once_succeeds_exactly_once(app, world, frozen_clock):
    enrolment = enrol(world.beech_identity)
    assert race(app, world.beech_identity.id, enrolment.recovery_codes[0]) == ["recovery", "refused"]
    assert mfa.remaining_recovery_codes(world.beech_identity) == 9
