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


def column_length(column) -> int:
    """The most characters `column` (a String column attribute) holds: forms, services and
    registration all take their length limits from here, so both databases refuse alike."""
    return column.property.columns[0].type.length


def check_length(value: str | None, column, *, field: str, label: str) -> str:
    """`value` if it fits `column`, else InvalidInput naming `field` ("Name must be 200 characters or fewer")."""
    from ..errors import InvalidInput

    limit = column_length(column)
    if value is not None and len(value) > limit:
        raise InvalidInput(f"{label} must be {limit} characters or fewer", field=field)
    return value
