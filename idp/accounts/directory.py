"""Which account an email means, and the uniqueness that makes the answer one account: the one
place that knows the Identity vs SSO rules.

- identity: an account local to one tenant; its email is unique within that tenant (a retired
  account keeps its address reserved, with its history).
- sso: one global account per email, a member of one or more tenants.

New accounts are made here too (`create_account`); what an existing account may become is
`lifecycle`'s business."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import exists, select
from sqlalchemy.orm import joinedload, undefer

from .. import clock
from ..errors import Conflict, InvalidInput, NotFound
from ..extensions import db
from ..models import Account, Membership, PasswordHistory, Tenant, normalise_email
from ..models.accounts import ROLES
from ..models.base import check_length
from . import passwords, providers


def validate_provider(provider: str) -> str:
    if provider not in providers.KEYS:
        raise InvalidInput(f"Unknown authentication provider {provider!r}: use identity or sso", field="provider")
    return provider


def validate_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"Unknown role {role!r}: use staff or admin", field="role")
    return role


def validate_email(email: str) -> str:
    from email_validator import EmailNotValidError
    from email_validator import validate_email as check

    normalised = normalise_email(email)
    check_length(normalised, Account.email, field="email", label="The email address")
    try:
        check(normalised, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidInput(f"{email!r} is not a valid email address: {error}", field="email") from None
    return normalised


def validate_name(name: str | None, *, required: bool = False) -> str:
    name = (name or "").strip()
    if required and not name:
        raise InvalidInput("Enter the user's name", field="name")
    return check_length(name, Account.name, field="name", label="The name")


def _holder(provider: str, email: str, tenant: Tenant | None) -> list:
    """Criteria for the account that holds (provider, email) — on `tenant` for Identity."""
    email = normalise_email(email)
    if provider == "identity":
        if tenant is None:
            raise InvalidInput("An Identity account is looked up within a tenant")
        return [Account.provider == "identity", Account.tenant_id == tenant.id, Account.email == email]
    if provider == "sso":
        return [Account.provider == "sso", Account.email == email]
    raise InvalidInput(f"Unknown authentication provider {provider!r}: use identity or sso", field="provider")


def lookup(provider: str, email: str, tenant: Tenant | None = None) -> Account | None:
    """The account holding `email` for `provider` (on `tenant` for Identity), retired or not."""
    return db.session.scalars(select(Account).where(*_holder(provider, email, tenant))).first()


def email_taken(provider: str, email: str, tenant: Tenant | None = None, *, other_than: Account | None = None) -> bool:
    """Uniqueness per provider: Identity within its tenant (retired accounts included), SSO globally."""
    query = select(Account.id).where(*_holder(provider, email, tenant))
    if other_than is not None:
        query = query.where(Account.id != other_than.id)
    return db.session.scalar(query.limit(1)) is not None


def find_account(tenant: Tenant | None, provider: str, email: str) -> Account | None:
    """The account that `email` names on `tenant`'s login page for `provider` (its membership may be
    deactivated or waiting for acceptance: the caller asks `may_sign_in`), or on the platform's
    own sign-in page (`tenant` None: SSO accounts only)."""
    if provider not in providers.KEYS or (tenant is None and provider != "sso"):
        return None
    query = select(Account).where(*_holder(provider, email, tenant), Account.retired.is_(False))
    if provider == "sso" and tenant is not None:
        query = query.join(Membership, Membership.account_id == Account.id).where(Membership.tenant_id == tenant.id)
    # Memberships come in the same statement: the login checks the usable membership next.
    query = query.options(joinedload(Account.memberships), undefer(Account.mfa_enrolled),
                          undefer(Account.has_security_key))
    return db.session.scalars(query).unique().first()


def get_account_by_email(provider: str, email: str, tenant: Tenant | None) -> Account:
    """For the CLI and operators: the live account or NotFound."""
    account = lookup(provider, email, tenant)
    if account is None or account.retired:
        raise NotFound(f"No {providers.name(provider)} account with email {normalise_email(email)}")
    return account


def active_membership(account: Account | None, tenant: Tenant) -> Membership | None:
    """The account's membership of `tenant` if it may use that tenant now (not deactivated by the
    school, accepted by the person, account not retired)."""
    if account is None or account.retired:
        return None
    membership = account.membership_in(tenant.id)
    if membership is None or not membership.is_usable:
        return None
    return membership


def may_sign_in(account: Account | None, tenant: Tenant | None) -> bool:
    """Whether the account may sign in on `tenant`'s login page (a usable member), or on the
    platform's own sign-in page (an SSO account that is an operator or may use some school)."""
    if account is None or account.retired:
        return False
    if tenant is not None:
        return active_membership(account, tenant) is not None
    return account.provider == "sso" and (account.is_operator or any(m.is_usable for m in account.memberships))


@dataclass(frozen=True)
class LoginPage:
    """A school's login (or reset) page: the school, and which providers its members use."""

    tenant: Tenant
    has_sso: bool
    has_identity: bool

    def provider(self, requested: str | None) -> tuple[str, bool]:
        """The provider the page shows, and whether it offers the switch. The switch exists only
        where the school has SSO users (help page). Unless the person chose, a school whose members
        are all SSO (typically StaffSafe) opens on SSO."""
        if not self.has_sso:
            return "identity", False
        if requested in providers.KEYS:
            return requested, True
        return ("identity" if self.has_identity else "sso"), True


def login_page(slug: str) -> LoginPage | None:
    """The school named `slug` and its providers, in one statement (the login page's only read)."""
    has_sso = exists().where(Membership.tenant_id == Tenant.id, Membership.account_id == Account.id,
                             Account.provider == "sso").correlate(Tenant)
    has_identity = exists().where(Account.provider == "identity", Account.tenant_id == Tenant.id).correlate(Tenant)
    row = db.session.execute(select(Tenant, has_sso, has_identity).where(Tenant.slug == slug)).first()
    return LoginPage(*row) if row is not None else None


def page_provider(tenant: Tenant, requested: str | None) -> tuple[str, bool]:
    """`LoginPage.provider` for a school already loaded."""
    return login_page(tenant.slug).provider(requested)


def create_account(
    *,
    provider: str,
    email: str,
    tenants: list[Tenant],
    role: str = "staff",
    name: str = "",
    password: str | None = None,
    is_operator: bool = False,
) -> Account:
    """A new account, a member of `tenants` (the schools that create it, so nobody need accept).
    Without a password the account is invited: the person sets one through a link mailed to them."""
    validate_provider(provider)
    validate_role(role)
    email = validate_email(email)
    name = validate_name(name)
    if not tenants:
        raise InvalidInput("An account needs at least one tenant")
    if provider == "identity" and len(tenants) != 1:
        raise InvalidInput("An Identity account belongs to exactly one tenant")
    if is_operator and provider != "sso":
        # Operators manage every school: their account cannot belong to one.
        raise InvalidInput("A platform operator must have a CPOMS SSO account", field="provider")
    if email_taken(provider, email, tenants[0]):
        where = f" at {tenants[0].slug}" if provider == "identity" else ""
        raise Conflict(f"{email} already has a {providers.name(provider)} account{where}", field="email")

    account = Account(
        provider=provider,
        email=email,
        name=name or email,
        tenant_id=tenants[0].id if provider == "identity" else None,
        is_operator=is_operator,
    )
    db.session.add(account)
    now = clock.now()
    for tenant in tenants:
        account.memberships.append(Membership(tenant_id=tenant.id, role=role, active=True, accepted_at=now))
    if password is not None:
        set_password_hash(account, passwords.hash_password(password))
    db.session.flush()
    return account


def set_password_hash(account: Account, password_hash: str) -> None:
    """Store a new password hash and keep it in the history (no reuse, ever)."""
    account.password_hash = password_hash
    account.password_changed_at = clock.now()
    db.session.add(PasswordHistory(account=account, password_hash=password_hash))
