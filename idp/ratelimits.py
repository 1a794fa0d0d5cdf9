"""Throttles for guessable secrets (passwords, reset requests, TOTP codes).

Counts live in a `limits` storage (Redis when IDP_REDIS_URL is set), so every
worker sees the same counts. Only failures are counted for login and 2FA, so a
person who signs in correctly is never slowed down. The throttles are asked by
the views that need them; no other request pays for a rate-limit check."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask, current_app
from limits import parse_many
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

log = logging.getLogger(__name__)
_LIMITER_KEY = "idp_ratelimiter"


def init_app(app: Flask) -> None:
    url = app.config["SETTINGS"].redis_url or "memory://"
    app.extensions[_LIMITER_KEY] = FixedWindowRateLimiter(storage_from_string(url))


def _limiter() -> FixedWindowRateLimiter:
    return current_app.extensions[_LIMITER_KEY]


def storage():
    """The shared store of this app's counts."""
    return _limiter().storage


# When the shared store (Redis) is unreachable, each process keeps counting on its
# own rather than failing every sign-in with an error or dropping the throttle. Made on first
# need: a memory storage starts a timer thread, which a gunicorn master must not fork into workers.
_fallback: FixedWindowRateLimiter | None = None


def _fallback_limiter() -> FixedWindowRateLimiter:
    global _fallback
    if _fallback is None:
        _fallback = FixedWindowRateLimiter(MemoryStorage())
    return _fallback


def _attempt(method: str, item, *identifiers):
    try:
        return getattr(_limiter(), method)(item, *identifiers)
    except Exception:  # any storage failure: redis down, timeout, auth
        log.warning("rate-limit storage unavailable; counting in this process only", exc_info=True)
        return getattr(_fallback_limiter(), method)(item, *identifiers)


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
            _attempt("hit", item, self.name, *key)

    def lock_seconds(self, *key: str) -> int | None:
        """How long the longest used-up limit locks `key` for (None when nothing is used up)."""
        used_up = [item for item in self._items() if not _attempt("test", item, self.name, *key)]
        return max((item.get_expiry() for item in used_up), default=None)

    def clear(self, *key: str) -> None:
        if not self._enabled():
            return
        for item in self._items():
            _attempt("clear", item, self.name, *key)


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
#: Reset/first-time link requests.
RESET_PER_EMAIL = Throttle("reset-email", "3 per 10 minutes; 10 per day")
RESET_PER_IP = Throttle("reset-ip", "30 per 10 minutes")
#: Failed second-factor codes for one account (then the second step locks).
MFA_PER_ACCOUNT = Throttle("mfa-account", "5 per 5 minutes; 20 per day")
