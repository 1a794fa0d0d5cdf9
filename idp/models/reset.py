"""Password reset / first sign-in links. Only the SHA-256 of the token is stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .. import clock
from ..extensions import db
from .base import UTCDateTime


class ResetLink(db.Model):
    __tablename__ = "reset_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    #: The tenant whose page the link was requested from: its timezone sets the expiry.
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    #: "reset" or "invite" (first-time: the account has no password yet).
    purpose: Mapped[str] = mapped_column(String(10), default="reset")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Set when a password change made the link void.
    invalidated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    account = relationship("Account", lazy="joined")
    tenant = relationship("Tenant", lazy="joined")

    @property
    def is_expired(self) -> bool:
        return clock.now() >= self.expires_at

    @property
    def is_usable(self) -> bool:
        return self.used_at is None and self.invalidated_at is None and not self.is_expired
