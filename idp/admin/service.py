"""Admin > Users and the audit log, for one tenant's administrator.

Every function takes the tenant explicitly and looks rows up *within* it, so an id from another
tenant is simply not found; what a member's account may become is then the account lifecycle's
decision (idp.accounts.lifecycle), asked with this school's authority. Functions flush; the
request boundary commits (idp.transactions)."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import aliased, lazyload

from .. import audit, clock
from ..accounts import directory, lifecycle, mfa, providers, security_keys
from ..errors import DeliveryFailed, InvalidInput, NotAllowed, NotFound, RateLimited
from ..extensions import db
from ..models import Account, AuditEvent, Membership, ResetLink, Tenant, normalise_email
from ..models.accounts import ROLES
from ..mail import delivery
from ..ratelimits import RESEND_PER_TENANT
from ..reset import links

PER_PAGE = 25


# --------------------------------------------------------------------------- access


def require_tenant_admin(tenant: Tenant, account: Account | None) -> Membership:
    """The account's active admin membership of `tenant`, or NotAllowed."""
    membership = directory.active_membership(account, tenant) if account is not None else None
    if membership is None or membership.role != "admin":
        raise NotAllowed("You need to be an administrator of this school to use its Admin area.")
    return membership


# --------------------------------------------------------------------------- pages


@dataclass
class Page:
    items: list
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_previous(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


#: Far beyond any real list; a bigger number typed into ?page= would overflow the database's integer.
_LAST_PAGE = 1_000_000


def _page_number(page) -> int:
    try:
        return min(max(1, int(page)), _LAST_PAGE)
    except (TypeError, ValueError):
        return 1


# --------------------------------------------------------------------------- members


@dataclass
class Member:
    """One person as this tenant sees them: the membership and its account (never other tenants)."""

    membership: Membership
    account: Account
    #: The newest link this tenant sent them (on the list; None when never, or not loaded).
    latest_link: ResetLink | None = None

    @property
    def id(self) -> int:
        return self.membership.id

    @property
    def provider_name(self) -> str:
        return providers.name(self.account.provider)

    @property
    def link_state(self) -> str | None:
        return links.state_of(self.latest_link)


def _member_conditions(tenant: Tenant, search, provider, role, link_state, latest) -> list:
    conditions = [Membership.tenant_id == tenant.id, Account.retired.is_(False)]
    search = (search or "").strip()
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(
            or_(Account.email.ilike(pattern, escape="\\"), Account.name.ilike(pattern, escape="\\"))
        )
    if provider in providers.KEYS:
        conditions.append(Account.provider == provider)
    if role in ROLES:
        conditions.append(Membership.role == role)
    if link_state in links.LINK_FILTERS:
        # Links go to people who can use them: a deactivated member is never "waiting for a link".
        conditions += [Membership.active.is_(True), links.link_filter_condition(link_state, latest)]
    return conditions


def _members_query(tenant: Tenant, search, provider, role, link_state, *columns):
    newest = links.latest_links(tenant)
    latest = aliased(ResetLink)
    conditions = _member_conditions(tenant, search, provider, role, link_state, latest)
    query = (select(*columns).select_from(Membership).join(Account, Account.id == Membership.account_id)
             .outerjoin(newest, newest.c.account_id == Account.id).outerjoin(latest, latest.id == newest.c.link_id)
             .where(*conditions))
    return query, latest


def list_members(
    tenant: Tenant,
    *,
    search: str | None = None,
    provider: str | None = None,
    role: str | None = None,
    link_state: str | None = None,
    page=1,
    per_page: int = PER_PAGE,
) -> Page:
    """One page of the tenant's members, each with the newest link the school sent them: one query
    for the rows and one for the count, whatever the size."""
    counted, _ = _members_query(tenant, search, provider, role, link_state, func.count(Membership.id))
    total = db.session.scalar(counted)
    page = _page_number(page)
    latest = aliased(ResetLink)
    base, latest = _members_query(tenant, search, provider, role, link_state, Membership, Account)
    rows = db.session.execute(
        base.add_columns(latest)
        .options(lazyload(Account.memberships))  # other tenants' memberships are none of this page's business
        .order_by(func.lower(Account.name), Account.email, Membership.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return Page([Member(m, a, link) for m, a, link in rows], total or 0, page, per_page)


def get_member(tenant: Tenant, member_id) -> Member:
    """The membership `member_id` of `tenant` with its account, or NotFound (also for other tenants' ids)."""
    try:
        member_id = int(member_id)
    except (TypeError, ValueError):
        raise NotFound("No such user in this school") from None
    row = db.session.execute(
        select(Membership, Account)
        .join(Account, Account.id == Membership.account_id)
        .where(Membership.id == member_id, Membership.tenant_id == tenant.id, Account.retired.is_(False))
    ).first()
    if row is None:
        raise NotFound("No such user in this school")
    return Member(*row)


def authority(tenant: Tenant, actor: Account | None, ip: str | None = None) -> lifecycle.Authority:
    """This school's administrator `actor`, for the account lifecycle's rules."""
    return lifecycle.Authority(actor=actor, tenant=tenant, ip=ip)


def changeable(tenant: Tenant, member: Member, actor: Account | None) -> lifecycle.Changeable:
    """What `actor` may change on `member`'s page (the page shows the rest as read-only text)."""
    return lifecycle.changeable(member.account, authority(tenant, actor))


def update_member(tenant: Tenant, member_id, *, name: str, email: str, role: str, active: bool,
                  actor: Account | None, ip: str | None = None) -> Member:
    member = get_member(tenant, member_id)
    lifecycle.update_details(member.membership, name=name, email=email, role=role, active=active,
                             authority=authority(tenant, actor, ip))
    return member


def deactivate_member(tenant: Tenant, member_id, *, actor: Account | None, ip: str | None = None) -> Member:
    member = get_member(tenant, member_id)
    lifecycle.deactivate(member.membership, authority(tenant, actor, ip))
    return member


def add_member(tenant: Tenant, *, email: str, name: str, role: str, provider: str, actor: Account | None,
               ip: str | None = None, mail: bool = True) -> lifecycle.Joined:
    """Add a person to the school (see lifecycle.add_member: an existing SSO account must accept)."""
    return lifecycle.add_member(tenant, provider=provider, email=email, name=name, role=role,
                                authority=authority(tenant, actor, ip), mail=mail)


def end_member_sign_ins(tenant: Tenant, member_id, *, actor: Account | None, ip: str | None = None) -> Member:
    """End the member's sign-ins at this school's applications without deactivating them: their
    tokens here are revoked, this school's applications are told (back-channel logout), and they
    sign in again to use them. (Their other schools' sign-ins are not this school's to end.)"""
    member = get_member(tenant, member_id)
    lifecycle.end_sign_ins(member.account, tenant=tenant, reason="ended by the school's administrator",
                           authority=authority(tenant, actor, ip))
    return member


def withdraw_invitation(tenant: Tenant, member_id, *, actor: Account | None, ip: str | None = None) -> Member:
    member = get_member(tenant, member_id)
    lifecycle.withdraw_invitation(member.membership, authority(tenant, actor, ip))
    return member


def assign_provider(tenant: Tenant, member_id, provider: str, *, actor: Account | None,
                    ip: str | None = None) -> lifecycle.Reassignment:
    member = get_member(tenant, member_id)
    return lifecycle.move_to_provider(member.membership, provider, authority(tenant, actor, ip))


# --------------------------------------------------------------------------- 2FA and password links


@dataclass
class SecondFactorStatus:
    """Which kinds of second factor a member has, and how many (never what they are)."""

    devices: int
    recovery_codes_left: int
    security_keys: int = 0
    passkeys: int = 0

    @property
    def enrolled(self) -> bool:
        return self.devices + self.security_keys + self.passkeys > 0


def second_factor_status(account: Account) -> SecondFactorStatus:
    keys = security_keys.keys_of(account)
    passkeys = sum(1 for key in keys if key.passkey)
    return SecondFactorStatus(len(mfa.confirmed_devices(account)), mfa.remaining_recovery_codes(account) or 0,
                              security_keys=len(keys) - passkeys, passkeys=passkeys)


def reset_second_factor(tenant: Tenant, member_id, *, actor: Account | None, ip: str | None = None) -> Member:
    """Remove the member's authenticators and recovery codes so they can enrol again."""
    member = get_member(tenant, member_id)
    lifecycle.reset_second_factor(member.account, authority(tenant, actor, ip))
    return member


def send_password_link(tenant: Tenant, member_id, *, actor: Account | None, ip: str | None = None) -> Member:
    """Send the member a reset (or first-time) link through the shared reset flow; a member who has
    not accepted the school yet gets their acceptance link again instead."""
    member = get_member(tenant, member_id)
    if not member.membership.active:
        raise InvalidInput("This user is deactivated. Reactivate them before sending a password link.")
    if member.membership.is_pending:
        links.send_join_link(member.account, tenant, requested_by=actor, ip=ip)
    else:
        links.issue_reset_link(member.account, tenant, requested_by=actor, ip=ip)
    return member


#: A person who got a link this recently is skipped by "send again to all" (a second press, a
#: double click): their mail may simply not have arrived yet.
RESEND_PAUSE = timedelta(minutes=10)
#: At most this many mails per press; the rest are sent by pressing again (the page says how many are left).
RESEND_BATCH = 200


@dataclass
class Resent:
    sent: int = 0
    failed: int = 0
    skipped_recent: int = 0
    left: int = 0


def resend_links(tenant: Tenant, *, search: str | None = None, provider: str | None = None,
                 role: str | None = None, link_state: str | None = None, actor: Account | None,
                 ip: str | None = None) -> Resent:
    """Send again, to every active member the list's filters select, the link each needs (as
    send_password_link: the acceptance link to one who has not accepted yet, else a reset or
    first-time link, which replaces their older ones). RateLimited when the school pressed it too
    often; people sent a link in the last RESEND_PAUSE are skipped."""
    if RESEND_PER_TENANT.is_blocked(str(tenant.id)):
        raise RateLimited("You have sent links to many users in a short time. Wait a few minutes and try again.")
    RESEND_PER_TENANT.hit(str(tenant.id))
    query, latest = _members_query(tenant, search, provider, role, link_state, Membership.id)
    rows = db.session.execute(
        query.add_columns(latest.created_at).where(Membership.active.is_(True))
        .order_by(func.lower(Account.name), Account.email, Membership.id)
    ).all()
    result = Resent()
    recently = clock.now() - RESEND_PAUSE
    chosen = []
    for member_id, last_sent in rows:
        if last_sent is not None and clock.as_utc(last_sent) > recently:
            result.skipped_recent += 1
        elif len(chosen) >= RESEND_BATCH:
            result.left += 1
        else:
            chosen.append(member_id)
    with delivery.batch():
        for member_id in chosen:
            try:
                send_password_link(tenant, member_id, actor=actor, ip=ip)
            except DeliveryFailed:
                result.failed += 1  # that link is void and its failure recorded; the list shows it
            else:
                result.sent += 1
    filters = {key: value for key, value in dict(search=search, provider=provider, role=role,
                                                 link=link_state).items() if value}
    audit.record(audit.LINKS_RESENT, tenant=tenant, actor=actor, ip=ip, sent=result.sent, failed=result.failed,
                 skipped_recent=result.skipped_recent or None, left=result.left or None, filters=filters or None)
    return result


def password_link_status(tenant: Tenant, member: Member) -> dict | None:
    """The last link this tenant sent the person (when sent, when it expires at local midnight,
    used/expired/pending), so an admin can answer "I never got the email"; for a member who has not
    accepted yet, their acceptance link."""
    purposes = (links.JOIN,) if member.membership.is_pending else links.PASSWORD_PURPOSES
    return links.link_status(member.account, tenant, purposes)


# --------------------------------------------------------------------------- audit log


@dataclass
class AuditRow:
    event: AuditEvent
    actor_email: str | None
    subject_email: str | None
    tenant_slug: str | None = None

    @property
    def description(self) -> str:
        return audit.describe(self.event.event)

    @property
    def outcome(self) -> str:
        return audit.describe_outcome(self.event.outcome)

    @property
    def details(self) -> list[tuple[str, str]]:
        return audit.describe_detail(self.event.detail)


def audit_zone(tenant: Tenant | None) -> str:
    """Audit times are in the school's timezone; the operators' log of every school is in UTC."""
    return tenant.timezone if tenant is not None else "UTC"


def _audit_conditions(tenant: Tenant | None, email: str | None, event: str | None) -> list:
    conditions = []
    if tenant is not None:
        conditions.append(AuditEvent.tenant_id == tenant.id)
    email = normalise_email(email or "")
    if email:
        ids = select(Account.id).where(Account.email == email)
        conditions.append(or_(AuditEvent.subject_account_id.in_(ids), AuditEvent.actor_account_id.in_(ids)))
    event = (event or "").strip()
    if event:
        conditions.append(AuditEvent.event == event)
    return conditions


def _audit_rows(conditions: list):
    actor, subject = aliased(Account), aliased(Account)
    return (
        select(AuditEvent, actor.email, subject.email, Tenant.slug)
        .outerjoin(actor, actor.id == AuditEvent.actor_account_id)
        .outerjoin(subject, subject.id == AuditEvent.subject_account_id)
        .outerjoin(Tenant, Tenant.id == AuditEvent.tenant_id)
        .where(*conditions)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    )


def list_audit(
    tenant: Tenant | None,
    *,
    email: str | None = None,
    event: str | None = None,
    page=1,
    per_page: int = 50,
) -> Page:
    """The tenant's audit events, newest first (all tenants' when `tenant` is None: operators only)."""
    conditions = _audit_conditions(tenant, email, event)
    total = db.session.scalar(select(func.count(AuditEvent.id)).where(*conditions))
    page = _page_number(page)
    rows = db.session.execute(_audit_rows(conditions).limit(per_page).offset((page - 1) * per_page)).all()
    return Page([AuditRow(*row) for row in rows], total or 0, page, per_page)


#: A spreadsheet reads a cell starting with one of these as a formula (CSV injection, OWASP).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: One download holds at most this many events (narrow the filters for more).
AUDIT_CSV_LIMIT = 100_000


def spreadsheet_safe(value) -> str:
    """A cell a spreadsheet shows as text: a leading ' before anything it would run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def audit_csv(tenant: Tenant | None, *, email: str | None = None, event: str | None = None):
    """The filtered audit log (the page's filters, every page of it) as CSV lines, newest first, in
    the zone the page uses; every cell neutralised against spreadsheet formulas."""
    tz = audit_zone(tenant)
    conditions = _audit_conditions(tenant, email, event)
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(cells) -> str:
        writer.writerow([spreadsheet_safe(cell) for cell in cells])
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    heading = [f"Time ({clock.zone_label(tz)})", *(["Tenant"] if tenant is None else []), "Event", "Event code",
               "Outcome", "By", "User", "IP address", "Details"]
    yield line(heading)
    result = db.session.execute(_audit_rows(conditions).limit(AUDIT_CSV_LIMIT).execution_options(yield_per=500))
    for found in result:
        row = AuditRow(*found)
        yield line([
            clock.local(row.event.at, tz).strftime("%Y-%m-%d %H:%M:%S"),
            *([row.tenant_slug or ""] if tenant is None else []),
            row.description, row.event.event, row.outcome, row.actor_email or "", row.subject_email or "",
            row.event.ip or "", "; ".join(f"{label}: {text}" for label, text in row.details),
        ])


def audit_event_choices() -> list[tuple[str, str]]:
    """(code, words) for the event filter, in the order of their words."""
    return sorted(((code, audit.describe(code)) for code in audit_event_names()), key=lambda pair: pair[1])


def audit_event_names() -> list[str]:
    return sorted({value for name, value in vars(audit).items() if name.isupper() and isinstance(value, str)})
