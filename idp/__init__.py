"""CPOMS identity provider: a federated single-sign-on OpenID Connect provider."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from .config import PROJECT_ROOT, Settings
from .errors import DomainError
from .web import refuse_nul_characters
from . import ratelimits, transactions
from .extensions import csrf, db, login_manager, migrate, ping_idle_connections

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

    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n, x_prefix=n)

    db.init_app(app)
    with app.app_context():
        ping_idle_connections(db.engine)
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
    _register_error_pages(app)
    _register_security_headers(app)
    app.before_request(refuse_nul_characters)
    from .querycount import register_query_count

    register_query_count(app)

    from .cli import register_commands

    register_commands(app)
    # Last, so it runs before every other after-request hook (Flask runs them in reverse).
    transactions.init_app(app)
    return app


def _local_time(value, tenant=None) -> str:
    """Times on pages: in the school's timezone where there is one, else the platform's (IDP_TIMEZONE)."""
    from flask import current_app

    from . import clock

    tz = tenant.timezone if tenant is not None else current_app.config["SETTINGS"].timezone
    return clock.describe(value, tz)


class _RowIdConverter(IntegerConverter):
    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(url_map, *args, **kwargs)


def _configure(app: Flask, settings: Settings) -> None:
    # Idle connections are pinged by extensions.ping_idle_connections, not every checkout.
    if settings.database_url.startswith("sqlite"):
        engine_options = {"connect_args": {"timeout": 30, "check_same_thread": False}}
    else:
        # Every connection a worker has needed stays open. SQLAlchemy's default keeps 5 and closes
        # the rest on return, so a worker with more requests in flight connected afresh over and
        # over (600 new connections in a 20 s benchmark run), which cost PostgreSQL more CPU than
        # the requests themselves (bench/README.md).
        engine_options = {"pool_size": settings.database_pool_size, "max_overflow": 0, "pool_use_lifo": True}
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=engine_options,
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


def _error_page(title: str, message: str, status: int, hint: str | None = None):
    if request.accept_mimetypes.best == "application/json" or request.path.startswith(("/oauth", "/api")):
        return {"error": title.lower().replace(" ", "_"), "error_description": message}, status
    return render_template("error.html", title=title, message=message, hint=hint), status


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
        titles = {404: "Page not found", 405: "Not allowed", 403: "Access denied", 400: "Bad request"}
        return _error_page(titles.get(error.code, error.name), error.description or "", error.code or 500)

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        app.logger.exception("unhandled error")
        db.session.rollback()
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
