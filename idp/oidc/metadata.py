"""What this provider tells relying parties about itself: the discovery document
(OpenID Connect Discovery 1.0 section 3, RFC 8414, RFC 9207, RP-Initiated Logout 2.1)."""

from __future__ import annotations

from ..accounts import mfa
from . import keys

SCOPES_SUPPORTED = ["openid", "profile", "email", "offline_access"]

#: The paths advertised in discovery (issuer + path). `/logout` belongs to the sign-in pages.
PATHS = {
    "authorization_endpoint": "/authorize",
    "token_endpoint": "/token",
    "userinfo_endpoint": "/userinfo",
    "jwks_uri": "/jwks.json",
    "revocation_endpoint": "/revoke",
    "introspection_endpoint": "/introspect",
    "end_session_endpoint": "/logout/end",
    "registration_endpoint": "/register",
}
PUBLIC_CACHE = "public, max-age=300"
#: Endpoints that read no browser sign-in: relying parties call them with their own credentials
#: (client authentication, a bearer token), or anyone reads public documents. A browser's cookie sent
#: along is not decoded there (idp._SessionCookies).
COOKIELESS_PATHS = frozenset({
    *(PATHS[name] for name in ("token_endpoint", "userinfo_endpoint", "jwks_uri", "revocation_endpoint",
                               "introspection_endpoint")),
    "/.well-known/openid-configuration", "/.well-known/oauth-authorization-server",
})


def provider_metadata(issuer: str) -> dict:
    """OpenID Connect Discovery 1.0 section 3, RFC 8414, RFC 9207, RP-Initiated Logout 2.1."""
    metadata = {"issuer": issuer, **{name: issuer + path for name, path in PATHS.items()}}
    metadata.update(
        scopes_supported=SCOPES_SUPPORTED,
        response_types_supported=["code"],
        response_modes_supported=["query"],
        grant_types_supported=["authorization_code", "refresh_token"],
        subject_types_supported=["public"],
        id_token_signing_alg_values_supported=[keys.ALG],
        token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post", "none"],
        revocation_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post", "none"],
        introspection_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
        code_challenge_methods_supported=["S256"],
        claims_supported=[
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "at_hash",
            "name", "email", "email_verified", "tenant", "roles", "sid",
        ],
        claim_types_supported=["normal"],
        acr_values_supported=list(mfa.ACR_VALUES_SUPPORTED),
        prompt_values_supported=["none", "login", "consent"],
        claims_parameter_supported=False,
        request_parameter_supported=False,
        request_uri_parameter_supported=False,
        require_request_uri_registration=False,
        authorization_response_iss_parameter_supported=True,
        # OpenID Connect Back-Channel Logout 1.0 section 2.1: logout tokens carry sid, ID tokens too.
        backchannel_logout_supported=True,
        backchannel_logout_session_supported=True,
    )
    return metadata


