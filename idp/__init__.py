"""CPOMS identity provider: a federated single-sign-on OpenID Connect provider."""

from __future__ import annotations

import re
from pathlib import Path

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface
from markupsafe import Markup, escape
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from .config import PROJECT_ROOT, Settings
from .errors import DomainError
from .web import refuse_nul_characters
from . import clock, outages, ratelimits, transactions
from .extensions import (
    csrf, db, discard_connections_on_failover, engine_options, login_manager, migrate, ping_idle_connections,
)

BLUEPRINTS = (
    "idp.request_log",  # first: its request id and timer hooks run before the others
    "idp.auth.views",
    "idp.reset.views",
    "idp.mail.views",
    "idp.oidc.views",
    "idp.account_settings.views",
    "idp.admin.views",
    "idp.ops",
)


def create_app(overrides: dict | None = None) -> Flask:
    settings = Settings.from_env(overrides)
    settings.check_production()
    settings = settings.with_generated_secret()

    app = Flask(
        __name__,
        instance_path=str(settings.instance_path),
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder="static",
    )
    Path(settings.instance_path).mkdir(parents=True, exist_ok=True)
    _configure(app, settings)
    app.session_interface = _SessionCookies()

    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n)

    db.init_app(app)
    with app.app_context():
        ping_idle_connections(db.engine)
        discard_connections_on_failover(db.engine)
    migrate.init_app(app, db, directory=str(PROJECT_ROOT / "migrations"), render_as_batch=True)
    login_manager.init_app(app)
    csrf.init_app(app)
    ratelimits.init_app(app)

    # Row ids in URLs (/users/<int:...>) beyond a 64-bit integer overflow the database driver: a 404, not a 500.
    app.url_map.converters["int"] = _RowIdConverter

    from . import models  # noqa: F401  (register every table with the metadata)
    from .auth import session  # noqa: F401  (user loader)

    for module_name in BLUEPRINTS:
        module = __import__(module_name, fromlist=["bp"])
        app.register_blueprint(module.bp)
        if getattr(module, "csrf_exempt", False):
            csrf.exempt(module.bp)

    # The one list of providers (names, help-page wording) for every template.
    from .accounts import providers

    app.jinja_env.globals.update(providers=providers, provider_name=providers.name, local_time=_local_time)
    app.jinja_env.globals.update(zone_label=clock.zone_label, local_in=clock.local)
    app.jinja_env.filters["wrap_points"] = _wrap_points
    # Browsers ask for /favicon.ico whatever the page links: the same icon, not a 404 in every log.
    app.add_url_rule("/favicon.ico", "favicon", lambda: app.send_static_file("favicon.svg"))
    _register_error_pages(app)
    transactions.init_app(app)
    outages.init_app(app)
    _register_security_headers(app)
    app.before_request(refuse_nul_characters)
    from .querycount import register_query_count

    register_query_count(app)

    from .cli import register_commands

    register_commands(app)
    return app


def _local_time(value, tenant=None) -> str:
    """Times on pages: in the school's timezone where there is one, else the platform's (IDP_TIMEZONE)."""
    from flask import current_app

    from . import clock

    tz = tenant.timezone if tenant is not None else current_app.config["SETTINGS"].timezone
    return clock.describe(value, tz)


class _SessionCookies(SecureCookieSessionInterface):
    """Flask's signed cookie session, its serializer made once per secret key instead of on every
    request (the cookie's signature is checked exactly as before). At the endpoints that relying
    parties call with their own credentials (metadata.COOKIELESS_PATHS) a browser's cookie, sent
    along because it is the same host, names nothing those endpoints use: it is neither decoded nor
    re-issued there."""

    _serializer: tuple = (None, None)

    def open_session(self, app: Flask, request):
        from .oidc.metadata import COOKIELESS_PATHS

        if request.path in COOKIELESS_PATHS:
            return self.session_class()
        return super().open_session(app, request)

    def get_signing_serializer(self, app: Flask):
        keys = (app.secret_key, tuple(app.config["SECRET_KEY_FALLBACKS"] or ()))
        made_for, serializer = self._serializer
        if made_for != keys:
            serializer = super().get_signing_serializer(app)
            self._serializer = (keys, serializer)
        return serializer

_WRAP_POINT = re.compile(r"([-_./:?&=@])")


def _wrap_points(value) -> Markup:
    """An id or URL that may wrap after its punctuation (<wbr>), never in the middle of a word."""
    pieces = _WRAP_POINT.split(str(value if value is not None else ""))
    return Markup("").join(Markup(escape(piece)) + (Markup("<wbr>") if _WRAP_POINT.fullmatch(piece) else "")
                           for piece in pieces)


class _RowIdConverter(IntegerConverter):
    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(url_map, *args, **kwargs)


def _configure(app: Flask, settings: Settings) -> None:
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options(settings),
        SESSION_COOKIE_NAME="idp_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.https,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=settings.https,
        PERMANENT_SESSION_LIFETIME=settings.session_ttl,
        # A sign-in lasts session_ttl from auth_time however busy it is (auth.session), so
        # re-signing the cookie on every request would only move its Expires, at a cost per request.
        SESSION_REFRESH_EACH_REQUEST=False,
        # A login page left open all morning must still submit: the token lives as long as the session.
        WTF_CSRF_TIME_LIMIT=None,
        WTF_CSRF_SSL_STRICT=True,
        PREFERRED_URL_SCHEME="https" if settings.https else "http",
        MAX_CONTENT_LENGTH=2 * 1024 * 1024,
    )
    app.config.update(settings.flask_overrides)


#: What a relying party is told for an error its endpoint has no OAuth code of its own for.
_PROTOCOL_ERROR_CODES = {401: "invalid_client", 404: "not_found", 500: "server_error"}


def _error_page(title: str, message: str, status: int, hint: str | None = None):
    # Protocol endpoints answer JSON whatever went wrong, as do API-style callers that ask for it.
    if outages.is_protocol_request() or request.accept_mimetypes.best == "application/json":
        code = _PROTOCOL_ERROR_CODES.get(status, "server_error" if status >= 500 else "invalid_request")
        return {"error": code, "error_description": message or title}, status
    # Rendered without Flask-Login's user lookup: an error page must not need the database.
    return outages.render_page("error.html", title=title, message=message, hint=hint), status


def _register_error_pages(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def domain_error(error: DomainError):
        return _error_page("Sorry, that did not work", error.message, error.status_code)

    @app.errorhandler(CSRFError)
    def csrf_error(error: CSRFError):
        return _error_page(
            "Your session expired",
            "The form was sent without a valid security token, which happens when a page is left open "
            "for a long time or cookies are blocked. Go back, reload the page and try again.",
            400,
        )

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        # Flask's 500 for an exception that escaped the handlers below (raised after the view).
        outage = outages.cause_of(getattr(error, "original_exception", None) or error)
        if outage is not None:
            outages.rollback_quietly()
            return outages.unavailable(outage)
        titles = {404: "Page not found", 405: "Not allowed", 403: "Access denied", 400: "Bad request"}
        return _error_page(titles.get(error.code, error.name), error.description or "", error.code or 500)

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        outages.rollback_quietly()
        outage = outages.cause_of(error)
        if outage is not None:
            # The request log's line for this request names the cause; no traceback per request.
            return outages.unavailable(outage)
        app.logger.exception("unhandled error")
        return _error_page("Sorry, there is a problem with the service", "Please try again later.", 500)


def _register_security_headers(app: Flask) -> None:
    settings: Settings = app.config["SETTINGS"]

    @app.after_request
    def security_headers(response):
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        # Reset links carry their token in the path: never leak it through Referer to another
        # site. Same-origin posts keep theirs, which Flask-WTF requires over https (SSL strict).
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "frame-ancestors 'none'; form-action 'self' http: https:; base-uri 'none'",
        )
        if settings.https:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        if "Cache-Control" not in headers:
            headers["Cache-Control"] = "no-store"
        return response
