"""The OpenID Connect blueprint: discovery, JWKS, authorize, token, userinfo,
revocation, introspection, RP-initiated logout and dynamic client registration.

Protocol work is authlib's (server.py, grants.py, endpoints.py); these views
hand the browser to the tenant's own sign-in pages (auth/, account_settings/) and back.
Endpoints that relying parties call directly are CSRF-exempt: they carry no
browser session, or (authorize, end-session) must accept an RP's form POST."""

from __future__ import annotations

import hashlib
import json
from urllib.parse import urlencode

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import AccessDeniedError, InvalidRequestError, MissingAuthorizationError
from authlib.oauth2.rfc6749.errors import UnsupportedTokenTypeError
from authlib.oauth2.rfc6750 import InsufficientScopeError
from authlib.oidc.core.errors import (
    InteractionRequiredError,
    LoginRequiredError,
    RegistrationNotSupportedError,
    RequestNotSupportedError,
    RequestURINotSupportedError,
)
from flask import Blueprint, Response, current_app, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError, validate_csrf
from wtforms.validators import ValidationError

from .. import clock
from ..accounts import directory, mfa
from ..auth import session
from ..extensions import csrf, db, each_statement_commits
from . import claims, keys
from .endpoints import id_token_hint_claims, token_tenant
from .grants import SignInNotLive
from .metadata import PATHS, PUBLIC_CACHE, provider_metadata
from .server import authorization_server, init_app, require_oauth

bp = Blueprint("oidc", __name__)


@bp.record_once
def _build_server(state):
    init_app(state.app)


# --- discovery and keys ----------------------------------------------------------------


def _metadata_document() -> tuple[bytes, str]:
    cached = current_app.extensions.get("idp_oidc_discovery")
    if cached is None:
        body = json.dumps(provider_metadata(current_app.config["SETTINGS"].issuer), indent=2).encode()
        cached = (body, hashlib.sha256(body).hexdigest()[:32])
        current_app.extensions["idp_oidc_discovery"] = cached
    return cached


def _cacheable_json(body: bytes, etag: str) -> Response:
    response = Response(body, mimetype="application/json")
    response.headers["Cache-Control"] = PUBLIC_CACHE
    # Public documents: browser-based relying parties may read them (CORS).
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.set_etag(etag)
    # Only a request that asks (If-None-Match) can be answered 304; the rest need no comparison.
    return response.make_conditional(request) if request.if_none_match else response


@bp.route("/.well-known/openid-configuration")
@bp.route("/.well-known/oauth-authorization-server")
def discovery():
    return _cacheable_json(*_metadata_document())


@bp.route("/jwks.json")
def jwks():
    return _cacheable_json(*keys.public_jwks())


# --- authorization endpoint ------------------------------------------------------------


#: Our own parameter on the way back from a demanded re-authentication: the sign-in must have
#: authenticated at or after this second (so coming back without signing in gives no code).
REAUTH_AFTER = "idp_reauth_after"


def _authorize_url(*, drop_reauthentication: bool = False) -> str:
    """This authorization request as a same-site path, to come back to after signing in.

    After a forced re-authentication the next request must not force it again
    (prompt=login, max_age, an id_token_hint naming someone else), or the person would
    loop through the login page; it asks instead for an authentication from now on."""
    pairs = list(request.values.items(multi=True))
    if drop_reauthentication:
        kept = []
        for name, value in pairs:
            if name in ("max_age", "id_token_hint", REAUTH_AFTER):
                continue
            if name == "prompt":
                value = " ".join(p for p in value.split() if p != "login")
                if not value:
                    continue
            kept.append((name, value))
        pairs = kept + [(REAUTH_AFTER, str(clock.timestamp()))]
    return url_for("oidc.authorize") + ("?" + urlencode(pairs) if pairs else "")


def _to_login(tenant, data, **extra):
    """The school's login page, coming back to this request; a `login_hint` (OIDC Core 3.1.2.1)
    fills in the email address."""
    return redirect(url_for("auth.login", slug=tenant.slug, login_hint=data.get("login_hint") or None, **extra,
                            next=_authorize_url(drop_reauthentication=True)))


def _authorization_error(error: OAuth2Error):
    """Spec errors go back to a validated redirect_uri (with state and iss); anything else,
    such as an unknown client or redirect URI, is a page for the person, never a redirect."""
    server = authorization_server()
    if error.redirect_uri:
        response = server.handle_error_response(None, error)
        server.execute_hook("after_create_authorization_response", response)
        return response
    return (
        render_template(
            "oidc/error.html",
            error=error.error,
            description=error.get_error_description(),
        ),
        400,
    )


def _max_age(data) -> int | None:
    raw = data.get("max_age")
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise ValueError
    return int(raw)


#: The column that keeps the nonce with the code holds this many characters.
MAX_NONCE_LENGTH = 400


@bp.route("/authorize", methods=["GET", "POST"])
@csrf.exempt
def authorize():
    server = authorization_server()
    # The cookie's word for now: whether its sign-in still holds is settled by the statement
    # that stores the code, or by loading the account where more has to be decided.
    claimed = session.claimed_sign_in()
    try:
        grant = server.get_consent_grant(end_user=claimed)
    except OAuth2Error as error:
        return _authorization_error(error)

    oauth_request = grant.request
    data = oauth_request.payload.data
    redirect_uri = grant.redirect_uri
    state = data.get("state")
    client = oauth_request.client
    tenant = client.tenant
    prompts = set((data.get("prompt") or "").split())

    def refuse(error_class, description=None):
        return _authorization_error(error_class(description, redirect_uri=redirect_uri, state=state))

    # Features we do not offer are refused with their own codes (OIDC Core 3.1.2.6, 6).
    if data.get("request"):
        return refuse(RequestNotSupportedError)
    if data.get("request_uri"):
        return refuse(RequestURINotSupportedError)
    if data.get("registration"):
        return refuse(RegistrationNotSupportedError)
    if len(data.get("nonce") or "") > MAX_NONCE_LENGTH:
        return refuse(InvalidRequestError, f"'nonce' is longer than {MAX_NONCE_LENGTH} characters.")
    if data.get("response_mode") not in (None, "", "query"):
        return refuse(InvalidRequestError, "Only response_mode=query is supported.")
    try:
        max_age = _max_age(data)
        reauth_after = int(data[REAUTH_AFTER]) if data.get(REAUTH_AFTER) else None
    except ValueError:
        return refuse(InvalidRequestError, "'max_age' must be a whole number of seconds.")
    # OIDC Core 3.1.2.1: the hint names the person the client expects; a code for anyone
    # else would be silently wrong.
    hinted_sub = None
    if data.get("id_token_hint"):
        try:
            hinted_sub = id_token_hint_claims(data["id_token_hint"]).get("sub")
        except OAuth2Error:
            return refuse(InvalidRequestError, "The 'id_token_hint' is not a valid ID token from this server.")

    # The strongest of our levels the client asks for (2FA, or phishing-resistant: a key).
    requested_acr = mfa.requested_level(data.get("acr_values"))
    # The usual case, a plain request from a signed-in browser: one statement, an INSERT that
    # only writes the code if the account is still signed in, a member, and needs nothing more.
    if claimed is not None and not prompts and max_age is None and hinted_sub is None and reauth_after is None:
        with each_statement_commits():
            response = _issue_code(server, grant, claimed, judged=False, requested_acr=requested_acr)
            if response is not None:
                # After the code, whose statement judged idleness by the row's own last use.
                session.keep_alive(claimed)
        if response is not None:
            return response

    signed_in = session.current_sign_in(tenant)
    account = signed_in.account if signed_in else None
    # Nobody signed in: the client's own school login page, then back here.
    if signed_in is None:
        if "none" in prompts:
            return refuse(LoginRequiredError)
        return _to_login(tenant, data)

    # Signed in, but not as a member of this client's school: never a code.
    membership = directory.active_membership(account, tenant)
    if membership is None:
        if "none" in prompts:
            return refuse(AccessDeniedError, "The signed-in account has no access to this school.")
        return _to_login(tenant, data, reason="not_member")

    # OIDC Core 3.1.2.1: max_age=0 is prompt=login, even for a sign-in made this very second.
    too_old = (max_age is not None and (max_age == 0 or clock.timestamp() - signed_in.auth_time > max_age)) or (
        reauth_after is not None and signed_in.auth_time < reauth_after)
    someone_else = hinted_sub is not None and hinted_sub != account.sub
    if "login" in prompts or too_old or someone_else:
        if "none" in prompts:
            return refuse(LoginRequiredError)
        # A fresh authentication is demanded: on top of the live sign-in, which a successful one
        # refreshes (the same person) or replaces (someone else); abandoned, nothing changes.
        return _to_login(tenant, data)

    requirement = mfa.sign_in_requirement(account, membership, signed_in.amr, requested_acr)
    if requirement is not None:
        if "none" in prompts:
            return refuse(InteractionRequiredError)
        return redirect(session.where_to_meet(requirement, tenant, _authorize_url()))

    response = _issue_code(server, grant, signed_in, judged=True)
    if response is None:
        # Ended between the check above and the write (signed out everywhere, deactivated).
        return _to_login(tenant, data)
    return response


def _issue_code(server, grant, sign_in, *, judged: bool, requested_acr: str | None = None):
    """The redirect with a code for `sign_in`, or None if the statement storing the code found the
    sign-in ended or (not `judged`: the cookie's word alone was taken) more needed first for the
    level `requested_acr` (mfa.nothing_more_needed_criteria). First-party school applications:
    consent is implied by the school, not asked."""
    grant.request.idp_code_criteria = None if judged else (requested_acr,)
    try:
        response = server.create_authorization_response(request=grant.request, grant=grant, grant_user=sign_in)
    except SignInNotLive:
        db.session.rollback()
        return None
    return response


# --- endpoints relying parties call directly --------------------------------------------


def _protocol_call(call):
    """Run an authlib call; its OAuth errors are JSON responses. The request boundary commits a
    success; what a refusal must keep (a spent code, a reuse revocation) the grants commit
    themselves (oidc.tokens, oidc.grants)."""
    server = authorization_server()
    try:
        return call(server)
    except OAuth2Error as error:
        return server.handle_error_response(None, error)


@bp.route("/token", methods=["POST"])
@csrf.exempt
def token():
    # Makes the first signing key before any write, so that commit never splits a token request.
    keys.current_signing_key()
    return _protocol_call(lambda server: server.create_token_response())


@bp.route("/revoke", methods=["POST"])
@csrf.exempt
def revoke():
    return _protocol_call(lambda server: server.create_endpoint_response("revocation"))


@bp.route("/introspect", methods=["POST"])
@csrf.exempt
def introspect():
    with each_statement_commits():  # one read
        return _protocol_call(lambda server: server.create_endpoint_response("introspection"))


def _registration_call(name: str):
    """Registration changes are kept only when the request succeeded (the request boundary rolls a
    refusal back): a refused registration must not spend the initial access token."""
    server = authorization_server()
    try:
        if request.method in ("POST", "PUT") and not isinstance(request.get_json(silent=True), dict):
            raise InvalidRequestError("Send the client metadata as a JSON object (application/json).")
        return server.create_endpoint_response(name)
    except OAuth2Error as error:
        return server.handle_error_response(None, error)


@bp.route(PATHS["registration_endpoint"], methods=["POST"])
@csrf.exempt
def register():
    return _registration_call("client_registration")


@bp.route(PATHS["registration_endpoint"] + "/<client_id>", methods=["GET", "PUT", "DELETE"])
@csrf.exempt
def client_configuration(client_id: str):
    return _registration_call("client_configuration")


def _bearer_error(error: OAuth2Error):
    if isinstance(error, (MissingAuthorizationError, UnsupportedTokenTypeError)):
        # RFC 6750 3.1: a request with no usable credentials gets the scheme, no error code.
        status, headers, body = 401, [("WWW-Authenticate", "Bearer")], {}
    else:
        status = error.status_code
        headers = list(error.get_headers())
        body = dict(error.get_body())
        if isinstance(error, InsufficientScopeError):
            headers.append(("WWW-Authenticate", 'Bearer error="insufficient_scope", scope="openid"'))
        elif isinstance(error, InvalidRequestError):
            headers.append(("WWW-Authenticate", 'Bearer error="invalid_request"'))
    headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
    response = current_app.response_class(json.dumps(body), status=status, mimetype="application/json")
    for name, value in headers:
        response.headers[name] = value
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/userinfo", methods=["GET", "POST"])
@csrf.exempt
def userinfo():
    with each_statement_commits():  # one read
        try:
            access = require_oauth.acquire_token(["openid"])
        except OAuth2Error as error:
            return _bearer_error(error)
        info = claims.user_info(access.account, token_tenant(access), access.scope)
    response = current_app.response_class(json.dumps(dict(info)), mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


# --- RP-initiated logout -----------------------------------------------------------------


def _confirmed() -> bool:
    if request.method != "POST" or request.form.get("confirm") != "yes":
        return False
    try:
        validate_csrf(request.form.get("csrf_token"))
    except (ValidationError, CSRFError):
        return False
    return True


@bp.route(PATHS["end_session_endpoint"], methods=["GET", "POST"])
@csrf.exempt
def end_session():
    """RP-Initiated Logout 1.0. The person is asked first unless the request carries an ID token
    of theirs (id_token_hint): without one anyone could link here, and a hint naming someone else
    must not sign out whoever sits at this browser."""
    server = authorization_server()
    try:
        logout = server.validate_endpoint_request("end_session")
    except OAuth2Error as error:
        # RP-Initiated Logout 4: on errors, no redirection; tell the person instead.
        return render_template(
            "oidc/logout_error.html", error=error.error, description=error.get_error_description(),
            signed_in=session.browser_sign_in() is not None,
        ), 400

    signed_in = session.browser_sign_in()
    hinted_sub = (logout.id_token_claims or {}).get("sub")
    if signed_in is not None and hinted_sub != signed_in.account.sub and not _confirmed():
        data = logout.request.payload.data
        names = ("client_id", "id_token_hint", "post_logout_redirect_uri", "state", "ui_locales")
        return render_template(
            "oidc/confirm_logout.html",
            fields={name: data.get(name) for name in names if data.get(name)},
            client=logout.client,
            tenant=logout.client.tenant if logout.client else None,
            signed_in=signed_in,
            someone_else=hinted_sub is not None,
        )

    response = server.create_endpoint_response("end_session", logout)
    if response is not None:
        return response
    tenant = logout.client.tenant if logout.client else None
    return render_template("auth/signed_out.html", tenant=tenant, notified=getattr(logout, "notified", []))
