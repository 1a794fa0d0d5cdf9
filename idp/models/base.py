"""Column helpers shared by the models."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator

from .. import clock


class UTCDateTime(TypeDecorator):
    """Stores aware datetimes as UTC and always returns them aware (SQLite drops tzinfo)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        return clock.as_utc(value) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect):
        return clock.as_utc(value)


def hash_secret(value: str) -> str:
    """SHA-256 hex of a high-entropy secret (codes, tokens, links). Only this is stored."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def secret_matches(value: str, stored_hash: str | None) -> bool:
    """Constant-time comparison of a presented secret with a stored hash."""
    if not stored_hash:
        return False
    return hmac.compare_digest(hash_secret(value), stored_hash)


def new_secret(nbytes: int = 32) -> str:
    """A URL-safe random secret; 32 bytes = 256 bits."""
    return secrets.token_urlsafe(nbytes)
