"""Platform operators: every tenant with its member and client counts, creating and changing tenants."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from .. import audit, tenants
from ..accounts import lifecycle
from ..errors import NotAllowed, NotFound
from ..extensions import db
from ..models import Account, Client, Membership, Tenant, normalise_email

TENANT_FIELDS = ("name", "product", "timezone", "require_2fa", "admins_phishing_resistant", "hide_unknown_email",
                 "session_max_age", "session_idle_timeout")


def require_operator(account: Account | None) -> Account:
    if account is None or account.retired or not account.is_operator:
        raise NotAllowed("Only CPOMS platform operators can manage tenants.")
    return account


@dataclass
class TenantSummary:
    tenant: Tenant
    members: int
    clients: int


def list_tenants() -> list[TenantSummary]:
    """Every tenant with its counts in one statement (correlated counts use the tenant_id indexes)."""
    members = (
        select(func.count(Membership.id)).where(Membership.tenant_id == Tenant.id).correlate(Tenant).scalar_subquery()
    )
    clients = select(func.count(Client.id)).where(Client.tenant_id == Tenant.id).correlate(Tenant).scalar_subquery()
    rows = db.session.execute(select(Tenant, members, clients).order_by(Tenant.slug)).all()
    return [TenantSummary(*row) for row in rows]


def get_tenant(slug: str) -> Tenant:
    tenant = tenants.find_tenant(slug)
    if tenant is None:
        raise NotFound("No such tenant")
    return tenant


def create_tenant(*, actor: Account | None, ip: str | None = None, **values) -> Tenant:
    tenant = tenants.create_tenant(**values)
    audit.record(audit.TENANT_CREATED, tenant=tenant, actor=actor, ip=ip, slug=tenant.slug,
                 **{key: getattr(tenant, key) for key in TENANT_FIELDS})
    return tenant


def update_tenant(slug: str, *, actor: Account | None, ip: str | None = None, **values) -> Tenant:
    tenant = get_tenant(slug)
    before = {key: getattr(tenant, key) for key in TENANT_FIELDS}
    tenants.update_tenant(tenant, **{k: v for k, v in values.items() if k in TENANT_FIELDS})
    changes = {key: [before[key], getattr(tenant, key)] for key in TENANT_FIELDS if before[key] != getattr(tenant, key)}
    if changes:
        audit.record(audit.TENANT_CHANGED, tenant=tenant, actor=actor, ip=ip, changes=changes)
    return tenant


def find_people(email: str) -> list[Account]:
    """Every account with this address (an SSO account, and Identity accounts at any school), with
    their memberships: what an operator needs to help a person."""
    email = normalise_email(email)
    if not email:
        return []
    return list(db.session.scalars(
        select(Account).where(Account.email == email).order_by(Account.provider, Account.id)
    ))


def get_person(account_id) -> Account:
    account = db.session.get(Account, account_id) if isinstance(account_id, int) else None
    if account is None:
        raise NotFound("No such account")
    return account


def end_person_sign_ins(account: Account, *, actor: Account | None, ip: str | None = None) -> int:
    """An operator ends every sign-in of the person, at every school."""
    return lifecycle.end_sign_ins(account, reason="ended by a platform operator",
                                  authority=lifecycle.Authority(actor=actor, ip=ip))
