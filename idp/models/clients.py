"""OIDC clients (relying parties) of a tenant, and tenant-scoped initial access tokens (RFC 7591)."""

from __future__ import annotations

from datetime import datetime

from authlib.oauth2.rfc6749 import ClientMixin
from authlib.oauth2.rfc6749.util import list_to_scope, scope_to_list
from sqlalchemy import JSON, Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .. import clock
from ..extensions import db
from .base import UTCDateTime, secret_matches

SUPPORTED_SCOPES = ("openid", "profile", "email", "offline_access")


class Client(db.Model, ClientMixin):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    #: SHA-256 of the secret; NULL for public clients.
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    is_public: Mapped[bool] = mapped_column(Boolean, default=False)
    redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list] = mapped_column(JSON, default=list)
    grant_types: Mapped[list] = mapped_column(
        JSON, default=lambda: ["authorization_code", "refresh_token"]
    )
    response_types: Mapped[list] = mapped_column(JSON, default=lambda: ["code"])
    scope: Mapped[str] = mapped_column(String(200), default="openid profile email offline_access")
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(40), default="client_secret_basic")
    #: OpenID Connect Back-Channel Logout 1.0: where logout tokens are POSTed, and whether the
    #: client needs `sid` in them (we always send it).
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(2000))
    backchannel_logout_session_required: Mapped[bool] = mapped_column(Boolean, default=False)
    #: RFC 7592: SHA-256 of the registration access token of a dynamically registered client.
    registration_token_hash: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    tenant = relationship("Tenant", lazy="joined")

    # --- authlib ClientMixin ---
    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Exact matching only: a default is used solely when exactly one URI is registered.
        if len(self.redirect_uris) == 1:
            return self.redirect_uris[0]
        return None

    def get_allowed_scope(self, scope: str) -> str:
        if not scope:
            return ""
        allowed = set(scope_to_list(self.scope))
        return list_to_scope([s for s in scope_to_list(scope) if s in allowed])

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        # RFC 9700 2.1: exact string matching, no wildcards or prefix matches.
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return secret_matches(client_secret, self.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.is_public:
            return method == "none"
        if endpoint == "token":
            return method in ("client_secret_basic", "client_secret_post")
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type in self.response_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    # Used by authlib's end-session endpoint and registration management.
    @property
    def client_metadata(self) -> dict:
        return {
            "client_name": self.name,
            "redirect_uris": list(self.redirect_uris),
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
            "grant_types": list(self.grant_types),
            "response_types": list(self.response_types),
            "scope": self.scope,
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            **({"backchannel_logout_uri": self.backchannel_logout_uri,
                "backchannel_logout_session_required": bool(self.backchannel_logout_session_required)}
               if self.backchannel_logout_uri else {}),
        }

    def __repr__(self) -> str:
        return f"<Client {self.client_id}>"


class InitialAccessToken(db.Model):
    """Lets a dynamic registration create a client in one tenant (RFC 7591 3)."""

    __tablename__ = "initial_access_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenants.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by_account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    tenant = relationship("Tenant", lazy="joined")
