"""authlib endpoints, filled in: revocation (RFC 7009), introspection (RFC 7662),
RP-initiated logout (end_session) and the bearer-token check behind userinfo."""

from __future__ import annotations

from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc6750 import BearerTokenValidator, InvalidTokenError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.rpinitiated import EndSessionEndpoint
from flask import current_app

from .. import audit
from ..accounts import directory
from ..auth import session
from ..web import client_ip
from . import keys, tokens


def _issuer() -> str:
    return current_app.config["SETTINGS"].issuer


class TokenRevocation(RevocationEndpoint):
    # Public clients revoke their own tokens with their client_id alone (RFC 7009 2.1).
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def query_token(self, token_string, token_type_hint):
        return tokens.find_presented_token(token_string)

    def revoke_token(self, token, request):
        tokens.revoke_presented_token(token, ip=client_ip())


class TokenIntrospection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def query_token(self, token_string, token_type_hint):
        return tokens.find_presented_token(token_string)

    def check_permission(self, token, client, request):
        # A school's applications may look at that school's tokens only: anything else is
        # reported as inactive, exactly like an unknown token.
        return token.row.tenant_id == client.tenant_id

    def create_introspection_payload(self, token):
        if token is not None:
            tenant = _token_tenant(token.row)
            if tenant is None or directory.active_membership(token.row.account, tenant) is None:
                return {"active": False}
        return super().create_introspection_payload(token)

    def introspect_token(self, token):
        row = token.row
        tenant = _token_tenant(row)
        payload = {
            "active": True,
            "scope": row.scope,
            "client_id": row.client_id,
            "sub": row.account.sub,
            "username": row.account.email,
            "exp": int(token.expires_at.timestamp()),
            "iat": int(row.issued_at.timestamp()),
            "token_type": "Bearer" if token.kind == "access_token" else "refresh_token",
            "iss": _issuer(),
            "aud": row.client_id,
            "tenant": tenant.slug if tenant else None,
        }
        return {k: v for k, v in payload.items() if v is not None}


def _token_tenant(row):
    membership = row.account.membership_in(row.tenant_id)
    return membership.tenant if membership else None


class BrowserEndSession(EndSessionEndpoint):
    """RP-initiated logout: ends this browser's sign-in."""

    def get_server_jwks(self):
        return keys.verification_keys()

    def get_algorithms(self):
        return [keys.ALG]

    def _validate_id_token_hint(self, id_token_hint):
        claims = super()._validate_id_token_hint(id_token_hint)
        # Signed by one of our keys is not enough: it must also name us as issuer.
        if claims.get("iss") != _issuer():
            raise InvalidRequestError("The 'id_token_hint' was not issued by this server.")
        return claims

    def is_post_logout_redirect_uri_legitimate(self, request, post_logout_redirect_uri, client, logout_hint):
        # Without an id_token_hint, the client_id names the client and the URI must be one it
        # registered exactly (checked before this hook); the person confirms the sign-out first.
        return request.payload.data.get("client_id") == client.get_client_id()

    def end_session(self, end_session_request):
        signed_in = session.current_sign_in()
        client = end_session_request.client
        if signed_in is not None:
            audit.record(audit.LOGOUT, tenant=client.tenant_id if client else None, actor=signed_in.account,
                         subject=signed_in.account, ip=client_ip(),
                         client_id=client.client_id if client else None, initiated_by="relying party")
        session.sign_out()


class AccessTokenValidator(BearerTokenValidator):
    def authenticate_token(self, token_string):
        return tokens.find_access_token(token_string)

    def validate_token(self, token, scopes, request):
        super().validate_token(token, scopes, request)
        # A member removed from the school loses access at once, not when the token expires.
        tenant = _token_tenant(token)
        if tenant is None or directory.active_membership(token.account, tenant) is None:
            raise InvalidTokenError(realm=self.realm)


class BearerProtector(ResourceProtector):
    """authlib's protector, also reading the token from a form-encoded POST body (RFC 6750 2.2),
    which OIDC Core 5.3.1 allows at the userinfo endpoint."""

    def parse_request_authorization(self, request):
        from flask import request as flask_request

        if "Authorization" not in request.headers and flask_request.method == "POST":
            token_string = flask_request.form.get("access_token")
            if token_string:
                return self.get_token_validator("bearer"), token_string
        return super().parse_request_authorization(request)
