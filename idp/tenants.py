"""Tenants: create, find, change. A tenant is one school's CPOMS or StaffSafe system."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from sqlalchemy import select

from .errors import Conflict, InvalidInput, NotFound
from .extensions import db
from .models import Tenant
from .models.base import check_length
from .models.tenants import DEFAULT_SESSION_IDLE_TIMEOUT, DEFAULT_SESSION_MAX_AGE, PRODUCTS, REQUIRE_2FA_VALUES

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")


def validate_timezone(tz: str) -> str:
    check_length(tz, Tenant.timezone, field="timezone", label="The timezone")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"Unknown timezone {tz!r}: use an IANA name such as Europe/London",
                           field="timezone") from None
    return tz


def _validate(slug: str | None = None, product: str | None = None, require_2fa: str | None = None):
    if slug is not None and not SLUG_RE.match(slug):
        raise InvalidInput(
            f"Invalid slug {slug!r}: use lower-case letters, digits and hyphens (up to 63)", field="slug"
        )
    if product is not None and product not in PRODUCTS:
        raise InvalidInput(f"Unknown product {product!r}: use cpoms or staffsafe", field="product")
    if require_2fa is not None and require_2fa not in REQUIRE_2FA_VALUES:
        raise InvalidInput(f"Unknown 2FA policy {require_2fa!r}: use off, admins or everyone", field="require_2fa")


def create_tenant(
    *,
    slug: str,
    name: str,
    product: str = "cpoms",
    timezone: str | None = None,
    require_2fa: str = "off",
    admins_phishing_resistant: bool = False,
    hide_unknown_email: bool = False,
    session_max_age: int = DEFAULT_SESSION_MAX_AGE,
    session_idle_timeout: int = DEFAULT_SESSION_IDLE_TIMEOUT,
) -> Tenant:
    slug = (slug or "").strip().lower()
    _validate(slug, product, require_2fa)
    name = _name(name)
    timezone = validate_timezone(timezone or current_app.config["SETTINGS"].timezone)
    _validate_lifetimes(session_max_age, session_idle_timeout)
    if find_tenant(slug) is not None:
        raise Conflict(f"A tenant with slug {slug!r} already exists", field="slug")
    tenant = Tenant(
        slug=slug,
        name=name,
        product=product,
        timezone=timezone,
        require_2fa=require_2fa,
        admins_phishing_resistant=bool(admins_phishing_resistant),
        hide_unknown_email=hide_unknown_email,
        session_max_age=session_max_age,
        session_idle_timeout=session_idle_timeout,
    )
    db.session.add(tenant)
    db.session.flush()
    return tenant


def _name(name: str | None) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("A tenant needs a name", field="name")
    return check_length(name, Tenant.name, field="name", label="The name")


#: What a school may choose for its sign-ins (seconds): at least a lesson, at most a day.
SESSION_MAX_AGE_RANGE = (15 * 60, 24 * 3600)
SESSION_IDLE_RANGE = (5 * 60, 24 * 3600)


def _validate_lifetimes(max_age: int | None, idle: int | None) -> None:
    for value, (low, high), field, what in ((max_age, SESSION_MAX_AGE_RANGE, "session_max_age", "last"),
                                            (idle, SESSION_IDLE_RANGE, "session_idle_timeout", "stay unused")):
        if value is not None and not (isinstance(value, int) and low <= value <= high):
            raise InvalidInput(f"Sign-ins may {what} between {low // 60} minutes and {high // 3600} hours",
                               field=field)


def update_tenant(tenant: Tenant, **changes) -> Tenant:
    if "name" in changes:
        changes["name"] = _name(changes["name"])
    _validate(None, changes.get("product"), changes.get("require_2fa"))
    if "timezone" in changes:
        validate_timezone(changes["timezone"])
    _validate_lifetimes(changes.get("session_max_age"), changes.get("session_idle_timeout"))
    for key in ("name", "product", "timezone", "require_2fa", "admins_phishing_resistant", "hide_unknown_email",
                "session_max_age", "session_idle_timeout"):
        if key in changes and changes[key] is not None:
            setattr(tenant, key, changes[key])
    db.session.flush()
    return tenant


def find_tenant(slug: str) -> Tenant | None:
    return db.session.scalars(select(Tenant).where(Tenant.slug == slug)).first()


def get_tenant(slug: str) -> Tenant:
    tenant = find_tenant(slug)
    if tenant is None:
        raise NotFound(f"Unknown tenant {slug!r}")
    return tenant
