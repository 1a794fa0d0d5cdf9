"""authlib's AuthorizationServer and ResourceProtector, configured for this app.

One server per Flask app (tests make many apps), built when the oidc blueprint
is registered and found with `authorization_server()`. Clients are looked up
through a short in-process cache of detached copies, so the token and
authorization endpoints usually need no query for the client."""

from __future__ import annotations

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749 import InvalidRequestError, UnsupportedResponseTypeError
from authlib.oauth2.rfc6749.authenticate_client import authenticate_client_secret_basic
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc9207 import IssuerParameter
from flask import Flask, current_app

from .. import clock
from ..models import Client, Tenant
from ..models.base import new_secret
from . import endpoints, grants, tokens
from .registry import CLIENT_CACHE_KEY, find_client

#: How long a worker may keep using a client's settings after an admin changed them elsewhere.
CLIENT_CACHE_SECONDS = 10
_SERVER_KEY = "idp_oidc_server"


class IssuerInResponses(IssuerParameter):
    """RFC 9207: every authorization response names the issuer (`iss`), errors included."""

    def get_issuer(self) -> str:
        return current_app.config["SETTINGS"].issuer


def _detached_copy(client: Client) -> Client:
    # A transient copy: reading it later never touches a (possibly closed) session.
    copy = Client(**{attr.key: getattr(client, attr.key) for attr in Client.__mapper__.column_attrs})
    for name in ("redirect_uris", "post_logout_redirect_uris", "grant_types", "response_types"):
        setattr(copy, name, list(getattr(client, name) or []))
    tenant = client.tenant
    copy.tenant = Tenant(**{attr.key: getattr(tenant, attr.key) for attr in Tenant.__mapper__.column_attrs})
    return copy


def query_client(client_id: str | None) -> Client | None:
    if not client_id or len(client_id) > 64:
        return None
    cache: dict = current_app.extensions.setdefault(CLIENT_CACHE_KEY, {})
    now = clock.timestamp()
    hit = cache.get(client_id)
    if hit is not None and 0 <= now - hit[0] < CLIENT_CACHE_SECONDS:
        return hit[1]
    client = find_client(client_id)
    if client is None:
        cache.pop(client_id, None)
        return None
    copy = _detached_copy(client)
    if len(cache) > 10_000:
        cache.clear()
    cache[client_id] = (now, copy)
    return copy


def _basic_credentials(query_client, request):
    """client_secret_basic, where an Authorization header that is not base64 of UTF-8 "id:secret"
    (RFC 7617 2) carries no credentials: the request ends as invalid_client, never as a 500."""
    try:
        return authenticate_client_secret_basic(query_client, request)
    except (UnicodeError, ValueError):
        return None


def _save_token(token: dict, request) -> None:
    tokens.save_token(
        token,
        client=request.client,
        account=request.user,
        settings=current_app.config["SETTINGS"],
        code=request.authorization_code,
        parent=request.refresh_token,
    )


def _token_generator(app: Flask) -> BearerTokenGenerator:
    settings = app.config["SETTINGS"]

    def opaque_token(**_):
        return new_secret(32)

    def expires_in(client, grant_type):
        return settings.access_token_ttl

    return BearerTokenGenerator(opaque_token, opaque_token, expires_in)


class Server(AuthorizationServer):
    def get_authorization_grant(self, request):
        # authlib quotes an unknown response_type into error_description, which may only hold
        # plain ASCII (RFC 6749 4.1.2.1) and raises ValueError otherwise: such a value is
        # malformed, so it gets the error page rather than a redirect.
        if invalid_error_characters(request.payload.response_type or ""):
            raise UnsupportedResponseTypeError("(malformed)")
        try:
            return super().get_authorization_grant(request)
        except UnsupportedResponseTypeError as error:
            if request.payload.response_type:
                raise
            # RFC 6749 4.1.2.1: a missing parameter is invalid_request, not an unsupported value.
            raise InvalidRequestError("Missing 'response_type' parameter.", redirect_uri=error.redirect_uri) from None


def init_app(app: Flask) -> AuthorizationServer:
    server = Server()
    server.init_app(app, query_client=query_client, save_token=_save_token)
    server.register_client_auth_method("client_secret_basic", _basic_credentials)
    # OIDC Core 3.1.2.1: scope values not understood SHOULD be ignored, not refused;
    # Client.get_allowed_scope grants the supported subset.
    server.scopes_supported = None
    server.register_token_generator("default", _token_generator(app))
    server.register_grant(
        grants.AuthorizationCodeGrant,
        [grants.S256CodeChallenge(required=True), grants.OpenIDConnectCode(require_nonce=False)],
    )
    server.register_grant(grants.RefreshTokenGrant, [grants.RefreshIdToken()])
    server.register_endpoint(endpoints.TokenRevocation)
    server.register_endpoint(endpoints.TokenIntrospection)
    server.register_endpoint(endpoints.BrowserEndSession)
    server.register_endpoint(endpoints.ClientRegistration)
    server.register_endpoint(endpoints.ClientConfiguration)
    server.register_extension(IssuerInResponses())
    app.extensions[_SERVER_KEY] = server
    return server


def authorization_server() -> AuthorizationServer:
    return current_app.extensions[_SERVER_KEY]


require_oauth = endpoints.BearerProtector()
require_oauth.register_token_validator(endpoints.AccessTokenValidator())
