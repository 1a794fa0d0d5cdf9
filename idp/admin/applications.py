"""Admin > Applications: a tenant's OIDC clients (register, edit, rotate, delete) and the initial access
tokens that let a developer register one dynamically. Client ids from another tenant are not found.

The registry (idp.oidc.registry) owns the protocol rules; this adds the tenant scoping and the audit."""

from __future__ import annotations

from sqlalchemy import func, select

from .. import audit
from ..extensions import db
from ..models import Account, Client, Tenant
from ..oidc import registry


def list_clients(tenant: Tenant) -> list[Client]:
    return list(
        db.session.scalars(select(Client).where(Client.tenant_id == tenant.id).order_by(func.lower(Client.name)))
    )


def parse_uri_lines(text: str | None) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def register_application(
    tenant: Tenant,
    *,
    name: str,
    redirect_uris: list[str],
    post_logout_redirect_uris: list[str],
    public: bool,
    actor: Account | None,
    ip: str | None = None,
    backchannel_logout_uri: str | None = None,
    backchannel_logout_session_required: bool = False,
):
    """Register a client; the returned secret is shown once and only its hash is kept."""
    registered = registry.register_client(
        tenant, name=name, redirect_uris=redirect_uris,
        post_logout_redirect_uris=post_logout_redirect_uris, public=public,
        backchannel_logout_uri=backchannel_logout_uri,
        backchannel_logout_session_required=backchannel_logout_session_required,
    )
    audit.record(audit.CLIENT_REGISTERED, tenant=tenant, actor=actor, ip=ip,
                 client_id=registered.client.client_id, name=registered.client.name, public=public)
    return registered


def update_application(
    tenant: Tenant,
    client_id: str,
    *,
    name: str,
    redirect_uris: list[str],
    post_logout_redirect_uris: list[str],
    actor: Account | None,
    ip: str | None = None,
    backchannel_logout_uri: str | None = None,
    backchannel_logout_session_required: bool = False,
) -> Client:
    client = registry.tenant_client(tenant, client_id)
    before = client.client_metadata
    registry.update_client(
        client, name=name, redirect_uris=redirect_uris, post_logout_redirect_uris=post_logout_redirect_uris,
        backchannel_logout_uri=backchannel_logout_uri,
        backchannel_logout_session_required=backchannel_logout_session_required,
    )
    after = client.client_metadata
    changed = sorted(k for k in after.keys() | before.keys() if after.get(k) != before.get(k))
    if changed:
        audit.record(audit.CLIENT_CHANGED, tenant=tenant, actor=actor, ip=ip, client_id=client.client_id,
                     changed=changed)
    return client


def rotate_application_secret(tenant: Tenant, client_id: str, *, actor: Account | None, ip: str | None = None) -> str:
    client = registry.tenant_client(tenant, client_id)
    secret = registry.rotate_secret(client)
    audit.record(audit.CLIENT_CHANGED, tenant=tenant, actor=actor, ip=ip, client_id=client.client_id,
                 changed=["client_secret"])
    return secret


def delete_application(tenant: Tenant, client_id: str, *, actor: Account | None, ip: str | None = None) -> None:
    """Delete a client; its live tokens are revoked first so nothing it issued keeps working."""
    client = registry.tenant_client(tenant, client_id)
    client_id, name = client.client_id, client.name
    revoked = registry.delete_client(client)
    audit.record(audit.CLIENT_DELETED, tenant=tenant, actor=actor, ip=ip, client_id=client_id, name=name,
                 tokens_revoked=revoked)


def create_initial_access_token(tenant: Tenant, *, actor: Account | None, ip: str | None = None) -> str:
    """A token that lets a dynamic registration (RFC 7591) create a client in this tenant; shown once."""
    token = registry.issue_initial_access_token(tenant, created_by=actor)
    audit.record(audit.INITIAL_ACCESS_TOKEN_CREATED, tenant=tenant, actor=actor, ip=ip)
    return token
