"""TOTP authenticator devices and recovery codes of an account (one enrolment serves every tenant),
and what the account's second factors add up to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, Text, exists, or_
from sqlalchemy.orm import Mapped, column_property, mapped_column

from .. import clock
from ..extensions import db
from .accounts import Account
from .base import UTCDateTime
from .security_keys import SecurityKey


class MfaDevice(db.Model):
    __tablename__ = "mfa_devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    #: The base32 TOTP secret, encrypted with the configured key (Fernet).
    secret_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    #: NULL until a valid code was entered: an unconfirmed device does not count.
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The last TOTP time step accepted, to refuse a replay within its step (NIST 800-63B 5.1.4.1).
    last_used_step: Mapped[int | None] = mapped_column(BigInteger)


class RecoveryCode(db.Model):
    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# Whether the account has a second factor: a confirmed authenticator app or a security key.
# Deferred, so lists of accounts do not pay for it; sign-in and authorize load it in the account's
# own statement with undefer().
Account.mfa_enrolled = column_property(
    or_(
        exists()
        .where(MfaDevice.account_id == Account.id, MfaDevice.confirmed_at.is_not(None))
        .correlate_except(MfaDevice),
        exists().where(SecurityKey.account_id == Account.id).correlate_except(SecurityKey),
    ),
    deferred=True,
)

# Whether the account has a WebAuthn credential (the phishing-resistant level needs one).
Account.has_security_key = column_property(
    exists().where(SecurityKey.account_id == Account.id).correlate_except(SecurityKey),
    deferred=True,
)
