"""What an account may become, decided in one place: joining and leaving a school, changes of name,
email and role, moving between providers, retirement, and ending its sign-ins.

The rule these serve: only the person who controls an email address holds the credentials of the
account for it, and no school brings an existing account into itself without that person knowing.
So every change of the address by someone other than the person resets the credentials (the
password is cleared, second factors removed, every sign-in ended, a first-time link goes to the new
address), and a school that adds an existing CPOMS SSO account gets a membership that waits until
the person accepts it through a link mailed to them.

Admin pages, CSV import and the command line call these functions; none keeps its own copy of a
rule. `Authority` says who asks: a school's admin (their tenant) or the platform (operators, the
command line). Functions flush; the caller's boundary commits (see idp.transactions)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select

from .. import audit, clock, mail
from ..errors import Conflict, DeliveryFailed, InvalidInput, NotAllowed
from ..extensions import db
from ..mail import messages
from ..models import Account, Membership, MfaDevice, RecoveryCode, SecurityKey, Tenant
from ..oidc import tokens
from . import directory, mfa, providers, sessions

SHARED_SSO_MESSAGE = (
    "This CPOMS SSO account is also used for other CPOMS systems, so only CPOMS support can change its {what}."
)
OPERATOR_MESSAGE = "This person is a CPOMS platform operator, so only CPOMS support can change their {what}."
SELF_MESSAGE = "You cannot {what} yourself. Ask another administrator."


@dataclass(frozen=True)
class Authority:
    """Who asks for a change. `tenant` set: that school's administrator `actor`; `tenant` None: the
    platform (an operator's page, or `actor` None for the command line)."""

    actor: Account | None
    tenant: Tenant | None = None
    ip: str | None = None

    @property
    def is_platform(self) -> bool:
        return self.tenant is None

    @classmethod
    def command_line(cls) -> "Authority":
        return cls(actor=None, tenant=None, ip=None)


# --------------------------------------------------------------------------- what a school may change


def belongs_elsewhere(account: Account, tenant: Tenant) -> bool:
    """Not this school's alone: an operator's account (the platform's too), or an SSO account that
    another school also has (or is waiting to have)."""
    if account.is_operator:
        return True
    if account.provider != "sso":
        return False
    return bool(db.session.scalar(
        select(func.count(Membership.id)).where(Membership.account_id == account.id, Membership.tenant_id != tenant.id)
    ))


@dataclass(frozen=True)
class Changeable:
    """What `authority` may change about `account` in its school, and why not where it may not."""

    name: str | None  # None when allowed, else the reason it is not
    email: str | None
    role: str | None
    access: str | None
    provider: str | None
    second_factor: str | None


def changeable(account: Account, authority: Authority) -> Changeable:
    """The one answer to "may this admin change that?", for the services below and the pages that
    offer (or do not offer) the fields."""
    if authority.is_platform:
        return Changeable(None, None, None, None, None, None)
    shared = belongs_elsewhere(account, authority.tenant)
    oneself = authority.actor is not None and authority.actor.id == account.id

    def support_only(what: str) -> str | None:
        if account.is_operator:
            return OPERATOR_MESSAGE.format(what=what)
        if shared:
            return SHARED_SSO_MESSAGE.format(what=what)
        return None

    return Changeable(
        name=SHARED_SSO_MESSAGE.format(what="name") if shared else None,
        email=support_only("email address"),
        role=SELF_MESSAGE.format(what="remove your own admin access from") if oneself else None,
        access=SELF_MESSAGE.format(what="deactivate") if oneself else None,
        provider=(OPERATOR_MESSAGE.format(what="authentication provider") if account.is_operator else
                  SELF_MESSAGE.format(what="change the authentication provider of") if oneself else None),
        second_factor=support_only("two-step verification"),
    )


def _refuse_unless(reason: str | None, field: str | None = None) -> None:
    if reason:
        raise NotAllowed(reason, field=field)


# --------------------------------------------------------------------------- ending sign-ins


def end_sign_ins(account: Account, *, tenant: Tenant | None = None, reason: str,
                 authority: Authority | None = None, keep=None) -> int:
    """The one way an account's sign-ins end: everywhere (`tenant` None), or at `tenant`'s
    applications only. Its tokens (for that tenant's clients, or all) are revoked, and the clients
    that received tokens in its browser sign-ins are told (back-channel logout). The browser
    sign-ins end too, unless only one school's sign-ins end and the account is also used
    elsewhere: that school cannot sign the person out of the others, so its own applications stop
    accepting those sign-ins instead (sessions.end_at_tenant). `keep`: the person's own sign-in
    (a BrowserSession), which stays with its tokens ("every other sign-in ended")."""
    authority = authority or Authority.command_line()
    if tenant is None or not belongs_elsewhere(account, tenant):
        sessions.end_of_account(account, reason=reason, keep=keep)
    else:
        sessions.end_at_tenant(account, tenant, reason=reason)
    revoked = tokens.revoke(account=account, tenant=tenant, except_sid=keep.sid if keep is not None else None)
    audit.record(audit.SIGN_INS_ENDED, tenant=tenant, actor=authority.actor, subject=account, ip=authority.ip,
                 reason=reason, tokens_revoked=revoked)
    db.session.flush()
    return revoked


def remove_second_factors(account: Account) -> int:
    """Every authenticator app, security key, passkey and recovery code of the account goes (a reset
    by an administrator or a change of email address). Returns how many second factors there were."""
    from ..ratelimits import MFA_PER_ACCOUNT
    from .mfa import RECOVERY_PER_ACCOUNT

    count = db.session.scalar(select(func.count(MfaDevice.id)).where(MfaDevice.account_id == account.id)) or 0
    count += db.session.scalar(select(func.count(SecurityKey.id)).where(SecurityKey.account_id == account.id)) or 0
    db.session.execute(delete(MfaDevice).where(MfaDevice.account_id == account.id))
    db.session.execute(delete(SecurityKey).where(SecurityKey.account_id == account.id))
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.account_id == account.id))
    MFA_PER_ACCOUNT.clear(str(account.id))
    RECOVERY_PER_ACCOUNT.clear(str(account.id))
    return count


def reset_second_factor(account: Account, authority: Authority) -> int:
    """An administrator removes a member's second factors (a lost phone or key); they enrol
    again. Every sign-in of the account ends too: one made with a stolen password and a relayed
    code must not be the one that sets up the account's next second factor. The person is told."""
    _refuse_unless(changeable(account, authority).second_factor)
    removed = remove_second_factors(account)
    audit.record(audit.MFA_RESET, tenant=authority.tenant, actor=authority.actor, subject=account, ip=authority.ip,
                 devices=removed)
    end_sign_ins(account, reason="two-step verification reset", authority=authority)
    db.session.flush()
    mfa.tell_the_person(account, authority.tenant, reset=True)
    return removed


# --------------------------------------------------------------------------- the address


def email_proven(account: Account) -> None:
    """The person used a link mailed to the account's address: it is theirs (`email_verified`)."""
    account.email_verified_at = clock.now()


@dataclass
class EmailChange:
    old: str
    new: str
    #: A first-time link went to the new address (False: the mail could not be sent; resend later).
    link_sent: bool


def change_email(account: Account, new_email: str, authority: Authority) -> EmailChange | None:
    """Anyone but the person changes the account's address: the credentials go with the old one.

    The password is cleared (its history stays, so it cannot come back), second factors removed,
    every sign-in and outstanding link ended, the address is unverified until the person uses the
    first-time link sent to it, and the old address is told. None when nothing changed."""
    new_email = directory.validate_email(new_email)
    if new_email == account.email:
        return None
    _refuse_unless(changeable(account, authority).email, field="email")
    if directory.email_taken(account.provider, new_email, account.tenant, other_than=account):
        where = "in this school" if account.provider == "identity" else "for CPOMS SSO"
        raise Conflict(f"Another {providers.name(account.provider)} account already uses {new_email} {where}",
                       field="email")
    from ..reset import links

    old_email = account.email
    account.email = new_email
    account.email_verified_at = None
    account.password_hash = None
    remove_second_factors(account)
    links.void_links(account, purposes=links.ALL_PURPOSES)
    end_sign_ins(account, reason="email address changed", authority=authority)
    audit.record(audit.EMAIL_CHANGED, tenant=authority.tenant, actor=authority.actor, subject=account,
                 ip=authority.ip, old=old_email, new=new_email)
    db.session.flush()
    tenant = authority.tenant or _home_tenant(account)
    link_sent = False
    if tenant is not None:
        link_sent = mail.sent(lambda: links.send_invitation(account, tenant, requested_by=authority.actor,
                                                       ip=authority.ip))
        mail.sent(lambda: mail.send(messages.email_changed(account=account, tenant=tenant, old_email=old_email)))
    return EmailChange(old_email, new_email, link_sent)


def _home_tenant(account: Account) -> Tenant | None:
    """Where the platform's mail to the person comes from: their first school they may use."""
    for membership in sorted(account.memberships, key=lambda m: m.id):
        if membership.is_usable:
            return membership.tenant
    return account.memberships[0].tenant if account.memberships else None


# --------------------------------------------------------------------------- details and role


def update_details(membership: Membership, *, name: str, email: str, role: str, active: bool,
                   authority: Authority) -> dict:
    """A school admin saves a member's page: name, email address, role and access. Returns the
    changes made (for the page); refuses, naming the field, what the admin may not change."""
    account = membership.account
    directory.validate_role(role)
    name = directory.validate_name(name, required=True)
    email = directory.validate_email(email)
    allowed = changeable(account, authority)
    if name != account.name:
        _refuse_unless(allowed.name, field="name")
    if email != account.email:
        _refuse_unless(allowed.email, field="email")
        if directory.email_taken(account.provider, email, account.tenant, other_than=account):
            where = "in this school" if account.provider == "identity" else "for CPOMS SSO"
            raise Conflict(f"Another {providers.name(account.provider)} account already uses {email} {where}",
                           field="email")
    if role != membership.role:
        _refuse_unless(allowed.role, field="role")
    if not active and membership.active:
        _refuse_unless(allowed.access, field="active")

    changes: dict[str, list] = {}
    if name != account.name:
        changes["name"] = [account.name, name]
        account.name = name
    if role != membership.role:
        changes["role"] = [membership.role, role]
        membership.role = role
    if active and not membership.active:
        changes["active"] = [False, True]
        membership.active = True
    if changes:
        audit.record(audit.MEMBER_CHANGED, tenant=authority.tenant, actor=authority.actor, subject=account,
                     ip=authority.ip, changes=changes)
    if email != account.email:
        changed = change_email(account, email, authority)
        changes["email"] = [changed.old, changed.new]
    if not active and membership.active:
        deactivate(membership, authority)
        changes["active"] = [True, False]
    db.session.flush()
    return changes


# --------------------------------------------------------------------------- joining and leaving a school


@dataclass
class Joined:
    membership: Membership
    account: Account
    #: A new account was made (and, without a password, is invited to set one).
    created: bool
    #: An existing account was added: the membership waits for the person to accept it.
    pending: bool
    #: A mail to the person was sent (first-time or acceptance link); False with `mail_problem` set.
    mailed: bool = False
    mail_problem: str | None = None


def add_member(tenant: Tenant, *, provider: str, email: str, name: str, role: str, authority: Authority,
               mail: bool = True) -> Joined:
    """The one way a school gains a member. Identity: a new account of this school. SSO: a new
    account, or the existing one with a membership that waits for the person's acceptance (they are
    told which school added them). A new account without a password gets its first-time link.
    With `mail=False` the caller sends the mails later (`send_welcome`), e.g. after a CSV import."""
    directory.validate_provider(provider)
    directory.validate_role(role)
    email = directory.validate_email(email)
    name = directory.validate_name(name)
    problem = membership_conflict(tenant, provider, email)
    if problem:
        raise Conflict(problem, field="email")
    existing = directory.lookup(provider, email, tenant)
    if provider == "sso" and existing is not None:
        membership = _pending_membership(existing, tenant, role)
        joined = Joined(membership, existing, created=False, pending=True)
    else:
        account = revive_identity_account(existing, name) if existing is not None else directory.create_account(
            provider=provider, email=email, name=name, tenants=[tenant], role=role)
        if existing is not None:
            account.memberships.append(Membership(tenant_id=tenant.id, role=role, active=True,
                                                  accepted_at=clock.now()))
        joined = Joined(account.membership_in(tenant.id), account, created=True, pending=False)
    db.session.flush()
    audit.record(audit.MEMBER_ADDED, tenant=tenant, actor=authority.actor, subject=joined.account, ip=authority.ip,
                 provider=provider, role=role, email=email, new_account=joined.created,
                 waiting_to_accept=joined.pending or None)
    if mail:
        send_welcome(joined, tenant, authority)
    return joined


def membership_conflict(tenant: Tenant, provider: str, email: str) -> str | None:
    """Why `email` cannot be added with `provider` to `tenant`, or None."""
    existing = directory.lookup(provider, email, tenant)
    if existing is None or (existing.retired and provider == "identity"):
        return None
    membership = existing.membership_in(tenant.id)
    if provider == "sso" and membership is not None:
        if membership.is_pending:
            return f"{email} has already been added to this school and has not accepted yet"
        return f"{email} is already a CPOMS SSO user of this school"
    if provider == "identity":
        return f"{email} already has a CPOMS Identity account in this school"
    return None


def _pending_membership(account: Account, tenant: Tenant, role: str) -> Membership:
    membership = Membership(tenant_id=tenant.id, role=role, active=True, accepted_at=None)
    account.memberships.append(membership)
    db.session.flush()
    return membership


def send_welcome(joined: Joined, tenant: Tenant, authority: Authority) -> Joined:
    """Tell the person: an acceptance link for a waiting membership, a first-time link for a new
    account with no password. Records whether the mail went."""
    from ..reset import links

    if joined.pending:
        send = links.send_join_link
    elif not joined.account.has_password:
        send = links.send_invitation
    else:
        return joined
    try:
        send(joined.account, tenant, requested_by=authority.actor, ip=authority.ip)
    except DeliveryFailed as error:
        joined.mailed, joined.mail_problem = False, error.message
    else:
        joined.mailed = True
    return joined


def join_existing(account: Account, tenant: Tenant, *, role: str, authority: Authority) -> Joined:
    """Add an existing SSO account to another school (the command line's `user assign`): like
    `add_member`, the membership waits for the person to accept."""
    if account.provider != "sso":
        raise InvalidInput("Only a CPOMS SSO account can belong to several tenants", field="provider")
    return add_member(tenant, provider="sso", email=account.email, name=account.name, role=role, authority=authority)


def accept_membership(account: Account, tenant: Tenant) -> Membership | None:
    """The person used the acceptance link mailed to them: the membership counts from now, and the
    link proved the address. None when there is nothing waiting (already accepted or withdrawn)."""
    membership = account.membership_in(tenant.id)
    if membership is None:
        return None
    email_proven(account)
    if membership.accepted_at is not None:
        return membership
    membership.accepted_at = clock.now()
    audit.record(audit.MEMBER_ACCEPTED, tenant=tenant, actor=account, subject=account)
    db.session.flush()
    return membership


def withdraw_invitation(membership: Membership, authority: Authority) -> None:
    """A school takes back a membership the person has not accepted yet."""
    from ..reset import links

    if not membership.is_pending:
        raise InvalidInput("This user has already accepted; deactivate them instead.")
    account = membership.account
    links.void_links(account, purposes=(links.JOIN,), tenant=authority.tenant)
    account.memberships.remove(membership)
    audit.record(audit.MEMBER_REMOVED, tenant=authority.tenant, actor=authority.actor, subject=account,
                 ip=authority.ip, reason="invitation withdrawn")
    db.session.flush()


def deactivate(membership: Membership, authority: Authority) -> None:
    """The school refuses the member: sign-in and authorization there stop, their tokens for its
    applications are revoked, and (unless the account is also used elsewhere) they are signed out."""
    _refuse_unless(changeable(membership.account, authority).access, field="active")
    if not membership.active:
        return
    membership.active = False
    audit.record(audit.MEMBER_DEACTIVATED, tenant=membership.tenant, actor=authority.actor,
                 subject=membership.account, ip=authority.ip)
    end_sign_ins(membership.account, tenant=membership.tenant, reason="member deactivated", authority=authority)


# --------------------------------------------------------------------------- moving between providers


@dataclass
class Reassignment:
    membership: Membership
    account: Account
    previous_account: Account
    #: The new account waits for the person to accept the school (an existing SSO account).
    pending: bool
    mailed: bool


def move_to_provider(membership: Membership, provider: str, authority: Authority) -> Reassignment:
    """Move a member between Identity and SSO, keeping their place in the school (role, access, since).

    Identity -> SSO: the existing SSO account with that email takes the place, waiting for the
    person to accept (as when a school adds it), or a new invited one does; the local account is
    retired (no password, no sign-in) but kept for its history. SSO -> Identity: a local account of
    this school takes the place; the SSO account keeps its other schools. The person is told by
    mail which login to use from now on."""
    from ..reset import links

    directory.validate_provider(provider)
    old = membership.account
    tenant = membership.tenant
    if old.provider == provider:
        raise InvalidInput(f"This user already uses {providers.name(provider)}", field="provider")
    _refuse_unless(changeable(old, authority).provider, field="provider")

    pending = False
    if provider == "sso":
        new = directory.lookup("sso", old.email)
        if new is None:
            new = directory.create_account(provider="sso", email=old.email, name=old.name, tenants=[tenant],
                                           role=membership.role)
            # The membership that moves below is the one to keep (its id, role, access and date).
            new.memberships.clear()
            db.session.flush()
        else:
            pending = True
    else:
        new = directory.lookup("identity", old.email, tenant)
        new = revive_identity_account(new, old.name) if new is not None and new.retired else new
        if new is None:
            new = directory.create_account(provider="identity", email=old.email, name=old.name, tenants=[tenant])
            new.memberships.clear()
            db.session.flush()

    target = _move_membership(membership, old, new, tenant)
    if pending:
        target.accepted_at = None
    end_sign_ins(old, tenant=tenant, reason="provider reassigned", authority=authority)
    if old.provider == "identity":
        retire(old)
    db.session.flush()
    audit.record(audit.PROVIDER_REASSIGNED, tenant=tenant, actor=authority.actor, subject=new, ip=authority.ip,
                 from_provider=old.provider, to_provider=provider, previous_account_id=old.id, email=new.email,
                 waiting_to_accept=pending or None)
    joined = send_welcome(Joined(target, new, created=not pending, pending=pending), tenant, authority)
    notified = mail.sent(lambda: mail.send(messages.provider_changed(account=new, tenant=tenant, provider=provider,
                                                                waiting_to_accept=pending)))
    return Reassignment(target, new, old, pending, joined.mailed and notified)


def _move_membership(membership: Membership, old: Account, new: Account, tenant: Tenant) -> Membership:
    existing = new.membership_in(tenant.id)
    if existing is None:
        membership.account = new  # the same row: its id, role, access and date go with the person
        return membership
    existing.role = membership.role
    existing.active = membership.active
    existing.created_at = min(existing.created_at or membership.created_at, membership.created_at)
    old.memberships.remove(membership)
    db.session.flush()
    return existing


def revive_identity_account(account: Account, name: str) -> Account:
    """A retired local account comes back for its person (keeping its history, but not its old
    password, second factors or memberships); a live one is returned as it is."""
    if not account.retired:
        return account
    account.retired = False
    account.password_hash = None
    account.email_verified_at = None
    sessions.end_of_account(account, reason="local account revived")
    remove_second_factors(account)
    if name:
        account.name = name
    for old_membership in list(account.memberships):
        account.memberships.remove(old_membership)
    db.session.flush()
    return account


def retire(account: Account) -> None:
    """A local account whose person moved to SSO: it can no longer sign in, and keeps its history."""
    from ..reset import links

    account.retired = True
    account.password_hash = None
    sessions.end_of_account(account, reason="account retired")
    links.void_links(account, purposes=links.ALL_PURPOSES)
