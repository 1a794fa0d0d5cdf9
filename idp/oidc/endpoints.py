"""authlib endpoints, filled in: revocation (RFC 7009), introspection (RFC 7662),
RP-initiated logout (end_session), the bearer-token check behind userinfo, and
dynamic client registration (RFC 7591) with its management endpoint (RFC 7592)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.oauth2 import rfc7591, rfc7592
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc6750 import BearerTokenValidator, InvalidTokenError
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc import registration as oidc_registration
from authlib.oidc.rpinitiated import EndSessionEndpoint
from authlib.oidc.rpinitiated import registration as rpinitiated_registration
from authlib.oauth2.claims import BaseClaims
from joserfc.errors import InvalidClaimError
from flask import current_app
from joserfc import jws

from .. import audit, clock
from ..accounts import directory
from ..auth import session
from ..errors import InvalidInput
from ..models.base import hash_secret, new_secret, secret_matches
from ..web import client_ip
from . import keys, registry, tokens
from .metadata import provider_metadata


def _issuer() -> str:
    return current_app.config["SETTINGS"].issuer


def _require_token_parameter(request) -> None:
    # RFC 7009 2.2 / RFC 7662 2.1: an unknown token_type_hint is ignored, not an error
    # (authlib's default check refuses it); the hint only speeds up a search we do in one query.
    if not request.form.get("token"):
        raise InvalidRequestError("Missing 'token' parameter.")


class TokenRevocation(RevocationEndpoint):
    # Public clients revoke their own tokens with their client_id alone (RFC 7009 2.1).
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]

    def check_params(self, request, client):
        _require_token_parameter(request)

    def query_token(self, token_string, token_type_hint):
        return tokens.find_presented_token(token_string)

    def revoke_token(self, token, request):
        tokens.revoke_presented_token(token, ip=client_ip())


class TokenIntrospection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

    def check_params(self, request, client):
        _require_token_parameter(request)

    def query_token(self, token_string, token_type_hint):
        return tokens.find_presented_token(token_string)

    def check_permission(self, token, client, request):
        # A school's applications may look at that school's tokens only: anything else is
        # reported as inactive, exactly like an unknown token.
        return token.row.tenant_id == client.tenant_id

    def create_introspection_payload(self, token):
        if token is not None:
            tenant = token_tenant(token.row)
            if tenant is None or directory.active_membership(token.row.account, tenant) is None:
                return {"active": False}
        return super().create_introspection_payload(token)

    def introspect_token(self, token):
        row = token.row
        tenant = token_tenant(row)
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


def token_tenant(row):
    """The tenant a token was issued for, through the account's (eagerly loaded) membership."""
    membership = row.account.membership_in(row.tenant_id)
    return membership.tenant if membership else None


class BrowserEndSession(EndSessionEndpoint):
    """RP-initiated logout: ends this browser's sign-in."""

    def get_server_jwks(self):
        return keys.verification_keys()

    def get_algorithms(self):
        return [keys.ALG]

    def _validate_id_token_hint(self, id_token_hint):
        try:
            # A key rotated in another worker is looked up before the signature check.
            keys.verification_keys(jws.extract_compact(id_token_hint.encode()).protected.get("kid"))
            claims = super()._validate_id_token_hint(id_token_hint)
        except Exception as error:  # noqa: BLE001  any malformed hint is the same refusal
            raise InvalidRequestError("The 'id_token_hint' is not a valid ID token from this server.") from error
        # Signed by one of our keys is not enough: it must also name us as issuer.
        if claims.get("iss") != _issuer():
            raise InvalidRequestError("The 'id_token_hint' was not issued by this server.")
        return claims

    def is_post_logout_redirect_uri_legitimate(self, request, post_logout_redirect_uri, client, logout_hint):
        # Without an id_token_hint, the client_id names the client and the URI must be one it
        # registered exactly (checked before this hook); the person confirms the sign-out first.
        return request.payload.data.get("client_id") == client.get_client_id()

    def end_session(self, end_session_request):
        # The audit event goes to the signed-out person's own school (session.sign_out).
        ended = session.sign_out(initiated_by="relying party", client=end_session_request.client)
        end_session_request.notified = ended.notified if ended is not None else []


def id_token_hint_claims(id_token_hint: str) -> dict:
    """The claims of an ID token this server issued, expired or not (OIDC Core 3.1.2.1 and
    RP-Initiated Logout 2 use it only to name the person); InvalidRequestError otherwise."""
    return BrowserEndSession()._validate_id_token_hint(id_token_hint)


class AccessTokenValidator(BearerTokenValidator):
    def authenticate_token(self, token_string):
        return tokens.find_access_token(token_string)

    def validate_token(self, token, scopes, request):
        super().validate_token(token, scopes, request)
        # A member removed from the school loses access at once, not when the token expires.
        tenant = token_tenant(token)
        if tenant is None or directory.active_membership(token.account, tenant) is None:
            raise InvalidTokenError(realm=self.realm)


class BearerProtector(ResourceProtector):
    """authlib's protector, also reading the token from a form-encoded POST body (RFC 6750 2.2),
    which OIDC Core 5.3.1 allows at the userinfo endpoint."""

    def parse_request_authorization(self, request):
        from flask import request as flask_request

        if flask_request.method == "POST":
            token_string = flask_request.form.get("access_token")
            if token_string and "Authorization" in request.headers:
                # RFC 6750 2 and 3.1: one way of sending the token per request.
                raise InvalidRequestError("Send the access token either in the header or in the body, not both.")
            if token_string:
                return self.get_token_validator("bearer"), token_string
        return super().parse_request_authorization(request)


# --- dynamic client registration (RFC 7591) and management (RFC 7592) --------------------

class BackChannelLogoutMetadata(BaseClaims):
    """Client metadata of OpenID Connect Back-Channel Logout 1.0 (section 2.2), which authlib does
    not know: the URI's own rules (https, no fragment) are the registry's."""

    REGISTERED_CLAIMS = ["backchannel_logout_uri", "backchannel_logout_session_required"]

    def validate(self, now=None, leeway=0):
        super().validate(now, leeway)
        uri = self.get("backchannel_logout_uri")
        if uri is not None and not isinstance(uri, str):
            raise InvalidClaimError("backchannel_logout_uri")
        required = self.get("backchannel_logout_session_required")
        if required is not None and not isinstance(required, bool):
            raise InvalidClaimError("backchannel_logout_session_required")


REGISTRATION_CLAIMS = [rfc7591.ClientMetadataClaims, oidc_registration.ClientMetadataClaims,
                       rpinitiated_registration.ClientMetadataClaims, BackChannelLogoutMetadata]
DEFAULT_CLIENT_NAME = "Registered application"


def _bearer(request) -> str | None:
    scheme, _, value = (request.headers.get("Authorization") or "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _registration_uri(client_id: str) -> str:
    return f"{_issuer()}/register/{client_id}"


def _registry_errors(call):
    """The registry's checks (exact https redirect URIs, names) as RFC 7591 3.2.2 errors."""
    try:
        return call()
    except InvalidInput as error:
        message = error.message.encode("ascii", "replace").decode().replace('"', "'").replace("\\", "/")
        if error.details.get("field") in ("redirect_uris", "post_logout_redirect_uris"):
            raise rfc7591.InvalidRedirectURIError(message) from None
        raise rfc7591.InvalidClientMetadataError(message) from None


class _OurMetadata:
    """Registration validates client metadata against what discovery advertises."""

    def get_server_metadata(self):
        return provider_metadata(_issuer())


class ClientRegistration(_OurMetadata, rfc7591.ClientRegistrationEndpoint):
    """A client registers itself with an initial access token an admin of its school issued;
    the client belongs to that school (RFC 7591 3: "protected registration")."""

    def __init__(self, server=None):
        super().__init__(server, claims_classes=REGISTRATION_CLAIMS)

    def authenticate_token(self, request):
        tenant = registry.use_initial_access_token(_bearer(request))
        if tenant is None:
            raise InvalidTokenError("The initial access token is missing, unknown, used or expired.")
        return tenant

    def generate_client_id(self, request):
        return registry.new_client_id()

    def generate_client_secret(self, request):
        if (request.payload.data or {}).get("token_endpoint_auth_method") == "none":
            return None
        return new_secret(32)

    def generate_client_info(self, request):
        info = super().generate_client_info(request)
        info["client_id_issued_at"] = clock.timestamp()
        if info["client_secret"] is None:
            del info["client_secret"], info["client_secret_expires_at"]
        return info

    def save_client(self, client_info, client_metadata, request):
        tenant = request.credential
        method = client_metadata.get("token_endpoint_auth_method") or "client_secret_basic"
        registered = _registry_errors(lambda: registry.register_client(
            tenant,
            name=client_metadata.get("client_name") or DEFAULT_CLIENT_NAME,
            redirect_uris=client_metadata.get("redirect_uris") or [],
            post_logout_redirect_uris=client_metadata.get("post_logout_redirect_uris") or [],
            public=method == "none",
            grant_types=client_metadata.get("grant_types"),
            token_endpoint_auth_method=method,
            client_id=client_info["client_id"],
            client_secret=client_info.get("client_secret"),
            backchannel_logout_uri=client_metadata.get("backchannel_logout_uri"),
            backchannel_logout_session_required=client_metadata.get("backchannel_logout_session_required") or False,
        ))
        audit.record(audit.CLIENT_REGISTERED, tenant=tenant, ip=client_ip(), client_id=registered.client.client_id,
                     name=registered.client.name, via="dynamic registration")
        return registered.client

    def generate_client_registration_info(self, client, request):
        token = new_secret(32)
        client.registration_token_hash = hash_secret(token)
        return {"registration_client_uri": _registration_uri(client.client_id), "registration_access_token": token}


@dataclass
class RegistrationAccessToken:
    value: str

    def check_client(self, client) -> bool:
        return secret_matches(self.value, client.registration_token_hash)


class ClientConfiguration(_OurMetadata, rfc7592.ClientConfigurationEndpoint):
    """Read, update or delete a dynamically registered client with its registration access token."""

    def __init__(self, server=None):
        super().__init__(server, claims_classes=REGISTRATION_CLAIMS)

    def authenticate_token(self, request):
        value = _bearer(request)
        if not value:
            raise InvalidTokenError("Send the registration access token as a Bearer token.")
        return RegistrationAccessToken(value)

    def authenticate_client(self, request):
        client_id = urlsplit(request.uri).path.rstrip("/").rsplit("/", 1)[-1]
        client = registry.find_client(client_id)
        # Only clients that registered themselves have a registration access token.
        return client if client is not None and client.registration_token_hash else None

    def revoke_access_token(self, *args):
        # The token names no client that exists; there is nothing stored to revoke.
        pass

    def check_permission(self, client, request):
        return True

    def introspect_client(self, client):
        return {"client_id": client.client_id, "client_id_issued_at": int(client.created_at.timestamp()),
                **({} if client.is_public else {"client_secret_expires_at": 0}), **client.client_metadata}

    def generate_client_registration_info(self, client, request):
        return {"registration_client_uri": _registration_uri(client.client_id),
                "registration_access_token": _bearer(request)}

    def update_client(self, client, client_metadata, request):
        _registry_errors(lambda: registry.update_client(
            client,
            name=client_metadata.get("client_name") or client.name,
            redirect_uris=client_metadata.get("redirect_uris") or [],
            post_logout_redirect_uris=client_metadata.get("post_logout_redirect_uris") or [],
            # RFC 7592 2.2: the request replaces the whole registration; what it leaves out goes.
            backchannel_logout_uri=client_metadata.get("backchannel_logout_uri"),
            backchannel_logout_session_required=client_metadata.get("backchannel_logout_session_required") or False,
        ))
        audit.record(audit.CLIENT_CHANGED, tenant=client.tenant_id, ip=client_ip(), client_id=client.client_id,
                     via="dynamic registration")
        return client

    def delete_client(self, client, request):
        audit.record(audit.CLIENT_DELETED, tenant=client.tenant_id, ip=client_ip(), client_id=client.client_id,
                     via="dynamic registration")
        registry.delete_client(client)
