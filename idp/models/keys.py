"""RS256 signing keys. The newest active key signs; retired keys stay published in
JWKS until every token they signed has expired."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from .. import clock
from ..extensions import db
from .base import UTCDateTime


class SigningKey(db.Model):
    __tablename__ = "signing_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    alg: Mapped[str] = mapped_column(String(10), default="RS256")
    #: The private JWK (dict). Never served; JWKS publishes the public part.
    private_jwk: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    #: Set when a newer key took over signing.
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: After this instant the key is no longer published.
    unpublish_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
