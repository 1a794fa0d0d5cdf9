"""Links mailed to a person: request, issue, describe, redeem.

- reset / invite (first-time): set a password. Single use; expires at midnight at the end of
  the day it was sent, in the timezone of the tenant whose page it was requested from (the help
  page: "the reset password link expires at midnight on the day it was sent").
- join: accept a school's membership of an existing account (lifecycle.add_member); lasts
  JOIN_LINK_DAYS days, single use.

Only the SHA-256 of a token is stored. Using any of them proves the person receives mail at the
account's address. Both providers go through the same code: the provider is only a value handed
to the directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Callable

from flask import current_app
from sqlalchemy import and_, exists, func, or_, select, update

from .. import audit, clock
from ..accounts import credentials, directory, lifecycle, passwords, providers
from ..auth import service as auth_service
from ..errors import DeliveryFailed, DomainError, RateLimited
from ..extensions import db
from ..mail import messages, send
from ..models import Account, AuditEvent, Membership, ResetLink, Tenant, normalise_email
from ..models.base import hash_secret, new_secret, secret_matches
from ..ratelimits import RESET_PER_EMAIL, RESET_PER_IP
from ..transactions import commit_now

RESET, INVITE, JOIN = "reset", "invite", "join"
#: Links that set a password.
PASSWORD_PURPOSES = (RESET, INVITE)
ALL_PURPOSES = (RESET, INVITE, JOIN)
#: How long a school's invitation to accept its membership stays open.
JOIN_LINK_DAYS = 7

#: The product's documented message (help page), shown verbatim.
UNKNOWN_EMAIL_MESSAGE = "The email address you entered does not exist"
THROTTLED_MESSAGE = (
    "You have asked for several password links in a short time. Please check your inbox, and your "
    "junk, clutter and 'Other' folders, for the emails already sent, or wait a few minutes and try again."
)
EXPIRED_MESSAGE = "This link has expired"
USED_MESSAGE = "This link has already been used"
SUPERSEDED_MESSAGE = "A newer link was sent"
SIGNED_IN_MESSAGE = "This link no longer works because you have logged in since it was sent"
VOID_MESSAGE = "This link can no longer be used"

#: Why a link does not work, as its page says it (the help page's "expired" only when it expired).
DEAD_LINK_MESSAGES = {"expired": EXPIRED_MESSAGE, "used": USED_MESSAGE, "superseded": SUPERSEDED_MESSAGE,
                      "signed in since": SIGNED_IN_MESSAGE, "void": VOID_MESSAGE, "inactive": VOID_MESSAGE,
                      "unknown": EXPIRED_MESSAGE}


class LinkExpired(DomainError):
    """The link is unknown, used, superseded by a newer one, expired or void. `link` is set when it
    was a real link; `reason` says which ("unknown" when it was not)."""

    status_code = 410

    def __init__(self, link: ResetLink | None = None, reason: str = "unknown"):
        super().__init__(DEAD_LINK_MESSAGES.get(reason, EXPIRED_MESSAGE))
        self.link = link
        self.reason = reason


# --- Local time ----------------------------------------------------------------

def link_expiry(tenant: Tenant, sent_at: datetime | None = None) -> datetime:
    """Midnight at the end of the sending day in the tenant's zone (DST-safe: see clock)."""
    return clock.next_midnight_in(tenant.timezone, after=sent_at)




def _day(value: datetime) -> str:
    return f"{value:%A} {value.day} {value:%B}"


def describe_expiry(expires_at: datetime, tz: str) -> str:
    """'at midnight tonight (00:00 on Tuesday 3 March, UK time)' while it is still the sending day."""
    local = clock.local(expires_at, tz)
    when = f"{local:%H:%M} on {_day(local)}, {clock.zone_label(tz)}"
    last_day = clock.local(expires_at - timedelta(microseconds=1), tz).date()
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
    #: Hidden mode: the link and mail are made in the background (idp.background), so timing cannot
    #: tell known from unknown.
    deliver_later: Callable[[], None] | None = field(default=None, repr=False)


def request_reset(tenant: Tenant, provider: str, email: str, *, ip: str | None = None) -> ResetRequest:
    """Someone typed `email` on `tenant`'s forgotten-password page.

    Raises RateLimited, or DeliveryFailed when the mail could not be sent (the
    link is then void)."""
    email = normalise_email(email)
    provider = provider if provider in providers.KEYS else "identity"
    ip_key = ip or "unknown"
    if RESET_PER_EMAIL.is_blocked(email) or RESET_PER_IP.is_blocked(ip_key):
        audit.record(audit.RESET_REQUESTED, tenant=tenant, outcome="throttled", ip=ip, email=email, provider=provider)
        commit_now(because="a throttled request is recorded though it is refused")
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
        # The same database work before the answer whether the address has an account or not (one
        # lookup, one audit row): the link and its mail are made only after the response is sent.
        audit.record(audit.RESET_REQUESTED, tenant=tenant, outcome=refusal or "accepted", ip=ip, email=email,
                     provider=provider, hidden=True)
        expires_text = describe_expiry(link_expiry(tenant), tenant.timezone)
        deliver_later = _issue_after_response(account.id, tenant.id, ip) if account is not None else None
        return ResetRequest("hidden", email, provider, expires_text, deliver_later=deliver_later)

    if account is None:
        audit.record(audit.RESET_REQUESTED, tenant=tenant, outcome=refusal, ip=ip, email=email, provider=provider)
        return ResetRequest("unknown", email, provider, "")
    link = issue_reset_link(account, tenant, ip=ip)
    return ResetRequest("sent", email, provider, describe_expiry(link.expires_at, tenant.timezone))


# --- Issuing (also called by the admin area) -----------------------------------------

def issue_reset_link(account: Account, tenant: Tenant, *, requested_by: Account | None = None,
                     ip: str | None = None) -> ResetLink:
    """Create a password link for `account` on `tenant` and mail it: "invite" wording when the
    account has no password yet. Raises DeliveryFailed (the link is then void).

    The returned link carries the raw token as `link.token` (never stored)."""
    purpose = RESET if account.has_password else INVITE
    return _issue(account, tenant, purpose, requested_by=requested_by, ip=ip)


def send_invitation(account: Account, tenant: Tenant, *, requested_by: Account | None = None,
                    ip: str | None = None) -> ResetLink:
    """The first-time mail for an account with no password: the same link, invite wording."""
    return issue_reset_link(account, tenant, requested_by=requested_by, ip=ip)


def send_join_link(account: Account, tenant: Tenant, *, requested_by: Account | None = None,
                   ip: str | None = None) -> ResetLink:
    """Tell the person which school added their account, with a link to accept it."""
    return _issue(account, tenant, JOIN, requested_by=requested_by, ip=ip)


def _issue(account: Account, tenant: Tenant, purpose: str, *, requested_by, ip) -> ResetLink:
    link, message, info = _create_link(account, tenant, purpose, requested_by=requested_by, ip=ip)
    _deliver(link.id, message, info)
    return link


def _expiry(tenant: Tenant, purpose: str, now: datetime) -> datetime:
    if purpose == JOIN:
        # Midnight at the end of the last day it may be used, like every other link.
        return link_expiry(tenant, now + timedelta(days=JOIN_LINK_DAYS - 1))
    return link_expiry(tenant, now)


def _create_link(account: Account, tenant: Tenant, purpose: str, *, requested_by, ip):
    token = new_secret()
    now = clock.now()
    link = ResetLink(
        token_hash=hash_secret(token),
        account=account,
        tenant=tenant,
        purpose=purpose,
        created_at=now,
        expires_at=_expiry(tenant, purpose, now),
    )
    db.session.add(link)
    db.session.flush()
    # Read before the commit, which expires every loaded row (reading them after is a query each).
    message = _build_message(account=account, tenant=tenant, purpose=purpose, token=token,
                             expires_at=link.expires_at, requested_by=requested_by)
    info = dict(tenant=tenant.id, actor=getattr(requested_by, "id", None), subject=account.id, ip=ip,
                provider=account.provider, purpose=purpose, link_id=link.id,
                by_admin=True if requested_by is not None else None)
    link_id = link.id
    commit_now(because="a fast click must find the link its mail carries")
    link = db.session.get(ResetLink, link_id)
    link.token = token
    return link, message, info


def _build_message(*, account, tenant, purpose, token, expires_at, requested_by=None) -> EmailMessage:
    issuer = current_app.config["SETTINGS"].issuer
    context = dict(email=account.email, name=account.name, provider=account.provider, tenant=tenant,
                   expires_text=describe_expiry(expires_at, tenant.timezone),
                   login_url=messages.login_url(tenant, account.provider))
    if purpose == JOIN:
        membership = account.membership_in(tenant.id)
        return messages.join_invitation(**context, link_url=f"{issuer}/join/{token}",
                                        role=membership.role if membership else "staff")
    builder = messages.invitation if purpose == INVITE else messages.reset_password
    return builder(**context, link_url=f"{issuer}/reset/{token}")


def _deliver(link_id: int, message: EmailMessage, info: dict) -> None:
    try:
        send(message)
    except DeliveryFailed:
        # Never leave a link usable that nobody received.
        _mark(link_id, invalidated_at=clock.now())
        audit.record(audit.RESET_REQUESTED, outcome="delivery_failed", **info)
        commit_now(because="a link whose mail failed must be void, though the page reports the failure")
        raise
    _mark(link_id, sent_at=clock.now())
    audit.record(audit.RESET_REQUESTED, **info)


def _mark(link_id: int, **values) -> None:
    db.session.execute(
        update(ResetLink).where(ResetLink.id == link_id).values(**values).execution_options(synchronize_session=False)
    )


def _issue_after_response(account_id: int, tenant_id: int, ip: str | None) -> Callable[[], None]:
    """Hidden mode: the link is made and mailed off the request (idp.background), in a unit of work
    of its own."""
    app = current_app._get_current_object()

    def deliver() -> None:
        with app.app_context():
            try:
                account, tenant = db.session.get(Account, account_id), db.session.get(Tenant, tenant_id)
                issue_reset_link(account, tenant, ip=ip)
                db.session.commit()
            except DeliveryFailed:
                pass  # logged and the link voided; the page has already answered neutrally
            finally:
                db.session.remove()

    return deliver


def void_links(account: Account, *, purposes: tuple[str, ...], tenant: Tenant | None = None) -> int:
    """End the account's outstanding links of `purposes` (at `tenant` only, when given): its password
    changed, its address changed, it was retired, or an invitation was withdrawn."""
    conditions = [ResetLink.account_id == account.id, ResetLink.purpose.in_(purposes),
                  ResetLink.used_at.is_(None), ResetLink.invalidated_at.is_(None)]
    if tenant is not None:
        conditions.append(ResetLink.tenant_id == tenant.id)
    return db.session.execute(
        update(ResetLink).where(*conditions).values(invalidated_at=clock.now())
        .execution_options(synchronize_session=False)
    ).rowcount or 0


# --- Status (admin area) ------------------------------------------------------------

STATE_TEXT = {
    "pending": "Sent, not used yet",
    "used": "Used",
    "expired": "Expired unused",
    "void": "No longer valid (the password was changed since)",
    "not_sent": "Could not be sent",
}


#: Admin > Users' filter by where a person's links stand (the list's `link=` values).
LINK_FILTERS = {
    "invited": "Invited, no password yet",
    "sent": "Link sent, not used yet",
    "expired": "Link expired unused",
    "not_sent": "Link could not be sent",
}


def latest_links(tenant: Tenant):
    """The newest link of each account sent from `tenant` (a subquery: account_id, link_id)."""
    return (select(ResetLink.account_id.label("account_id"), func.max(ResetLink.id).label("link_id"))
            .where(ResetLink.tenant_id == tenant.id).group_by(ResetLink.account_id).subquery())


def state_of(link: ResetLink | None) -> str | None:
    """One of STATE_TEXT's keys for a link (None when there is none): the list and the member page agree."""
    if link is None:
        return None
    if link.used_at is not None:
        return "used"
    if link.invalidated_at is not None:
        return "void" if link.sent_at is not None else "not_sent"
    return "expired" if link.is_expired else "pending"


def link_filter_condition(state: str, latest):
    """SQL for LINK_FILTERS' `state`, given a ResetLink aliased to each account's newest link
    (`latest`, outer-joined: NULL when none was sent); None for an unknown state."""
    now = clock.now()
    unused = (latest.used_at.is_(None), latest.invalidated_at.is_(None))
    if state == "invited":
        return or_(Account.password_hash.is_(None), Membership.accepted_at.is_(None))
    if state == "sent":
        return and_(latest.id.is_not(None), *unused, latest.expires_at > now)
    if state == "expired":
        return and_(latest.id.is_not(None), *unused, latest.expires_at <= now)
    if state == "not_sent":
        return and_(latest.id.is_not(None), latest.invalidated_at.is_not(None), latest.sent_at.is_(None))
    return None


def link_status(account: Account, tenant: Tenant, purposes: tuple[str, ...] = PASSWORD_PURPOSES) -> dict | None:
    """The latest link of `purposes` sent to `account` from `tenant`, for the admin's user page (None if never)."""
    link = db.session.scalars(
        select(ResetLink)
        .where(ResetLink.account_id == account.id, ResetLink.tenant_id == tenant.id, ResetLink.purpose.in_(purposes))
        .order_by(ResetLink.created_at.desc(), ResetLink.id.desc())
        .limit(1)
    ).first()
    if link is None:
        return None
    state = state_of(link)
    tz = tenant.timezone
    return {
        "purpose": link.purpose,
        "state": state,
        "state_text": STATE_TEXT[state],
        "sent_at": clock.local(link.sent_at or link.created_at, tz),
        "expires_at": clock.local(link.expires_at, tz),
        "expires_text": describe_expiry(link.expires_at, tz),
        "used_at": clock.local(link.used_at, tz),
        "timezone": tz,
    }


# --- Opening and redeeming --------------------------------------------------------------

def find_link(token: str, purposes: tuple[str, ...] = PASSWORD_PURPOSES) -> ResetLink | None:
    """The link of one of `purposes` behind `token` (a join link never sets a password, nor the reverse)."""
    if not token or len(token) > 200:
        return None
    link = db.session.scalars(
        select(ResetLink).where(ResetLink.token_hash == hash_secret(token), ResetLink.purpose.in_(purposes))
    ).first()
    return link if link is not None and secret_matches(token, link.token_hash) else None


def open_link(token: str, *, ip: str | None = None, purposes: tuple[str, ...] = PASSWORD_PURPOSES) -> ResetLink:
    """The usable link behind `token`, or LinkExpired (an opened dead link is audited)."""
    link = find_link(token, purposes)
    if link is None:
        raise LinkExpired(None)
    member_ok = (link.purpose == JOIN and link.account.membership_in(link.tenant_id) is not None
                 and not link.account.retired) or directory.active_membership(link.account, link.tenant) is not None
    superseded = link.used_at is None and _newer_link_sent(link)
    signed_in_since = link.is_usable and not superseded and _signed_in_since(link)
    if link.is_usable and member_ok and not signed_in_since and not superseded:
        return link
    reason = ("used" if link.used_at else "superseded" if superseded else "void" if link.invalidated_at else
              "expired" if link.is_expired else "signed in since" if signed_in_since else "inactive")
    audit.record(audit.RESET_EXPIRED, tenant=link.tenant_id, subject=link.account_id, outcome="refused", ip=ip,
                 reason=reason, purpose=link.purpose)
    commit_now(because="an opened dead link is recorded though the page refuses it")
    raise LinkExpired(link, reason)


def _newer_link_sent(link: ResetLink) -> bool:
    """Only the newest password (reset or first-time) link of an account works: a person who asked
    twice and clicks the first mail is told a newer one was sent. A newer link whose mail failed
    does not count (nobody received it)."""
    if link.purpose not in PASSWORD_PURPOSES:
        return False
    return bool(db.session.scalar(select(exists().where(
        ResetLink.account_id == link.account_id, ResetLink.purpose.in_(PASSWORD_PURPOSES),
        ResetLink.id > link.id, ResetLink.sent_at.is_not(None),
    ))))


def _signed_in_since(link: ResetLink) -> bool:
    """A successful sign-in since a reset link was made voids it (whoever asked knows the password
    after all, and a link left in a mailbox is a risk). Read from the sign-ins' audit events, so the
    sign-in itself writes nothing more."""
    if link.purpose != RESET:
        return False
    return bool(db.session.scalar(select(exists().where(
        AuditEvent.subject_account_id == link.account_id, AuditEvent.event == audit.LOGIN_SUCCEEDED,
        AuditEvent.at > link.created_at,
    ))))


def _claim(link: ResetLink) -> bool:
    """Mark the link used with one conditional UPDATE: of two simultaneous uses exactly one wins."""
    now = clock.now()
    return db.session.execute(
        update(ResetLink)
        .where(ResetLink.id == link.id, ResetLink.used_at.is_(None), ResetLink.invalidated_at.is_(None),
               ResetLink.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount == 1


def redeem_reset_link(link: ResetLink, password: str, confirmation: str | None, *,
                      ip: str | None = None) -> ResetLink:
    """Set the password through a link from `open_link`: PolicyViolation (link untouched) or
    LinkExpired.

    The link is claimed with one conditional UPDATE, so of two simultaneous
    submissions exactly one wins."""
    account, tenant = link.account, link.tenant
    passwords.check_policy(password, account=account, email=account.email, name=account.name or "",
                           confirmation=confirmation, extra_words=(tenant.name,))
    if not _claim(link):
        db.session.rollback()
        raise LinkExpired(link, "used")
    credentials.change_password(account, password, tenant=tenant, ip=ip, check_policy=False, via="reset_link")
    lifecycle.email_proven(account)
    audit.record(audit.RESET_USED, tenant=tenant, actor=account, subject=account, ip=ip, purpose=link.purpose)
    auth_service.forget_failed_logins(account, tenant, ip=ip)
    return link


def redeem_join_link(link: ResetLink, *, ip: str | None = None) -> ResetLink | None:
    """Accept the school's membership through a link from `open_link(..., purposes=(JOIN,))`.
    Returns a first-time password link (not mailed: the person has just proved the address) when
    the account has no password yet, else None. LinkExpired when someone used it first."""
    account, tenant = link.account, link.tenant
    if not _claim(link):
        db.session.rollback()
        raise LinkExpired(link, "used")
    lifecycle.accept_membership(account, tenant)
    audit.record(audit.RESET_USED, tenant=tenant, actor=account, subject=account, ip=ip, purpose=JOIN)
    if account.has_password:
        return None
    token = new_secret()
    now = clock.now()
    first_time = ResetLink(token_hash=hash_secret(token), account=account, tenant=tenant, purpose=INVITE,
                           created_at=now, expires_at=link_expiry(tenant, now), sent_at=now)
    db.session.add(first_time)
    db.session.flush()
    first_time.token = token
    return first_time
