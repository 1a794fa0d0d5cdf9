"""One factory for the demo relying parties: an app serving one or more tenants'
OIDC clients, each under its own path (`/<tenant slug>/`).

Everything protocol-related goes through authlib's Flask client: discovery
(server_metadata_url), the authorization code flow with PKCE S256 and a nonce,
ID token validation (signature against the JWKS, iss, aud, exp, nonce) and
RP-initiated logout. Client ids and secrets come from the instance file that
`idp demo-data` writes (`<instance>/demo-clients.json`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.flask_client import OAuth
from flask import Flask, abort, flash, redirect, render_template, request, session, url_for
from flask_wtf import CSRFProtect
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCOPE = "openid profile email"
SHOWN_CLAIMS = ("name", "email", "tenant", "roles", "amr", "acr", "auth_time", "sub", "sid")


class NotConfigured(RuntimeError):
    """The instance file is missing or has no client for this app."""


@dataclass(frozen=True)
class Registration:
    """One tenant's demo client, as written by `idp demo-data`."""

    slug: str
    tenant_name: str
    product: str
    client_id: str
    client_secret: str
    redirect_uri: str
    post_logout_redirect_uri: str

    @property
    def product_name(self) -> str:
        return "CPOMS StaffSafe" if self.product == "staffsafe" else "CPOMS"


def default_clients_file() -> Path:
    instance = os.environ.get("IDP_INSTANCE_PATH") or str(PROJECT_ROOT / "instance")
    return Path(instance) / "demo-clients.json"


def load_registrations(kind: str, clients_file: Path | None = None) -> tuple[str, list[Registration]]:
    """The issuer and the registrations for app `kind` ("school" or "staffsafe")."""
    path = Path(clients_file or default_clients_file())
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        raise NotConfigured(f"{path} is missing or unreadable: run `idp demo-data` first (make run does)") from None
    registrations = [
        Registration(
            slug=c["tenant"], tenant_name=c["tenant_name"], product=c["product"], client_id=c["client_id"],
            client_secret=c["client_secret"], redirect_uri=c["redirect_uri"],
            post_logout_redirect_uri=c["post_logout_redirect_uri"],
        )
        for c in data.get("clients", {}).values()
        if c.get("app") == kind
    ]
    if not registrations:
        raise NotConfigured(f"{path} has no {kind} clients: run `idp demo-data` again")
    return data["issuer"], registrations


class SignIns:
    """Who is signed in to which tenant in which browser, kept server-side.

    ID tokens are too big for several of them to share one cookie; the cookie
    holds only a random browser id. Lost on restart, which a demo can afford."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_browser: dict[str, dict[str, dict]] = {}

    def _browser(self) -> str:
        if "browser" not in session:
            session["browser"] = secrets.token_urlsafe(16)
        return session["browser"]

    def get(self, slug: str) -> dict | None:
        with self._lock:
            return self._by_browser.get(self._browser(), {}).get(slug)

    def put(self, slug: str, id_token: str, claims: dict) -> None:
        with self._lock:
            self._by_browser.setdefault(self._browser(), {})[slug] = {"id_token": id_token, "claims": claims}

    def drop(self, slug: str | None = None) -> None:
        """Forget one tenant's sign-in, or (slug None) every sign-in of this browser."""
        with self._lock:
            if slug is None:
                self._by_browser.pop(self._browser(), None)
            else:
                self._by_browser.get(self._browser(), {}).pop(slug, None)

    def drop_ended(self, slug: str, *, sid: str | None, sub: str | None) -> int:
        """Back-channel logout: forget, in every browser, the tenant's sign-ins that came from the
        IdP sign-in `sid` (or, without one, every sign-in of `sub`). Returns how many."""
        dropped = 0
        with self._lock:
            for signins in self._by_browser.values():
                claims = (signins.get(slug) or {}).get("claims", {})
                if claims and ((sid and claims.get("sid") == sid) or (not sid and sub and claims.get("sub") == sub)):
                    signins.pop(slug)
                    dropped += 1
        return dropped


LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"


class InvalidLogoutToken(Exception):
    pass


def validate_logout_token(token: str, *, issuer: str, client_id: str, jwks_of) -> dict:
    """What an RP checks of a logout token (OpenID Connect Back-Channel Logout 1.0 section 2.6): its
    signature against the IdP's JWKS (fetched afresh once for a key not seen yet), typ logout+jwt,
    iss, aud, a recent iat, the logout event, sid or sub, and no nonce."""
    if not token or len(token) > 10_000:
        raise InvalidLogoutToken("missing logout_token")
    try:
        header = jws.extract_compact(token.encode()).protected
        keys = KeySet.import_key_set(jwks_of(False))
        if header.get("kid") not in {key.kid for key in keys.keys}:
            keys = KeySet.import_key_set(jwks_of(True))
        decoded = jwt.decode(token, keys, algorithms=["RS256"])
    except (JoseError, ValueError) as error:
        raise InvalidLogoutToken(f"not a valid token: {error}") from None
    claims = decoded.claims
    if decoded.header.get("typ") != "logout+jwt":
        raise InvalidLogoutToken("typ is not logout+jwt")
    try:
        jwt.JWTClaimsRegistry(leeway=60, iss={"essential": True, "value": issuer},
                              aud={"essential": True, "value": client_id}, iat={"essential": True},
                              exp={"essential": False}).validate(claims)
    except JoseError as error:
        raise InvalidLogoutToken(str(error)) from None
    if abs(time.time() - claims["iat"]) > 300:
        raise InvalidLogoutToken("iat is not recent")
    if LOGOUT_EVENT not in (claims.get("events") or {}) or "nonce" in claims:
        raise InvalidLogoutToken("not a logout token")
    if not (claims.get("sid") or claims.get("sub")):
        raise InvalidLogoutToken("neither sid nor sub")
    return claims


def create_rp_app(kind: str, title: str, *, clients_file: Path | None = None) -> Flask:
    issuer, registrations = load_registrations(kind, clients_file)
    by_slug = {r.slug: r for r in registrations}

    app = Flask(__name__)
    app.config.update(
        # A fresh key per start: the demo's sessions need not survive a restart.
        SECRET_KEY=secrets.token_hex(32),
        # All demo apps share the host 127.0.0.1, and cookies ignore the port.
        SESSION_COOKIE_NAME=f"rp_{kind}_session",
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_HTTPONLY=True,
        RP_TITLE=title,
        RP_ISSUER=issuer,
    )
    csrf = CSRFProtect(app)
    oauth = OAuth(app)
    for reg in registrations:
        oauth.register(
            name=reg.slug,
            client_id=reg.client_id,
            client_secret=reg.client_secret,
            server_metadata_url=f"{issuer}/.well-known/openid-configuration",
            client_kwargs={"scope": SCOPE, "code_challenge_method": "S256"},
        )
    signins = SignIns()

    def registration(slug: str) -> Registration:
        reg = by_slug.get(slug)
        if reg is None:
            abort(404)
        return reg

    @app.context_processor
    def _globals():
        return {"title": title, "issuer": issuer, "registrations": registrations}

    @app.route("/")
    def index():
        if len(registrations) == 1:
            return redirect(url_for("home", slug=registrations[0].slug))
        return render_template("index.html", signins={r.slug: signins.get(r.slug) for r in registrations})

    @app.route("/<slug>/")
    def home(slug: str):
        reg = registration(slug)
        if request.args.get("state"):
            # Back from the IdP's end_session_endpoint (RP-initiated logout).
            try:
                oauth.create_client(slug).validate_logout_response()
                flash("You have signed out everywhere: the identity provider will ask for your password again.")
            except OAuthError:
                flash("The sign-out response did not match a sign-out started here.")
            return redirect(url_for("home", slug=slug))
        return render_template("home.html", reg=reg, signin=signins.get(slug), shown_claims=SHOWN_CLAIMS)

    #: The levels the demo can ask for (acr_values): a safeguarding lead's view needs a security key.
    levels = {"2fa": "urn:cpoms:acr:2fa", "key": "urn:cpoms:acr:phr"}

    @app.route("/<slug>/login")
    def login(slug: str):
        reg = registration(slug)
        extra = {"acr_values": levels[request.args["level"]]} if request.args.get("level") in levels else {}
        try:
            return oauth.create_client(slug).authorize_redirect(reg.redirect_uri, **extra)
        except requests.RequestException:
            return _idp_unreachable(reg)

    @app.route("/<slug>/callback")
    def callback(slug: str):
        reg = registration(slug)
        try:
            token = oauth.create_client(slug).authorize_access_token()
        except OAuthError as error:
            flash(f"Sign-in did not complete: {error.error}"
                  + (f" ({error.description})" if error.description else ""))
            return redirect(url_for("home", slug=slug))
        except JoseError as error:
            flash(f"The ID token was refused: {error}")
            return redirect(url_for("home", slug=slug))
        except requests.RequestException:
            return _idp_unreachable(reg)
        signins.put(slug, token["id_token"], dict(token["userinfo"]))
        return redirect(url_for("home", slug=slug))

    @app.route("/<slug>/logout", methods=["POST"])
    def logout(slug: str):
        registration(slug)
        signins.drop(slug)
        flash("You have signed out of this app. You are still signed in at the identity provider, "
              "so Sign in will not ask for your password.")
        return redirect(url_for("home", slug=slug))

    @app.route("/<slug>/logout/everywhere", methods=["POST"])
    def logout_everywhere(slug: str):
        reg = registration(slug)
        signin = signins.get(slug)
        # The IdP session is gone after this, so every tenant of this app is signed out too.
        signins.drop()
        try:
            return oauth.create_client(slug).logout_redirect(
                post_logout_redirect_uri=reg.post_logout_redirect_uri,
                id_token_hint=signin["id_token"] if signin else None,
                client_id=reg.client_id,
            )
        except (requests.RequestException, RuntimeError):
            return _idp_unreachable(reg)

    jwks_cache: dict = {}

    def jwks_of(slug: str):
        def fetch(fresh: bool) -> dict:
            if fresh or slug not in jwks_cache:
                jwks_cache[slug] = oauth.create_client(slug).fetch_jwk_set(force=True)
            return jwks_cache[slug]

        return fetch

    @app.route("/<slug>/backchannel-logout", methods=["POST"])
    @csrf.exempt
    def backchannel_logout(slug: str):
        """The IdP tells us a sign-in ended (OpenID Connect Back-Channel Logout 1.0): forget every
        session of ours that came from it, in every browser."""
        reg = registration(slug)
        try:
            claims = validate_logout_token(request.form.get("logout_token", ""), issuer=issuer,
                                           client_id=reg.client_id, jwks_of=jwks_of(slug))
        except (InvalidLogoutToken, requests.RequestException) as error:
            app.logger.warning("refused a logout token: %s", error)
            return {"error": "invalid_request", "error_description": str(error)}, 400
        signins.drop_ended(slug, sid=claims.get("sid"), sub=claims.get("sub"))
        response = app.response_class("", status=200)
        response.headers["Cache-Control"] = "no-store"
        return response

    def _idp_unreachable(reg: Registration):
        return render_template("unreachable.html", reg=reg), 502

    return app


def main(kind: str, title: str, default_port: int) -> None:
    parser = argparse.ArgumentParser(description=f"{title} (demo relying party)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--clients-file", type=Path, default=None,
                        help="written by `idp demo-data` (default <IDP_INSTANCE_PATH>/demo-clients.json)")
    args = parser.parse_args()
    try:
        app = create_rp_app(kind, title, clients_file=args.clients_file)
    except NotConfigured as problem:
        raise SystemExit(f"Error: {problem}") from None
    # Werkzeug's access log would print authorization codes from the callback URL.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Bind first, so "listening" is printed only once it is true.
    from werkzeug.serving import make_server

    try:
        server = make_server(args.host, args.port, app, threaded=True)
    except (OSError, SystemExit):
        raise SystemExit(f"Error: port {args.port} on {args.host} is already in use or cannot be used: "
                         "choose another with --port (make run: DEMO_SCHOOL_PORT / DEMO_STAFFSAFE_PORT).") from None
    print(f"{title} listening on http://{args.host}:{args.port}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
