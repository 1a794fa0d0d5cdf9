"""Back-channel logout notices waiting to be delivered (OpenID Connect Back-Channel Logout 1.0).

When a browser sign-in ends, each client that received tokens in it and registered a
`backchannel_logout_uri` gets a row here; a worker (idp worker) signs a logout token and POSTs it,
retrying with backoff until `give_up_at`. The person's request never waits for a relying party."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .. import clock
from ..extensions import db
from .base import UTCDateTime


class LogoutNotice(db.Model):
    __tablename__ = "logout_notices"
    __table_args__ = (
        Index("ix_logout_notices_due", "delivered_at", "failed_at", "next_attempt_at"),
        Index("ix_logout_notices_client", "client_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    #: The ended sign-in and its account's `sub` (a logout token names both).
    sid: Mapped[str] = mapped_column(String(43))
    sub: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    give_up_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: A worker that took the notice holds it until then (another worker may take it after).
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Set when the notice was given up (too many failures, or the client is gone).
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(200))
