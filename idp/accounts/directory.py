"""Which account an email means: the one place that knows the Identity vs SSO rules.

- identity: an account local to one tenant; email unique within that tenant.
- sso: one global account per email, a member of one or more tenants.
"""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import joinedload, undefer

from ..errors import Conflict, InvalidInput, NotFound
from ..extensions import db
from ..models import Account, Membership, PasswordHistory, Tenant, normalise_email
from ..models.accounts import PROVIDERS, ROLES
from . import passwords


def validate_provider(provider: str) -> str:
    if provider not in PROVIDERS:
        raise InvalidInput(f"Unknown authentication provider {provider!r}: use identity or sso")
    return provider


def validate_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"Unknown role {role!r}: use staff or admin")
    return role


def validate_email(email: str) -> str:
    from email_validator import EmailNotValidError
    from email_validator import validate_email as check

    normalised = normalise_email(email)
    try:
        check(normalised, check_deliverability=False)
    except EmailNotValidError as error:
        raise InvalidInput(f"{email!r} is not a valid email address: {error}") from None
    return normalised


def find_account(tenant: Tenant, provider: str, email: str) -> Account | None:
    """The account that `email` names on `tenant`'s login page for `provider`, member or not active."""
    email = normalise_email(email)
    if provider == "identity":
        query = select(Account).where(
            Account.provider == "identity", Account.tenant_id == tenant.id, Account.email == email
        )
    elif provider == "sso":
        query = (
            select(Account)
            .join(Membership, Membership.account_id == Account.id)
            .where(Account.provider == "sso", Account.email == email, Membership.tenant_id == tenant.id)
        )
    else:
        return None
    # Memberships come in the same statement: the login checks the active membership next.
    query = query.where(Account.retired.is_(False)).options(
        joinedload(Account.memberships), undefer(Account.mfa_enrolled)
    )
    return db.session.scalars(query).unique().first()


def find_sso_account(email: str) -> Account | None:
    return db.session.scalars(
        select(Account).where(Account.provider == "sso", Account.email == normalise_email(email))
    ).first()


def active_membership(account: Account, tenant: Tenant) -> Membership | None:
    """The account's membership of `tenant` if it may use that tenant now."""
    if account.retired:
        return None
    membership = account.membership_in(tenant.id)
    if membership is None or not membership.active:
        return None
    return membership


def tenant_has_sso_members(tenant: Tenant) -> bool:
    """Whether the login page offers the provider switch."""
    return db.session.scalar(
        select(
            exists().where(
                Membership.tenant_id == tenant.id,
                Membership.account_id == Account.id,
                Account.provider == "sso",
            )
        )
    )


def page_provider(tenant: Tenant, requested: str | None) -> tuple[str, bool]:
    """The provider a tenant's login and reset pages show, and whether they offer the switch.

    The switch exists only where the tenant has SSO members (help page). Unless the
    person chose, a tenant whose members are all SSO (typically StaffSafe) opens on SSO."""
    has_sso, has_identity = db.session.execute(
        select(
            exists().where(
                Membership.tenant_id == tenant.id, Membership.account_id == Account.id, Account.provider == "sso"
            ),
            exists().where(Account.provider == "identity", Account.tenant_id == tenant.id),
        )
    ).one()
    if not has_sso:
        return "identity", False
    if requested in PROVIDERS:
        return requested, True
    return ("identity" if has_identity else "sso"), True


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
    """Create an account and its memberships. Without a password the account is invited."""
    validate_provider(provider)
    validate_role(role)
    email = validate_email(email)
    if not tenants:
        raise InvalidInput("An account needs at least one tenant")
    if provider == "identity" and len(tenants) != 1:
        raise InvalidInput("An Identity account belongs to exactly one tenant")
    if provider == "identity":
        if find_account(tenants[0], "identity", email) is not None or _identity_email_taken(tenants[0], email):
            raise Conflict(f"{email} already has a CPOMS Identity account at {tenants[0].slug}")
    elif find_sso_account(email) is not None:
        raise Conflict(f"{email} already has a CPOMS SSO account")

    account = Account(
        provider=provider,
        email=email,
        name=name.strip() or email,
        tenant_id=tenants[0].id if provider == "identity" else None,
        is_operator=is_operator,
    )
    db.session.add(account)
    for tenant in tenants:
        account.memberships.append(Membership(tenant_id=tenant.id, role=role, active=True))
    if password is not None:
        set_password_hash(account, passwords.hash_password(password))
    db.session.flush()
    return account


def _identity_email_taken(tenant: Tenant, email: str) -> bool:
    return db.session.scalar(
        select(
            exists().where(
                Account.provider == "identity", Account.tenant_id == tenant.id, Account.email == email
            )
        )
    )


def add_membership(account: Account, tenant: Tenant, role: str = "staff") -> Membership:
    """Make an SSO account a member of another tenant (Identity accounts have exactly one)."""
    validate_role(role)
    if account.provider != "sso":
        raise InvalidInput("Only a CPOMS SSO account can belong to several tenants")
    existing = account.membership_in(tenant.id)
    if existing is not None:
        existing.role = role
        existing.active = True
        return existing
    membership = Membership(tenant_id=tenant.id, role=role, active=True)
    account.memberships.append(membership)
    db.session.flush()
    return membership


def set_password_hash(account: Account, password_hash: str) -> None:
    """Store a new password hash and keep it in the history (no reuse, ever)."""
    from .. import clock

    account.password_hash = password_hash
    account.password_changed_at = clock.now()
    db.session.add(PasswordHistory(account=account, password_hash=password_hash))


def get_account_by_email(provider: str, email: str, tenant: Tenant | None) -> Account:
    """For the CLI/admin: the account or NotFound."""
    if provider == "sso":
        account = find_sso_account(email)
    else:
        if tenant is None:
            raise InvalidInput("An Identity account is looked up within a tenant")
        account = db.session.scalars(
            select(Account).where(
                Account.provider == "identity",
                Account.tenant_id == tenant.id,
                Account.email == normalise_email(email),
            )
        ).first()
    if account is None:
        raise NotFound(f"No {provider} account with email {email}")
    return account
