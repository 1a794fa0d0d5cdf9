"""Authorization codes and tokens. Only SHA-256 hashes of codes and tokens are stored.

Codes are consumed (marked), not deleted, so a second use is recognised and
every token issued from that code is revoked (RFC 6749 4.1.2). Refresh
tokens rotate; each rotation keeps the `family_id`, so presenting a rotated
token revokes the whole family (RFC 9700 4.14.2)."""

from __future__ import annotations

from datetime import datetime

from authlib.oauth2.rfc6749 import TokenMixin
from authlib.oidc.core import AuthorizationCodeMixin
from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .. import clock
from ..extensions import db
from .base import UTCDateTime


class AuthorizationCode(db.Model, AuthorizationCodeMixin):
    __tablename__ = "authorization_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    redirect_uri: Mapped[str] = mapped_column(String(2000), default="")
    scope: Mapped[str] = mapped_column(String(400), default="")
    nonce: Mapped[str | None] = mapped_column(String(400))
    auth_time: Mapped[int] = mapped_column(Integer)
    amr: Mapped[list] = mapped_column(JSON, default=list)
    acr: Mapped[str | None] = mapped_column(String(100))
    code_challenge: Mapped[str | None] = mapped_column(String(200))
    code_challenge_method: Mapped[str | None] = mapped_column(String(10))
    #: The browser sign-in the code was issued in (its `sid`): tokens from it end with it.
    sid: Mapped[str | None] = mapped_column(String(43))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    consumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    account = relationship("Account", lazy="joined")

    # --- authlib hooks ---
    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> str | None:
        return self.acr

    def get_amr(self) -> list[str]:
        return list(self.amr or [])

    def is_expired(self) -> bool:
        return clock.now() >= self.expires_at


class Token(db.Model, TokenMixin):
    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"))
    access_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    refresh_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    #: Shared by every rotation of one refresh token lineage.
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    #: The code this family was first issued from (revoked together on code reuse).
    authorization_code_id: Mapped[int | None] = mapped_column(Integer, index=True)
    scope: Mapped[str] = mapped_column(String(400), default="")
    auth_time: Mapped[int] = mapped_column(Integer)
    amr: Mapped[list] = mapped_column(JSON, default=list)
    acr: Mapped[str | None] = mapped_column(String(100))
    #: The browser sign-in the family was issued in; without `offline` (the offline_access scope)
    #: its tokens end when that sign-in ends (OpenID Connect Back-Channel Logout 2.7).
    sid: Mapped[str | None] = mapped_column(String(43), index=True)
    offline: Mapped[bool] = mapped_column(Boolean, default=False)
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    access_expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    refresh_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Set when the refresh token was exchanged for a new one (rotation).
    refresh_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    account = relationship("Account", lazy="joined")

    # --- authlib TokenMixin ---
    def check_client(self, client) -> bool:
        return self.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return int((self.access_expires_at - self.issued_at).total_seconds())

    def is_expired(self) -> bool:
        return clock.now() >= self.access_expires_at

    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def is_refresh_usable(self) -> bool:
        return (
            self.revoked_at is None
            and self.refresh_used_at is None
            and self.refresh_expires_at is not None
            and clock.now() < self.refresh_expires_at
        )

    def get_user(self):
        return self.account
