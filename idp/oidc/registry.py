"""The client registry: register, change, rotate and delete a tenant's OIDC clients.

Redirect URIs are validated strictly (RFC 9700 2.1, OIDC Registration 2):
absolute, no fragment, https except for loopback development addresses."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import delete, select, update

from flask import current_app

from .. import clock
from ..errors import InvalidInput, NotFound
from ..extensions import db
from ..models import AuthorizationCode, Client, InitialAccessToken, Tenant
from ..models.base import check_length, hash_secret, new_secret
from . import tokens

LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
#: How many redirect URIs (or post-logout redirect URIs) one client may register.
MAX_URIS = 20
#: How long an initial access token (RFC 7591 3) may be used to register a client.
INITIAL_ACCESS_TOKEN_TTL = timedelta(days=7)
#: Where the OIDC server keeps its per-process copies of clients (see server.query_client).
CLIENT_CACHE_KEY = "idp_oidc_clients"


@dataclass
class RegisteredClient:
    client: Client
    #: Shown once; only its hash is kept.
    client_secret: str | None


def validate_redirect_uri(uri: str, *, what: str = "redirect URI", field: str = "redirect_uris") -> str:
    uri = (uri or "").strip() if isinstance(uri, str) else ""
    # A code keeps the URI it was issued for: a registered one must fit that column.
    check_length(uri, AuthorizationCode.redirect_uri, field=field, label=f"Each {what}")
    parts = urlsplit(uri)
    if not parts.scheme or not parts.netloc:
        raise InvalidInput(f"The {what} {uri!r} must be an absolute URL", field=field)
    if parts.fragment or "#" in uri:
        raise InvalidInput(f"The {what} {uri!r} must not contain a fragment (#...)", field=field)
    if parts.scheme == "http" and (parts.hostname or "") not in LOOPBACK_HOSTS:
        raise InvalidInput(f"The {what} {uri!r} must use https (http is allowed only for 127.0.0.1 or localhost)", field=field)
    if parts.scheme not in ("http", "https"):
        raise InvalidInput(f"The {what} {uri!r} must use https", field=field)
    return uri


def _uris(values, *, what: str, field: str, required: bool) -> list[str]:
    values = list(values or [])
    if required and not values:
        raise InvalidInput(f"A client needs at least one {what}", field=field)
    if len(values) > MAX_URIS:
        raise InvalidInput(f"A client can register at most {MAX_URIS} {what}s", field=field)
    return [validate_redirect_uri(uri, what=what, field=field) for uri in values]


def _backchannel_uri(uri: str | None) -> str | None:
    """OpenID Connect Back-Channel Logout 2.2: an absolute URL without a fragment (https but for
    loopback development addresses), where logout tokens are POSTed; None for none."""
    if uri is None or (isinstance(uri, str) and not uri.strip()):
        return None
    return validate_redirect_uri(uri, what="back-channel logout URI", field="backchannel_logout_uri")


def _name(name: str | None) -> str:
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name:
        raise InvalidInput("A client needs a name", field="name")
    return check_length(name, Client.name, field="name", label="The application's name")


def new_client_id() -> str:
    """A random public client identifier (144 bits), for every way a client is registered."""
    return secrets.token_urlsafe(18)


def register_client(
    tenant: Tenant,
    *,
    name: str,
    redirect_uris: list[str],
    post_logout_redirect_uris: list[str] | None = None,
    public: bool = False,
    grant_types: list[str] | None = None,
    token_endpoint_auth_method: str | None = None,
    client_id: str | None = None,
    client_secret: str | None = None,
    backchannel_logout_uri: str | None = None,
    backchannel_logout_session_required: bool = False,
) -> RegisteredClient:
    """A new client of `tenant`. `client_id`/`client_secret` are given only by dynamic
    registration, whose response already carries them (RFC 7591 3.2.1)."""
    name = _name(name)
    uris = _uris(redirect_uris, what="redirect URI", field="redirect_uris", required=True)
    logout_uris = _uris(post_logout_redirect_uris, what="post-logout redirect URI",
                        field="post_logout_redirect_uris", required=False)
    secret = None if public else (client_secret or new_secret(32))
    client = Client(
        client_id=client_id or new_client_id(),
        tenant_id=tenant.id,
        name=name,
        secret_hash=hash_secret(secret) if secret else None,
        is_public=public,
        redirect_uris=uris,
        post_logout_redirect_uris=logout_uris,
        grant_types=grant_types or ["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method=token_endpoint_auth_method or ("none" if public else "client_secret_basic"),
        backchannel_logout_uri=_backchannel_uri(backchannel_logout_uri),
        backchannel_logout_session_required=bool(backchannel_logout_session_required),
    )
    db.session.add(client)
    db.session.flush()
    return RegisteredClient(client=client, client_secret=secret)


def update_client(
    client: Client,
    *,
    name: str | None = None,
    redirect_uris: list[str] | None = None,
    post_logout_redirect_uris: list[str] | None = None,
    backchannel_logout_uri: str | None = ...,
    backchannel_logout_session_required: bool | None = None,
) -> Client:
    """Change what is given; `backchannel_logout_uri` None (or empty) removes it, leaving it out keeps it."""
    if name is not None:
        client.name = _name(name)
    if redirect_uris is not None:
        client.redirect_uris = _uris(redirect_uris, what="redirect URI", field="redirect_uris", required=True)
    if post_logout_redirect_uris is not None:
        client.post_logout_redirect_uris = _uris(post_logout_redirect_uris, what="post-logout redirect URI",
                                                 field="post_logout_redirect_uris", required=False)
    if backchannel_logout_uri is not ...:
        client.backchannel_logout_uri = _backchannel_uri(backchannel_logout_uri)
    if backchannel_logout_session_required is not None:
        client.backchannel_logout_session_required = bool(backchannel_logout_session_required)
    db.session.flush()
    forget_cached_client(client.client_id)
    return client


def rotate_secret(client: Client) -> str:
    if client.is_public:
        raise InvalidInput("A public client has no secret")
    secret = new_secret(32)
    client.secret_hash = hash_secret(secret)
    db.session.flush()
    forget_cached_client(client.client_id)
    return secret


def find_client(client_id: str) -> Client | None:
    return db.session.scalars(select(Client).where(Client.client_id == client_id)).first()


def tenant_client(tenant: Tenant, client_id: str) -> Client:
    """A client of `tenant` only: another tenant's client id is simply not found."""
    client = db.session.scalars(
        select(Client).where(Client.client_id == client_id, Client.tenant_id == tenant.id)
    ).first()
    if client is None:
        raise NotFound("No such application")
    return client


def delete_client(client: Client) -> int:
    """Delete a client: its live tokens are revoked and its codes discarded first, so nothing it
    was issued keeps working (every way of deleting a client comes through here). Returns how many
    tokens were revoked."""
    client_id = client.client_id
    revoked = tokens.revoke(client_id=client_id, tenant=client.tenant_id)
    db.session.execute(
        delete(AuthorizationCode)
        .where(AuthorizationCode.client_id == client_id)
        .execution_options(synchronize_session=False)
    )
    db.session.delete(client)
    db.session.flush()
    forget_cached_client(client_id)
    return revoked


def forget_cached_client(client_id: str) -> None:
    """This process stops using its cached copy at once; other workers within
    server.CLIENT_CACHE_SECONDS."""
    current_app.extensions.get(CLIENT_CACHE_KEY, {}).pop(client_id, None)


def issue_initial_access_token(tenant: Tenant, created_by=None, *, ttl: timedelta = INITIAL_ACCESS_TOKEN_TTL) -> str:
    """A bearer token that lets one dynamic registration (RFC 7591 3) create a client in `tenant`.
    Shown once; only its hash is kept."""
    token = new_secret(32)
    db.session.add(InitialAccessToken(
        tenant_id=tenant.id,
        token_hash=hash_secret(token),
        created_by_account_id=getattr(created_by, "id", created_by),
        created_at=clock.now(),
        expires_at=clock.now() + ttl,
    ))
    db.session.flush()
    return token


def _usable_initial_access_token(token: str | None) -> InitialAccessToken | None:
    if not token:
        return None
    row = db.session.scalars(
        select(InitialAccessToken).where(InitialAccessToken.token_hash == hash_secret(token))
    ).first()
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and clock.now() >= row.expires_at:
        return None
    return row


def tenant_for_initial_access_token(token: str | None) -> Tenant | None:
    """The tenant a still-usable initial access token registers clients in, or None."""
    row = _usable_initial_access_token(token)
    return row.tenant if row is not None else None


def use_initial_access_token(token: str | None) -> Tenant | None:
    """Spend the token on one registration: its tenant, or None when it is not usable."""
    row = _usable_initial_access_token(token)
    if row is None:
        return None
    # Single use: of two registrations racing with one token, only one spends it.
    spent = db.session.execute(
        update(InitialAccessToken)
        .where(InitialAccessToken.id == row.id, InitialAccessToken.revoked_at.is_(None))
        .values(revoked_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    if spent.rowcount != 1:
        return None
    return row.tenant
