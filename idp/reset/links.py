"""Reset and first-time links: request, issue, describe, redeem.

A link is single use and expires at midnight at the end of the day it was
sent, in the timezone of the tenant whose page it was requested from (the
help page: "the reset password link expires at midnight on the day it was
sent"). Only the SHA-256 of its token is stored. Both providers go through
the same code: the provider is only a value handed to the directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Callable
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select, update

from .. import audit, clock
from ..accounts import credentials, directory, passwords
from ..auth import service as auth_service
from ..errors import DeliveryFailed, DomainError, RateLimited
from ..extensions import db
from ..mail import messages, send
from ..models import Account, ResetLink, Tenant, normalise_email
from ..models.accounts import PROVIDERS
from ..models.base import hash_secret, new_secret, secret_matches
from ..ratelimits import RESET_PER_EMAIL, RESET_PER_IP

#: The product's documented message (help page), shown verbatim.
UNKNOWN_EMAIL_MESSAGE = "The email address you entered does not exist"
THROTTLED_MESSAGE = (
    "You have asked for several password links in a short time. Please check your inbox, and your "
    "junk, clutter and 'Other' folders, for the emails already sent, or wait a few minutes and try again."
)
EXPIRED_MESSAGE = "This link has expired"


class LinkExpired(DomainError):
    """The link is unknown, used, expired or void. `link` is set when it was a real link."""

    status_code = 410

    def __init__(self, link: ResetLink | None = None):
        super().__init__(EXPIRED_MESSAGE)
        self.link = link


# --- Local time ----------------------------------------------------------------

def link_expiry(tenant: Tenant, sent_at: datetime | None = None) -> datetime:
    """Midnight at the end of the sending day in the tenant's zone (DST-safe: see clock)."""
    return clock.next_midnight_in(tenant.timezone, after=sent_at)


def zone_label(tz: str) -> str:
    if tz in ("Europe/London", "GB", "Europe/Belfast"):
        return "UK time"
    return tz.rsplit("/", 1)[-1].replace("_", " ") + " time"


def local_time(value: datetime | None, tz: str) -> datetime | None:
    return clock.as_utc(value).astimezone(ZoneInfo(tz)) if value is not None else None


def _day(value: datetime) -> str:
    return f"{value:%A} {value.day} {value:%B}"


def describe_expiry(expires_at: datetime, tz: str) -> str:
    """'at midnight tonight (00:00 on Tuesday 3 March, UK time)' while it is still the sending day."""
    local = local_time(expires_at, tz)
    when = f"{local:%H:%M} on {_day(local)}, {zone_label(tz)}"
    last_day = local_time(expires_at - timedelta(microseconds=1), tz).date()
    if clock.today_in(tz) == last_day:
        return f"at midnight tonight ({when})"
    return f"at midnight at the end of {_day(local - timedelta(hours=12))} ({when})"


# --- Requesting a link (the forgotten-password page) ------------------------------

@dataclass
class ResetRequest:
    """What the forgotten-password page should say. `outcome` is "sent", "unknown" or
    "hidden" (the tenant hides whether an address is registered)."""

    outcome: str
    email: str
    provider: str
    expires_text: str
    #: Hidden mode: the mail goes out after the response, so timing cannot tell known from unknown.
    deliver_later: Callable[[], None] | None = field(default=None, repr=False)


def request_reset(tenant: Tenant, provider: str, email: str, *, ip: str | None = None) -> ResetRequest:
    """Someone typed `email` on `tenant`'s forgotten-password page.

    Raises RateLimited, or DeliveryFailed when the mail could not be sent (the
    link is then void)."""
    email = normalise_email(email)
    provider = provider if provider in PROVIDERS else "identity"
    ip_key = ip or "unknown"
    if RESET_PER_EMAIL.is_blocked(email) or RESET_PER_IP.is_blocked(ip_key):
        audit.record(audit.RESET_REQUESTED, tenant=tenant, outcome="throttled", ip=ip, email=email, provider=provider)
        db.session.commit()
        raise RateLimited(THROTTLED_MESSAGE)
    RESET_PER_EMAIL.hit(email)
    RESET_PER_IP.hit(ip_key)

    account = directory.find_account(tenant, provider, email)
    refusal = None
    if account is None:
        refusal = "unknown_email"
    elif directory.active_membership(account, tenant) is None:
        # A deactivated member gets no link; to the person asking it looks like any unknown address.
        refusal, account = "inactive", None

    if tenant.hide_unknown_email:
        if account is None:
            _render_decoy(tenant, provider, email)
            audit.record(audit.RESET_REQUESTED, tenant=tenant, outcome=refusal, ip=ip, email=email, provider=provider)
            db.session.commit()
            return ResetRequest("hidden", email, provider, describe_expiry(link_expiry(tenant), tenant.timezone))
        link, message, info = _create_link(account, tenant, requested_by=None, ip=ip)
        return ResetRequest(
            "hidden", email, provider, describe_expiry(link.expires_at, tenant.timezone),
            deliver_later=_deliver_after_response(link.id, message, info),
        )

    if account is None:
        audit.record(audit.RESET_REQUESTED, tenant=tenant, outcome=refusal, ip=ip, email=email, provider=provider)
        db.session.commit()
        return ResetRequest("unknown", email, provider, "")
    link = issue_reset_link(account, tenant, ip=ip)
    return ResetRequest("sent", email, provider, describe_expiry(link.expires_at, tenant.timezone))


def _render_decoy(tenant: Tenant, provider: str, email: str) -> None:
    """The same token and mail work as a real request, for an address with no account."""
    token = new_secret()
    hash_secret(token)
    _build_message(email=email, name="", provider=provider, tenant=tenant, purpose="reset",
                   token=token, expires_at=link_expiry(tenant))


# --- Issuing (also called by the admin area) -----------------------------------------

def issue_reset_link(account: Account, tenant: Tenant, *, requested_by: Account | None = None,
                     ip: str | None = None) -> ResetLink:
    """Create a link for `account` on `tenant` and mail it. "invite" wording when the
    account has no password yet. Raises DeliveryFailed (the link is then void).

    The returned link carries the raw token as `link.token` (never stored)."""
    link, message, info = _create_link(account, tenant, requested_by=requested_by, ip=ip)
    _deliver(link.id, message, info)
    return link


def send_invitation(account: Account, tenant: Tenant, *, requested_by: Account | None = None,
                    ip: str | None = None) -> ResetLink:
    """The first-time mail for a newly created (invited) account: the same link, invite wording."""
    return issue_reset_link(account, tenant, requested_by=requested_by, ip=ip)


def _create_link(account: Account, tenant: Tenant, *, requested_by, ip):
    token = new_secret()
    now = clock.now()
    link = ResetLink(
        token_hash=hash_secret(token),
        account=account,
        tenant=tenant,
        purpose="reset" if account.has_password else "invite",
        created_at=now,
        expires_at=link_expiry(tenant, now),
    )
    db.session.add(link)
    # Committed before the mail leaves, so a fast click always finds it.
    db.session.commit()
    link.token = token
    message = _build_message(email=account.email, name=account.name, provider=account.provider, tenant=tenant,
                             purpose=link.purpose, token=token, expires_at=link.expires_at)
    info = dict(tenant=tenant.id, actor=getattr(requested_by, "id", None), subject=account.id, ip=ip,
                provider=account.provider, purpose=link.purpose, link_id=link.id,
                by_admin=True if requested_by is not None else None)
    return link, message, info


def _build_message(*, email, name, provider, tenant, purpose, token, expires_at) -> EmailMessage:
    issuer = current_app.config["SETTINGS"].issuer
    builder = messages.invitation if purpose == "invite" else messages.reset_password
    return builder(email=email, name=name, provider=provider, tenant=tenant, link_url=f"{issuer}/reset/{token}",
                   expires_text=describe_expiry(expires_at, tenant.timezone),
                   login_url=messages.login_url(tenant, provider))


def _deliver(link_id: int, message: EmailMessage, info: dict) -> None:
    try:
        send(message)
    except DeliveryFailed:
        # Never leave a link usable that nobody received.
        _mark(link_id, invalidated_at=clock.now())
        audit.record(audit.RESET_REQUESTED, outcome="delivery_failed", **info)
        db.session.commit()
        raise
    _mark(link_id, sent_at=clock.now())
    audit.record(audit.RESET_REQUESTED, **info)
    db.session.commit()


def _mark(link_id: int, **values) -> None:
    db.session.execute(
        update(ResetLink).where(ResetLink.id == link_id).values(**values).execution_options(synchronize_session=False)
    )


def _deliver_after_response(link_id: int, message: EmailMessage, info: dict) -> Callable[[], None]:
    app = current_app._get_current_object()

    def deliver() -> None:
        with app.app_context():
            try:
                _deliver(link_id, message, info)
            except DeliveryFailed:
                pass  # logged and the link voided; the page has already answered neutrally
            finally:
                db.session.remove()

    return deliver


# --- Status (admin area) ------------------------------------------------------------

STATE_TEXT = {
    "pending": "Sent, not used yet",
    "used": "Used",
    "expired": "Expired unused",
    "void": "No longer valid (the password was changed since)",
    "not_sent": "Could not be sent",
}


def link_status(account: Account, tenant: Tenant) -> dict | None:
    """The latest link sent to `account` from `tenant`, for the admin's user page (None if never)."""
    link = db.session.scalars(
        select(ResetLink)
        .where(ResetLink.account_id == account.id, ResetLink.tenant_id == tenant.id)
        .order_by(ResetLink.created_at.desc(), ResetLink.id.desc())
        .limit(1)
    ).first()
    if link is None:
        return None
    if link.used_at is not None:
        state = "used"
    elif link.invalidated_at is not None:
        state = "void" if link.sent_at is not None else "not_sent"
    elif link.is_expired:
        state = "expired"
    else:
        state = "pending"
    tz = tenant.timezone
    return {
        "purpose": link.purpose,
        "state": state,
        "state_text": STATE_TEXT[state],
        "sent_at": local_time(link.sent_at or link.created_at, tz),
        "expires_at": local_time(link.expires_at, tz),
        "expires_text": describe_expiry(link.expires_at, tz),
        "used_at": local_time(link.used_at, tz),
        "timezone": tz,
    }


# --- Opening and redeeming --------------------------------------------------------------

def find_link(token: str) -> ResetLink | None:
    if not token or len(token) > 200:
        return None
    link = db.session.scalars(select(ResetLink).where(ResetLink.token_hash == hash_secret(token))).first()
    return link if link is not None and secret_matches(token, link.token_hash) else None


def open_link(token: str, *, ip: str | None = None) -> ResetLink:
    """The usable link behind `token`, or LinkExpired (an opened dead link is audited)."""
    link = find_link(token)
    if link is None:
        raise LinkExpired(None)
    if link.is_usable and directory.active_membership(link.account, link.tenant) is not None:
        return link
    reason = ("used" if link.used_at else "void" if link.invalidated_at else
              "expired" if link.is_expired else "inactive")
    audit.record(audit.RESET_EXPIRED, tenant=link.tenant_id, subject=link.account_id, outcome="refused", ip=ip,
                 reason=reason, purpose=link.purpose)
    db.session.commit()
    raise LinkExpired(link)


def redeem_reset_link(link: ResetLink, password: str, confirmation: str | None, *,
                      ip: str | None = None) -> ResetLink:
    """Set the password through a link from `open_link`: PolicyViolation (link untouched) or
    LinkExpired.

    The link is claimed with one conditional UPDATE, so of two simultaneous
    submissions exactly one wins."""
    account, tenant = link.account, link.tenant
    passwords.check_policy(password, account=account, email=account.email, name=account.name or "",
                           confirmation=confirmation, extra_words=(tenant.name,))
    now = clock.now()
    claimed = db.session.execute(
        update(ResetLink)
        .where(ResetLink.id == link.id, ResetLink.used_at.is_(None), ResetLink.invalidated_at.is_(None),
               ResetLink.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        db.session.rollback()
        raise LinkExpired(link)
    credentials.change_password(account, password, tenant=tenant, ip=ip, check_policy=False, commit=False,
                                via="reset_link")
    audit.record(audit.RESET_USED, tenant=tenant, actor=account, subject=account, ip=ip, purpose=link.purpose)
    db.session.commit()
    auth_service.forget_failed_logins(account, tenant)
    return link
