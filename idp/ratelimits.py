"""Throttles for guessable secrets (passwords, reset requests, TOTP codes).

Counts live in Flask-Limiter's storage (Redis when IDP_REDIS_URL is set), so
every worker sees the same counts. Only failures are counted for login and
2FA, so a person who signs in correctly is never slowed down."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from limits import parse_many

from .extensions import limiter


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
        return any(not limiter.limiter.test(item, self.name, *key) for item in self._items())

    def hit(self, *key: str) -> None:
        if not self._enabled():
            return
        for item in self._items():
            limiter.limiter.hit(item, self.name, *key)

    def clear(self, *key: str) -> None:
        if not self._enabled():
            return
        for item in self._items():
            limiter.limiter.clear(item, self.name, *key)


#: Failed password attempts against one account on one tenant's page.
LOGIN_PER_ACCOUNT = Throttle("login-account", "5 per minute; 20 per hour")
#: Failed password attempts from one client IP (a whole school may share one address).
LOGIN_PER_IP = Throttle("login-ip", "60 per minute; 600 per hour")
#: Reset/first-time link requests.
RESET_PER_EMAIL = Throttle("reset-email", "3 per 10 minutes; 10 per day")
RESET_PER_IP = Throttle("reset-ip", "30 per 10 minutes")
#: Failed second-factor codes for one account (then the second step locks).
MFA_PER_ACCOUNT = Throttle("mfa-account", "5 per 5 minutes; 20 per day")
