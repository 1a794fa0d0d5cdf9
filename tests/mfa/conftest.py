"""Helpers for the second-factor tests: enrol a device, read codes the way a phone would."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import pyotp
import pytest

from idp import clock
from idp.accounts import mfa
from idp.extensions import db
from idp.models import AuditEvent


@dataclass
class Enrolment:
    device: object
    secret: str
    recovery_codes: list

    def code(self, offset_seconds: int = 0) -> str:
        return pyotp.TOTP(self.secret).at(clock.timestamp() + offset_seconds)


def enrol(account, name: str = "My phone", tenant=None) -> Enrolment:
    """Enrol through the service, then let the clock move on a step: the confirming code is used up."""
    device = mfa.start_enrolment(account, name)
    secret = mfa.device_secret(device)
    codes = mfa.confirm_enrolment(account, device, pyotp.TOTP(secret).at(clock.timestamp()), tenant=tenant, ip=None)
    db.session.commit()  # as the request boundary would
    clock.clock.advance(timedelta(seconds=30))
    return Enrolment(device, secret, codes)


@pytest.fixture
def enrolled(frozen_clock):
    return enrol


def audit_events(event: str) -> list:
    db.session.expire_all()
    return list(db.session.scalars(db.select(AuditEvent).where(AuditEvent.event == event)))


def session_of(client) -> dict:
    with client.session_transaction() as cookie:
        return dict(cookie)


def sign_in_of(client):
    """What the server keeps of this browser's sign-in (None when it has none)."""
    from idp.accounts import sessions

    db.session.expire_all()
    return sessions.find(session_of(client).get("sid"))


def pending_of(client):
    """The half-done sign-in (password right, code awaited) of this browser, or None."""
    from idp.accounts import sessions

    db.session.expire_all()
    return sessions.find_pending(session_of(client).get("pending"))


SECRET_RE = re.compile(r'id="secret">([A-Z2-7 ]+)<')
RECOVERY_RE = re.compile(r"<li><code>([A-Z2-7]{5}-[A-Z2-7]{5})</code></li>")
DEVICE_RE = re.compile(r"/account/security/devices/(\d+)/confirm")
