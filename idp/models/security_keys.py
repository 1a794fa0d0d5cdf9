"""WebAuthn credentials of an account (security keys and passkeys) and the challenges a browser
answers to register or use one. Verification is idp.accounts.security_keys' business."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from .. import clock
from ..extensions import db
from .base import UTCDateTime


class SecurityKey(db.Model):
    """A registered WebAuthn credential. Only public material is kept: the credential id and its
    COSE public key (nothing here can sign)."""

    __tablename__ = "security_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    #: base64url of the credential id (WebAuthn allows up to 1023 bytes).
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    #: The authenticator's signature counter as last seen; 0 for authenticators that do not count.
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    #: A discoverable credential registered with user verification: signs in on its own.
    passkey: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Synced to other devices (the backup-state flag): a software key ("swk"), not hardware ("hwk").
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    transports: Mapped[list] = mapped_column(JSON, default=list)
    aaguid: Mapped[str] = mapped_column(String(36), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def kind_name(self) -> str:
        """What the person calls it: "Passkey" or "Security key"."""
        return "Passkey" if self.passkey else "Security key"


class WebAuthnChallenge(db.Model):
    """A challenge handed to one browser: only its SHA-256 is kept, with a hash of the browser's
    binding secret (kept in its session cookie). Used once: consumed by a DELETE that one request
    wins."""

    __tablename__ = "webauthn_challenges"

    id: Mapped[int] = mapped_column(primary_key=True)
    challenge_hash: Mapped[str] = mapped_column(String(64), unique=True)
    binding_hash: Mapped[str] = mapped_column(String(64), index=True)
    #: "register-key", "register-passkey", "second-factor" or "passkey".
    purpose: Mapped[str] = mapped_column(String(20))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    provider: Mapped[str | None] = mapped_column(String(10))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
