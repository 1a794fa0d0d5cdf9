"""A browser's sign-in, kept by the server: the cookie holds only a random reference, whose SHA-256
is `token_hash`. Ending a sign-in deletes its row, so a copied cookie dies with it.

A row whose `pending_until` is set is a sign-in half done: the password was right and the second
factor is still to come; it signs nobody in."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .. import clock
from ..extensions import db
from .base import UTCDateTime


class BrowserSession(db.Model):
    __tablename__ = "browser_sessions"
    __table_args__ = (Index("ix_browser_sessions_account", "account_id", "last_seen"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    #: The OpenID Connect `sid`: public (ID tokens, logout tokens), unrelated to the cookie's secret.
    sid: Mapped[str] = mapped_column(String(43), unique=True)
    #: SHA-256 of the cookie's reference.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    #: The school whose login page the sign-in began at (None: the platform's own sign-in).
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="SET NULL"))
    provider: Mapped[str] = mapped_column(String(10))
    #: RFC 8176 methods, as ID tokens carry them, and the level they reach.
    amr: Mapped[list] = mapped_column(JSON, default=list)
    acr: Mapped[str] = mapped_column(String(100))
    #: Whether a second factor was given: the authorize statement decides on it without parsing amr.
    second_factor: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Seconds since the epoch: when the person authenticated, last gave a second factor, was last seen.
    auth_time: Mapped[int] = mapped_column(Integer)
    second_factor_at: Mapped[int | None] = mapped_column(Integer)
    #: When a security key or passkey was last used in it (a key change asks for a fresh one).
    key_at: Mapped[int | None] = mapped_column(Integer)
    last_seen: Mapped[int] = mapped_column(Integer)
    #: Half-done sign-ins (second step pending) expire at this second; NULL for a sign-in.
    pending_until: Mapped[int | None] = mapped_column(Integer)
    #: Where a pending second step continues to once done (a same-site path, web.MAX_NEXT_LENGTH).
    next_url: Mapped[str | None] = mapped_column(String(8192))
    #: The longest any school's rules let it live (IDP_SESSION_TTL): expired rows are cleared away.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    #: For the person's "Where you're signed in": "Chrome on Windows", and the address it began from.
    device: Mapped[str] = mapped_column(String(100), default="")
    ip: Mapped[str | None] = mapped_column(String(64))

    account = relationship("Account")
    tenant = relationship("Tenant")

    @property
    def is_pending(self) -> bool:
        return self.pending_until is not None
