"""Accounts (Identity: one tenant; SSO: global), their tenant memberships and password history."""

from __future__ import annotations

import uuid
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, and_, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .. import clock
from ..accounts import providers
from ..extensions import db
from .base import UTCDateTime

PROVIDERS = providers.KEYS
ROLES = ("staff", "admin")
ROLE_NAMES = {"staff": "Staff", "admin": "Administrator"}


def normalise_email(email: str) -> str:
    """Emails compare case-insensitively: store and look up the trimmed lower-case form."""
    return (email or "").strip().lower()


def new_subject() -> str:
    # Random, not derived from the row id or email: stable and never reused (OIDC Core 2).
    return uuid.uuid4().hex


class Account(db.Model, UserMixin):
    __tablename__ = "accounts"
    __table_args__ = (
        # Identity: email unique within its tenant. SSO: email unique among SSO accounts.
        Index(
            "uq_accounts_identity_email",
            "tenant_id",
            "email",
            unique=True,
            sqlite_where=text("provider = 'identity'"),
            postgresql_where=text("provider = 'identity'"),
        ),
        Index(
            "uq_accounts_sso_email",
            "email",
            unique=True,
            sqlite_where=text("provider = 'sso'"),
            postgresql_where=text("provider = 'sso'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sub: Mapped[str] = mapped_column(String(64), unique=True, default=new_subject)
    provider: Mapped[str] = mapped_column(String(10))
    #: Set for Identity accounts (their one tenant); NULL for SSO accounts.
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"), index=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    #: NULL until the person sets a password (an invited account).
    password_hash: Mapped[str | None] = mapped_column(String(200))
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: When the person last proved they receive mail at `email` (used a link sent to it); NULL until
    #: then, and again after anyone else changes the address. The `email_verified` claim.
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: A local account retired by moving its person to SSO; it can no longer sign in.
    retired: Mapped[bool] = mapped_column(Boolean, default=False)
    is_operator: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    tenant = relationship("Tenant", lazy="joined")
    memberships = relationship(
        "Membership", back_populates="account", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def has_password(self) -> bool:
        return self.password_hash is not None

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    def membership_in(self, tenant_id: int) -> "Membership | None":
        for membership in self.memberships:
            if membership.tenant_id == tenant_id:
                return membership
        return None

    @property
    def is_active(self) -> bool:
        return not self.retired

    def __repr__(self) -> str:
        return f"<Account {self.provider}:{self.email}>"


class Membership(db.Model):
    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("account_id", "tenant_id", name="uq_memberships_account_tenant"),
        # Admin > Users filters a tenant's members by role (50,000 members in one tenant).
        Index("ix_memberships_tenant_role", "tenant_id", "role"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    role: Mapped[str] = mapped_column(String(10), default="staff")
    #: The school's switch: a deactivated member cannot use the school.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    #: The person's side: NULL while a school that added an existing SSO account waits for the
    #: person to accept (a link mailed to them). A pending membership grants nothing.
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The school ended this member's sign-ins at its applications (seconds since the epoch): a
    #: browser sign-in from before then no longer opens them; the person signs in again.
    sign_ins_ended: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    account = relationship("Account", back_populates="memberships")
    tenant = relationship("Tenant", lazy="joined")

    @property
    def roles(self) -> list[str]:
        return [self.role]

    @property
    def is_pending(self) -> bool:
        return self.accepted_at is None

    @property
    def is_usable(self) -> bool:
        """Whether the member may use the school now: the school allows it and the person accepted."""
        return bool(self.active) and self.accepted_at is not None

    @classmethod
    def usable(cls):
        """`is_usable` as SQL, for statements that decide without loading the row."""
        return and_(cls.active.is_(True), cls.accepted_at.is_not(None))


class PasswordHistory(db.Model):
    """Every argon2 hash an account has ever had, so no earlier password is reused."""

    __tablename__ = "password_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    account = relationship("Account")
