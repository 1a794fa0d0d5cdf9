"""authlib grants, filled in: the code grant (OpenID Connect, PKCE S256 only) and the
refresh grant (rotation, family revocation). Each hook is a shim over `tokens`."""

from __future__ import annotations

from dataclasses import dataclass

from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode, OpenIDToken
from authlib.oidc.core.grants.util import is_openid_scope
from flask import current_app
from flask import request as flask_request

from .. import clock
from ..accounts import directory, sessions
from ..models.base import new_secret
from ..transactions import commit_now
from ..web import client_ip
from . import claims, keys, tokens

CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


def _settings():
    return current_app.config["SETTINGS"]


class SignInNotLive(Exception):
    """No code was stored: the sign-in has ended, or needs more (a second factor) first."""


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS

    def generate_authorization_code(self) -> str:
        # Like every other secret here, from `secrets` (256 bits): authlib's generate_token draws
        # its 48 characters one at a time from SystemRandom, about 5% of a served SSO flow.
        return new_secret(32)

    @staticmethod
    def validate_authorization_redirect_uri(request, client):
        redirect_uri = request.payload.redirect_uri
        # OIDC Core 3.1.2.1: redirect_uri is REQUIRED in an authentication request.
        if not redirect_uri and is_openid_scope(request.payload.scope):
            raise InvalidRequestError("Missing 'redirect_uri' in request.", state=request.payload.state)
        # Checked here rather than by authlib, whose message would quote the (untrusted) URI.
        if redirect_uri and not client.check_redirect_uri(redirect_uri):
            raise InvalidRequestError("The 'redirect_uri' is not registered for this client.")
        return grants.AuthorizationCodeGrant.validate_authorization_redirect_uri(request, client)

    def save_authorization_code(self, code, request):
        # The "user" authorize hands over is the browser's sign-in (session.SignIn or ClaimedSignIn).
        data = request.payload.data
        saved = tokens.save_code(
            code,
            client=request.client,
            token_hash=request.user.token_hash,
            criteria_for=request.idp_code_criteria,
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope,
            nonce=data.get("nonce"),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            ttl=_settings().authorization_code_ttl,
        )
        if not saved:
            raise SignInNotLive

    def query_authorization_code(self, code, client):
        return tokens.find_code(code, client, ip=client_ip())

    def authenticate_user(self, authorization_code):
        # Consume before issuing anything: of two concurrent redemptions exactly one wins,
        # and the loser is treated as a reuse.
        if not tokens.consume_code(authorization_code):
            tokens.code_reused(authorization_code, ip=client_ip())
            raise InvalidGrantError("The authorization code has already been used.")
        account = authorization_code.account
        if directory.active_membership(account, self.request.client.tenant) is None:
            commit_now(because="the code stays spent although the exchange is refused")
            raise InvalidGrantError("The account is no longer a member of this application's school.")
        return account

    def delete_authorization_code(self, authorization_code):
        # Codes are consumed (kept, marked) in authenticate_user so a second use is recognised.
        pass


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only (RFC 9700 2.1.1: `plain` is not offered); public clients must use it."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    CODE_CHALLENGE_METHODS = {"S256": CodeChallenge.CODE_CHALLENGE_METHODS["S256"]}

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        if data.get("code_challenge") and not data.get("code_challenge_method"):
            # RFC 7636 4.3: a missing method means `plain`, which this server refuses.
            raise InvalidRequestError("Unsupported 'code_challenge_method': only S256 is allowed.")
        super().validate_code_challenge(grant, redirect_uri)
        if grant.request.client.is_public and not data.get("code_challenge"):
            raise InvalidRequestError("Public clients must use PKCE ('code_challenge' with S256).")


class SignedIdToken:
    """ID token signing and the claims every ID token carries, on authlib's OpenIDToken hooks."""

    def _signing_key(self):
        # The header's kid and the signature must come from the same key, even if the
        # cache reloads between the two hooks: pick the key once per request.
        chosen = getattr(flask_request, "idp_signing_key", None)
        if chosen is None:
            chosen = flask_request.idp_signing_key = keys.current_signing_key()
        return chosen

    def resolve_client_private_key(self, client):
        return self._signing_key()[1]

    def get_client_algorithm(self, client):
        return keys.ALG

    def get_encode_header(self, client):
        return {"alg": keys.ALG, "typ": "JWT", "kid": self._signing_key()[0]}

    def get_client_claims(self, client):
        # iat/exp from idp.clock, not authlib's time.time(), so tests can freeze time.
        now = clock.timestamp()
        return {
            "iss": _settings().issuer,
            "aud": client.get_client_id(),
            "iat": now,
            "exp": now + _settings().id_token_ttl,
        }

    def get_compatible_claims(self, request):
        result = super().get_compatible_claims(request)
        result.update(claims.tenant_claims(request.user, request.client.tenant))
        # Back-Channel Logout 2.1: the ID token names the browser sign-in it came from.
        origin = request.authorization_code or request.refresh_token
        if origin is not None and origin.sid:
            result["sid"] = origin.sid
        return result

    def generate_user_info(self, user, scope):
        return claims.profile_claims(user, scope)

    def exists_nonce(self, nonce, request):
        # The nonce protects the relying party, which checks it against its own session
        # (OIDC Core 15.5.2); the provider binds it into the ID token and keeps no replay list.
        return False


class OpenIDConnectCode(SignedIdToken, OpenIDCode):
    pass


class RefreshIdToken(SignedIdToken, OpenIDToken):
    """An ID token in refresh responses (OIDC Core 12.2): the original auth_time, amr and acr, no nonce."""

    def get_compatible_claims(self, request):
        result = super().get_compatible_claims(request)
        origin = request.refresh_token
        result["auth_time"] = origin.auth_time
        if origin.amr:
            result["amr"] = list(origin.amr)
        if origin.acr:
            result["acr"] = origin.acr
        return result


@dataclass
class _GrantedScope:
    scope: str

    def get_scope(self) -> str:
        return self.scope


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = CLIENT_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token):
        return tokens.find_by_refresh_token(refresh_token, ip=client_ip())

    # RFC 6749 6: the scope a refresh may ask for, and gets when it asks for none, is the one
    # originally granted, not the (possibly narrowed) scope of the last access token.
    def _validate_token_scope(self, token):
        super()._validate_token_scope(_GrantedScope(token.granted_scope))

    def issue_token(self, user, refresh_token):
        scope = self.request.payload.scope or refresh_token.granted_scope
        return self.generate_token(user=user, scope=scope, include_refresh_token=self.INCLUDE_NEW_REFRESH_TOKEN)

    def authenticate_user(self, refresh_token):
        # Rotate first: exactly one of two concurrent uses wins; the other is a reuse.
        if not tokens.consume_refresh_token(refresh_token):
            tokens.refresh_reused(refresh_token, ip=client_ip())
            raise InvalidGrantError("The refresh token has already been used.")
        account = refresh_token.account
        if directory.active_membership(account, self.request.client.tenant) is None:
            refusal = "The account is no longer a member of this application's school."
        elif not refresh_token.offline and refresh_token.session_seen is None:
            # Back-Channel Logout 2.7: without offline_access a refresh token lives no longer than
            # the sign-in it was issued in (ended, idle too long, or too old by the school's rules).
            refusal = "The sign-in this token was issued in has ended; sign in again."
        else:
            if not refresh_token.offline:
                sessions.seen_by_refresh(refresh_token.sid, refresh_token.session_seen)
            return account
        tokens.revoke(family_id=refresh_token.family_id)
        commit_now(because="the family's revocation outlives the refusal")
        raise InvalidGrantError(refusal)

    def revoke_old_credential(self, refresh_token):
        # Already marked used in authenticate_user; its access token lives out its short lifetime.
        pass
