"""Throttles for guessable secrets (passwords, reset requests, TOTP codes).

Counts live in a `limits` storage (Redis when IDP_REDIS_URL is set), so every
worker sees the same counts. Only failures are counted for login and 2FA, so a
person who signs in correctly is never slowed down. The throttles are asked by
the views that need them; no other request pays for a rate-limit check.

When the configured store cannot be reached, the throttled action fails closed:
idp.outages answers 503 with Retry-After, as for a database outage. Counting in
each process instead would hand a guesser a fresh allowance per worker and node."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask, current_app
from limits import parse_many
from limits.errors import StorageError
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

from . import outages

log = logging.getLogger(__name__)
_LIMITER_KEY = "idp_ratelimiter"


def init_app(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    if settings.redis_url:
        # Bounded waits: an unreachable Redis fails the request in seconds rather than hanging it.
        storage = storage_from_string(settings.redis_url, wrap_exceptions=True,
                                      socket_timeout=settings.redis_timeout,
                                      socket_connect_timeout=settings.redis_timeout)
    else:
        storage = storage_from_string("memory://", wrap_exceptions=True)
    app.extensions[_LIMITER_KEY] = FixedWindowRateLimiter(storage)


def _limiter() -> FixedWindowRateLimiter:
    return current_app.extensions[_LIMITER_KEY]


def storage():
    """The shared store of this app's counts."""
    return _limiter().storage


def _attempt(method: str, item, *identifiers):
    try:
        answer = getattr(_limiter(), method)(item, *identifiers)
    except StorageError:
        raise outages.ServiceUnavailable(outages.Outage("redis", "redis-unreachable")) from None
    outages.served("redis")
    return answer


def _count(item, *identifiers) -> None:
    # A count is a write outside the database: a request that made one must not be run again
    # (clearing twice is harmless, counting twice is not).
    outages.sent_outside()
    _attempt("hit", item, *identifiers)


def is_reachable() -> bool:
    """Whether the shared store answers (readiness); always true for the in-process store."""
    return _limiter().storage.check()


@dataclass(frozen=True)
class Throttle:
    name: str
    #: limits' notation, e.g. "5 per minute; 20 per hour".
    rule: str

    def _items(self):
        override = current_app.config.get("THROTTLE_RULES", {}).get(self.name)
        return parse_many(override or self.rule)

    def _enabled(self) -> bool:
        return current_app.config["SETTINGS"].ratelimits_enabled

    def is_blocked(self, *key: str) -> bool:
        if not self._enabled():
            return False
        return any(not _attempt("test", item, self.name, *key) for item in self._items())

    def hit(self, *key: str) -> None:
        if not self._enabled():
            return
        for item in self._items():
            _count(item, self.name, *key)

    def lock_seconds(self, *key: str) -> int | None:
        """How long the longest used-up limit locks `key` for (None when nothing is used up)."""
        used_up = [item for item in self._items() if not _attempt("test", item, self.name, *key)]
        return max((item.get_expiry() for item in used_up), default=None)

    def clear(self, *key: str) -> None:
        """Forget `key`'s failures. Relief only, so an unreachable store does not fail the request
        (a change that was just made, such as a new password, stands): the count runs out by itself."""
        if not self._enabled():
            return
        try:
            for item in self._items():
                _attempt("clear", item, self.name, *key)
        except outages.ServiceUnavailable:
            log.warning("rate-limit store unreachable: %s counts not cleared", self.name)


#: Failed password attempts against one account from one client address: the lock a guesser meets,
#: which the owner signing in from anywhere else never sees.
LOGIN_PER_ACCOUNT_IP = Throttle("login-account-ip", "5 per minute; 20 per hour")
#: Failed password attempts from one client IP (a whole school may share one address).
LOGIN_PER_IP = Throttle("login-ip", "60 per minute; 600 per hour")
#: Failed attempts against one account from every address together: past this ceiling attempts are
#: slowed to LOGIN_PACE, never refused outright (NIST SP 800-63B 5.2.2), so guessers spread over
#: many addresses cannot lock the owner out.
LOGIN_PER_ACCOUNT = Throttle("login-account", "30 per hour; 100 per day")
LOGIN_PACE = Throttle("login-account-pace", "1 per minute")
#: Failed attempts from a browser that signed in to the account before (auth.known_browsers): it
#: skips the pace above until it uses these up, and then waits like any other.
LOGIN_PER_KNOWN_BROWSER = Throttle("login-known-browser", "10 per hour; 30 per day")
#: "Sign in with a passkey" from one client address at one school: challenges handed out and
#: answers refused (a whole school may share one address; a flood of challenges or guesses meets this).
PASSKEY_PER_IP = Throttle("passkey-ip", "120 per minute; 2000 per hour")
#: Refused (throttled) sign-ins are recorded in the audit log at most this often per account and address.
LOGIN_REFUSAL_RECORDED = Throttle("login-refusal-recorded", "1 per minute")
#: Reset/first-time link requests.
RESET_PER_EMAIL = Throttle("reset-email", "3 per 10 minutes; 10 per day")
RESET_PER_IP = Throttle("reset-ip", "30 per 10 minutes")
#: Admin > Users' "send again to everyone filtered": a few presses per school, never a mail storm.
RESEND_PER_TENANT = Throttle("resend-tenant", "5 per 10 minutes; 30 per day")
#: Failed second-factor codes for one account (then the second step locks).
MFA_PER_ACCOUNT = Throttle("mfa-account", "5 per 5 minutes; 20 per day")
