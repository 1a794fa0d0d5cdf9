"""Submissions of one code at the same moment: exactly one signs in (the step is claimed atomically)."""

from __future__ import annotations

from datetime import timedelta

from idp.accounts import mfa
from idp.extensions import db
from idp.models import Account
from tests.concurrency import failures, run_concurrently, successes

from .conftest import enrol


def submit_at_once(app, account_id, code, n):
    def submit():
        return mfa.verify_second_factor(db.session.get(Account, account_id), code, tenant=None, ip=None)

    return run_concurrently(app, submit, n=n)


def test_one_code_submitted_several_times_at_once_succeeds_exactly_once(app, world, frozen_clock):
    enrolment = enrol(world.beech_identity)
    for _ in range(3):
        results = submit_at_once(app, world.beech_identity.id, enrolment.code(), n=3)
        assert successes(results) == ["otp"]
        assert all(isinstance(f, mfa.InvalidCode) and "already been used" in f.message for f in failures(results))
        frozen_clock.advance(timedelta(seconds=30))


def test_one_recovery_code_submitted_twice_at_once_succeeds_exactly_once(app, world, frozen_clock):
    enrolment = enrol(world.beech_identity)
    results = submit_at_once(app, world.beech_identity.id, enrolment.recovery_codes[0], n=2)
    assert successes(results) == ["recovery"]
    assert [type(f) for f in failures(results)] == [mfa.InvalidCode]
    assert mfa.remaining_recovery_codes(world.beech_identity) == 9
