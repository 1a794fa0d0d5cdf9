"""Tenant: one school's CPOMS or StaffSafe system, with its own login URL."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .. import clock
from ..extensions import db
from .base import UTCDateTime

PRODUCTS = ("cpoms", "staffsafe")
PRODUCT_NAMES = {"cpoms": "CPOMS", "staffsafe": "CPOMS StaffSafe"}
REQUIRE_2FA_VALUES = ("off", "admins", "everyone")
#: A school day on a shared staffroom PC: 8 hours after signing in, 30 minutes unused.
DEFAULT_SESSION_MAX_AGE = 8 * 3600
DEFAULT_SESSION_IDLE_TIMEOUT = 30 * 60


class Tenant(db.Model):
    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(63), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(200))
    product: Mapped[str] = mapped_column(String(20), default="cpoms")
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/London")
    require_2fa: Mapped[str] = mapped_column(String(10), default="off")
    hide_unknown_email: Mapped[bool] = mapped_column(Boolean, default=False)
    #: The school's administrators must sign in with a security key or passkey (the
    #: phishing-resistant level), not an app code: they see every child's records.
    admins_phishing_resistant: Mapped[bool] = mapped_column(Boolean, default=False)
    #: How long a browser sign-in may open this school's applications: at most this long after the
    #: person authenticated, and not after this long unused (seconds). Staffroom PCs are shared.
    session_max_age: Mapped[int] = mapped_column(Integer, default=DEFAULT_SESSION_MAX_AGE)
    session_idle_timeout: Mapped[int] = mapped_column(Integer, default=DEFAULT_SESSION_IDLE_TIMEOUT)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    @property
    def product_name(self) -> str:
        return PRODUCT_NAMES.get(self.product, self.product)

    def __repr__(self) -> str:
        return f"<Tenant {self.slug}>"
