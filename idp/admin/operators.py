"""Platform operators: every tenant with its member and client counts, creating and changing tenants."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from .. import audit, tenants
from ..errors import NotAllowed, NotFound
from ..extensions import db
from ..models import Account, Client, Membership, Tenant

TENANT_FIELDS = ("name", "product", "timezone", "require_2fa", "hide_unknown_email")


def require_operator(account: Account | None) -> Account:
    if account is None or account.retired or not account.is_operator:
        raise NotAllowed("Only CPOMS platform operators can manage tenants.")
    return account


def home_tenant(account: Account) -> Tenant | None:
    """The school whose pages an operator's sign-in steps (second factor, enrolment) are shown in."""
    usable = sorted((m for m in account.memberships if m.is_usable), key=lambda m: m.id)
    return usable[0].tenant if usable else None


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
