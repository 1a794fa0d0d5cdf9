"""What a tenant admin may do to the tenant's members, applications and audit log.

Every function takes the tenant explicitly and looks rows up *within* it, so an
id from another tenant is simply not found. Functions flush but never commit:
the caller (a view or a CLI command) owns the transaction. They take plain
arguments (no request, no session) so the CLI can use them too."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import aliased, lazyload

from .. import audit, clock
from ..accounts import credentials, directory, mfa
from ..errors import Conflict, DeliveryFailed, InvalidInput, NotAllowed, NotFound
from ..extensions import db
from ..models import (
    Account,
    AuditEvent,
    Membership,
    Tenant,
    Token,
    normalise_email,
)
from ..models.accounts import PROVIDER_NAMES, PROVIDERS, ROLES
from ..reset import links
from . import notices

PER_PAGE = 25
SHARED_SSO_MESSAGE = (
    "This CPOMS SSO account is also used for other CPOMS systems, so only CPOMS support can change its {what}."
)
OPERATOR_MESSAGE = "This person is a CPOMS platform operator, so only CPOMS support can change their {what}."


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

    @property
    def id(self) -> int:
        return self.membership.id

    @property
    def provider_name(self) -> str:
        return PROVIDER_NAMES[self.account.provider]


def list_members(
    tenant: Tenant,
    *,
    search: str | None = None,
    provider: str | None = None,
    role: str | None = None,
    page=1,
    per_page: int = PER_PAGE,
) -> Page:
    """One page of the tenant's members: one query for the rows and one for the count, whatever the size."""
    conditions = [Membership.tenant_id == tenant.id, Account.retired.is_(False)]
    search = (search or "").strip()
    if search:
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        conditions.append(
            or_(Account.email.ilike(pattern, escape="\\"), Account.name.ilike(pattern, escape="\\"))
        )
    if provider in PROVIDERS:
        conditions.append(Account.provider == provider)
    if role in ROLES:
        conditions.append(Membership.role == role)

    base = select(Membership, Account).join(Account, Account.id == Membership.account_id).where(*conditions)
    total = db.session.scalar(
        select(func.count(Membership.id)).join(Account, Account.id == Membership.account_id).where(*conditions)
    )
    page = _page_number(page)
    rows = db.session.execute(
        base.options(lazyload(Account.memberships))  # other tenants' memberships are none of this page's business
        .order_by(func.lower(Account.name), Account.email, Membership.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return Page([Member(m, a) for m, a in rows], total or 0, page, per_page)


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


def is_shared_sso_account(account: Account, tenant: Tenant) -> bool:
    """An SSO account that other tenants also use: this tenant's admin must not change who it is."""
    if account.provider != "sso":
        return False
    return bool(
        db.session.scalar(
            select(func.count(Membership.id)).where(
                Membership.account_id == account.id, Membership.tenant_id != tenant.id
            )
        )
    )


def _email_taken(account: Account, email: str) -> bool:
    """Uniqueness per provider: Identity within its tenant (retired accounts included), SSO globally."""
    query = select(Account.id).where(
        Account.provider == account.provider, Account.email == email, Account.id != account.id
    )
    if account.provider == "identity":
        query = query.where(Account.tenant_id == account.tenant_id)
    return db.session.scalar(query.limit(1)) is not None


def update_member(
    tenant: Tenant,
    member_id,
    *,
    name: str,
    email: str,
    role: str,
    active: bool,
    actor: Account | None,
    ip: str | None = None,
) -> Member:
    member = get_member(tenant, member_id)
    account, membership = member.account, member.membership
    directory.validate_role(role)
    email = directory.validate_email(email)
    name = (name or "").strip()
    if not name:
        raise InvalidInput("Enter the user's name", field="name")

    if (name != account.name or email != account.email) and is_shared_sso_account(account, tenant):
        # Changing a shared SSO account's email here would let this school take over the person's
        # sign-in at every other school (a password link goes to the new address).
        what, which = ("email address", "email") if email != account.email else ("name", "name")
        raise NotAllowed(SHARED_SSO_MESSAGE.format(what=what), field=which)
    if email != account.email and account.is_operator:
        # A new address plus a password link would hand one school's admin the whole platform.
        raise NotAllowed(OPERATOR_MESSAGE.format(what="email address"), field="email")
    if actor is not None and actor.id == account.id and (role != "admin" or not active):
        raise NotAllowed("You cannot remove your own admin access or deactivate yourself. Ask another administrator.",
                         field="role" if role != "admin" else "active")
    if email != account.email and _email_taken(account, email):
        where = "in this school" if account.provider == "identity" else "for CPOMS SSO"
        raise Conflict(f"Another {PROVIDER_NAMES[account.provider]} account already uses {email} {where}",
                       field="email")

    changes: dict[str, list] = {}
    if email != account.email:
        changes["email"] = [account.email, email]
        account.email = email
    if name != account.name:
        changes["name"] = [account.name, name]
        account.name = name
    if role != membership.role:
        changes["role"] = [membership.role, role]
        membership.role = role
    deactivating = membership.active and not active
    if active and not membership.active:
        changes["active"] = [False, True]
        membership.active = True
    if changes:
        audit.record(audit.MEMBER_CHANGED, tenant=tenant, actor=actor, subject=account, ip=ip, changes=changes)
    if deactivating:
        deactivate_member(tenant, membership.id, actor=actor, ip=ip)
    db.session.flush()
    return member


def deactivate_member(tenant: Tenant, member_id, *, actor: Account | None, ip: str | None = None) -> Member:
    """Refuse the member this tenant, revoke their tokens for its clients and end their sessions.

    Identity accounts (and SSO accounts used by this tenant only) are signed out everywhere by bumping
    `session_epoch`. A shared SSO account keeps its browser sessions for other schools, but sign-in and
    authorization for this tenant refuse an inactive membership, and its tokens here are revoked."""
    member = get_member(tenant, member_id)
    account, membership = member.account, member.membership
    if actor is not None and actor.id == account.id:
        raise NotAllowed("You cannot deactivate yourself. Ask another administrator.", field="active")
    if not membership.active:
        return member
    membership.active = False
    audit.record(audit.MEMBER_DEACTIVATED, tenant=tenant, actor=actor, subject=account, ip=ip)
    revoke_tokens(tenant, account, actor=actor, ip=ip, reason="member deactivated")
    if not is_shared_sso_account(account, tenant):
        account.session_epoch = (account.session_epoch or 0) + 1
    db.session.flush()
    return member


def revoke_tokens(tenant: Tenant, account: Account, *, actor=None, ip=None, reason: str = "", client_id=None) -> int:
    """Revoke the account's live tokens for `tenant`'s clients (never another tenant's)."""
    now = clock.now()
    conditions = [Token.tenant_id == tenant.id, Token.revoked_at.is_(None)]
    if account is not None:
        conditions.append(Token.account_id == account.id)
    if client_id is not None:
        conditions.append(Token.client_id == client_id)
    result = db.session.execute(
        update(Token).where(*conditions).values(revoked_at=now).execution_options(synchronize_session=False)
    )
    count = result.rowcount or 0
    if count:
        audit.record(audit.TOKEN_REVOKED, tenant=tenant, actor=actor, subject=account, ip=ip,
                     count=count, reason=reason, client_id=client_id)
    return count


# --------------------------------------------------------------------------- adding members


@dataclass
class AddedMember:
    member: Member
    created: bool  # a new account (invited) rather than an existing SSO account joining
    invited: bool
    invitation_problem: str | None = None


def add_member(
    tenant: Tenant,
    *,
    email: str,
    name: str,
    role: str,
    provider: str,
    actor: Account | None,
    ip: str | None = None,
    invite: bool = True,
) -> AddedMember:
    """Add a person to the tenant. SSO: an existing SSO account joins (its other tenants stay hidden),
    otherwise one is created and invited. Identity: a new account local to this tenant, invited."""
    directory.validate_provider(provider)
    directory.validate_role(role)
    email = directory.validate_email(email)
    name = (name or "").strip()
    problem = member_conflict(tenant, provider, email)
    if problem:
        raise Conflict(problem, field="email")

    created = True
    if provider == "sso":
        account = directory.find_sso_account(email)
        if account is not None:
            directory.add_membership(account, tenant, role)
            created = False
        else:
            account = directory.create_account(provider="sso", email=email, name=name, tenants=[tenant], role=role)
    else:
        account = _local_account(tenant, email, name)
        account.memberships.append(Membership(tenant_id=tenant.id, role=role, active=True))
    db.session.flush()
    membership = account.membership_in(tenant.id)
    audit.record(audit.MEMBER_ADDED, tenant=tenant, actor=actor, subject=account, ip=ip,
                 provider=provider, role=role, email=email, new_account=created)
    invited, trouble = False, None
    if invite and not account.has_password:
        invited, trouble = invite_account(account, tenant, actor=actor, ip=ip)
    return AddedMember(Member(membership, account), created, invited, trouble)


def member_conflict(tenant: Tenant, provider: str, email: str) -> str | None:
    """Why `email` cannot be added with `provider` to `tenant`, or None."""
    if provider == "sso":
        existing = directory.find_sso_account(email)
        if existing is not None and existing.membership_in(tenant.id) is not None:
            return f"{email} is already a CPOMS SSO user of this school"
        return None
    local = _identity_account(tenant, email)
    if local is not None and not local.retired:
        return f"{email} already has a CPOMS Identity account in this school"
    return None


def _identity_account(tenant: Tenant, email: str) -> Account | None:
    """This tenant's Identity account with `email`, retired ones included (the email stays reserved)."""
    return db.session.scalars(
        select(Account).where(
            Account.provider == "identity", Account.tenant_id == tenant.id, Account.email == normalise_email(email)
        )
    ).first()


def _local_account(tenant: Tenant, email: str, name: str, *, reuse_active: bool = False) -> Account:
    """This tenant's local account for `email`: a retired one comes back with no membership (keeping its
    history, but not its old password); a live one is reused only when `reuse_active` (the same person
    moving back from SSO); otherwise a new one is made through the directory, with no membership yet."""
    account = _identity_account(tenant, email)
    if account is not None and not account.retired:
        if not reuse_active:
            raise Conflict(f"{email} already has a CPOMS Identity account in this school", field="email")
        return account
    if account is not None:
        account.retired = False
        account.password_hash = None
        account.session_epoch = (account.session_epoch or 0) + 1
        if name:
            account.name = name
        for membership in list(account.memberships):
            account.memberships.remove(membership)
        db.session.flush()
        return account
    account = directory.create_account(provider="identity", email=email, name=name, tenants=[tenant])
    # create_account always adds a membership; the caller attaches (or moves) the one it wants.
    account.memberships.clear()
    db.session.flush()
    return account


def invite_account(account: Account, tenant: Tenant, *, actor: Account | None = None,
                   ip: str | None = None) -> tuple[bool, str | None]:
    """Send the first-time sign-in link through the shared reset flow (which commits). Returns (sent, problem)."""
    try:
        links.send_invitation(account, tenant, requested_by=actor, ip=ip)
    except DeliveryFailed as error:
        return False, error.message or "The invitation email could not be sent. Try “Send password link” later."
    return True, None


# --------------------------------------------------------------------------- provider assignment


@dataclass
class Reassignment:
    member: Member
    previous_account: Account
    invited: bool
    notified: bool


def assign_provider(
    tenant: Tenant, member_id, provider: str, *, actor: Account | None, ip: str | None = None
) -> Reassignment:
    """Move a member between Identity and SSO, keeping the membership (role, active, since) in this tenant.

    Identity -> SSO: the existing SSO account with that email (or a new, invited one) takes the membership;
    the local account is retired (no password, no sign-in) but kept for its history and audit trail.
    SSO -> Identity: a local account for this tenant only takes the membership; the SSO account keeps
    its other tenants. The person is told by mail which login to use from now on."""
    directory.validate_provider(provider)
    member = get_member(tenant, member_id)
    old_account, membership = member.account, member.membership
    if old_account.provider == provider:
        raise InvalidInput(f"This user already uses {PROVIDER_NAMES[provider]}", field="provider")
    if actor is not None and actor.id == old_account.id:
        raise NotAllowed("You cannot change your own authentication provider. Ask another administrator.",
                         field="provider")
    if old_account.is_operator:
        # The operator flag stays on this account: moving the membership would end their platform access.
        raise NotAllowed(OPERATOR_MESSAGE.format(what="authentication provider"), field="provider")

    if provider == "sso":
        new_account = directory.find_sso_account(old_account.email)
        if new_account is None:
            new_account = directory.create_account(
                provider="sso", email=old_account.email, name=old_account.name, tenants=[tenant],
                role=membership.role,
            )
            # The membership that moves below is the one to keep (its id, role, active flag and date).
            new_account.memberships.clear()
            db.session.flush()
    else:
        new_account = _local_account(tenant, old_account.email, old_account.name, reuse_active=True)

    target = _move_membership(membership, old_account, new_account, tenant)
    revoke_tokens(tenant, old_account, actor=actor, ip=ip, reason="provider reassigned")
    if old_account.provider == "identity":
        _retire(old_account)
    db.session.flush()

    audit.record(
        audit.PROVIDER_REASSIGNED, tenant=tenant, actor=actor, subject=new_account, ip=ip,
        from_provider=old_account.provider, to_provider=provider,
        previous_account_id=old_account.id, email=new_account.email,
    )
    invited = False
    if not new_account.has_password:
        invited, _ = invite_account(new_account, tenant, actor=actor, ip=ip)
    notified = notices.send_provider_changed(new_account, tenant, provider)
    return Reassignment(Member(target, new_account), old_account, invited, notified)


def _move_membership(membership: Membership, old: Account, new: Account, tenant: Tenant) -> Membership:
    existing = new.membership_in(tenant.id)
    if existing is None:
        membership.account = new  # the same row: its id, role, active flag and date go with the person
        return membership
    existing.role = membership.role
    existing.active = membership.active
    existing.created_at = min(existing.created_at or membership.created_at, membership.created_at)
    old.memberships.remove(membership)
    db.session.flush()
    return existing


def _retire(account: Account) -> None:
    account.retired = True
    account.password_hash = None
    account.session_epoch = (account.session_epoch or 0) + 1
    credentials.void_reset_links(account, at=clock.now())


# --------------------------------------------------------------------------- 2FA and password links


@dataclass
class SecondFactorStatus:
    devices: int
    recovery_codes_left: int

    @property
    def enrolled(self) -> bool:
        return self.devices > 0


def second_factor_status(account: Account) -> SecondFactorStatus:
    return SecondFactorStatus(len(mfa.confirmed_devices(account)), mfa.remaining_recovery_codes(account) or 0)


def reset_second_factor(tenant: Tenant, member_id, *, actor: Account | None, ip: str | None = None) -> Member:
    """Remove the member's authenticator devices and recovery codes so they can enrol again."""
    member = get_member(tenant, member_id)
    account = member.account
    if is_shared_sso_account(account, tenant):
        raise NotAllowed(SHARED_SSO_MESSAGE.format(what="two-step verification"))
    if account.is_operator:
        # The operator's second factor guards every tenant, not just this school.
        raise NotAllowed(OPERATOR_MESSAGE.format(what="two-step verification"))
    mfa.reset_second_factor(account, actor=actor, tenant=tenant, ip=ip)
    db.session.flush()
    return member


def send_password_link(tenant: Tenant, member_id, *, actor: Account | None, ip: str | None = None) -> Member:
    """Send the member a reset (or first-time) link through the shared reset flow."""
    member = get_member(tenant, member_id)
    if not member.membership.active:
        raise InvalidInput("This user is deactivated. Reactivate them before sending a password link.")
    links.issue_reset_link(member.account, tenant, requested_by=actor, ip=ip)
    db.session.flush()
    return member


def password_link_status(tenant: Tenant, account: Account) -> dict | None:
    """The last password link this tenant sent the person (when sent, when it expires at local midnight,
    used/expired/pending), so an admin can answer "I never got the email"."""
    return links.link_status(account, tenant)


# --------------------------------------------------------------------------- audit log


@dataclass
class AuditRow:
    event: AuditEvent
    actor_email: str | None
    subject_email: str | None
    tenant_slug: str | None = None


def list_audit(
    tenant: Tenant | None,
    *,
    email: str | None = None,
    event: str | None = None,
    page=1,
    per_page: int = 50,
) -> Page:
    """The tenant's audit events, newest first (all tenants' when `tenant` is None: operators only)."""
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
    total = db.session.scalar(select(func.count(AuditEvent.id)).where(*conditions))
    page = _page_number(page)
    actor, subject = aliased(Account), aliased(Account)
    rows = db.session.execute(
        select(AuditEvent, actor.email, subject.email, Tenant.slug)
        .outerjoin(actor, actor.id == AuditEvent.actor_account_id)
        .outerjoin(subject, subject.id == AuditEvent.subject_account_id)
        .outerjoin(Tenant, Tenant.id == AuditEvent.tenant_id)
        .where(*conditions)
        .order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(per_page)
        .offset((page - 1) * per_page)
    ).all()
    return Page([AuditRow(*row) for row in rows], total or 0, page, per_page)


def audit_event_names() -> list[str]:
    return sorted({value for name, value in vars(audit).items() if name.isupper() and isinstance(value, str)})
