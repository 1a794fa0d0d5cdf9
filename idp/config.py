"""Every setting of the IdP, its environment variable and its default, in one place.

`Settings.from_env()` reads the IDP_* variables of interface.md; create_app
accepts overrides (tests). `Settings.problems_for_production()` says why a
production start must be refused."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_int(name: str, default: int, minimum: int = 0) -> int:
    value = _env(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < minimum:
        raise ValueError(f"{name} must be a whole number of at least {minimum}, not {value!r}")
    return number


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


class UnsafeForProduction(RuntimeError):
    """IDP_ENV=production with settings that must not serve real users."""

    def __init__(self, problems: list[str], when: str = " in production mode"):
        self.problems = problems
        super().__init__(f"Refusing to start{when}: " + "; ".join(problems))


@dataclass(frozen=True)
class Settings:
    #: IDP_ENV: "development" (default) or "production" (refuses unsafe settings).
    env: str = "development"
    #: IDP_INSTANCE_PATH: the data folder (SQLite database, generated secret key, outbox).
    instance_path: Path = PROJECT_ROOT / "instance"
    #: IDP_DATABASE_URL: SQLAlchemy URL; default SQLite under the instance folder.
    database_url: str = ""
    #: IDP_ISSUER: the OIDC issuer identifier, exactly as in discovery.
    issuer: str = "http://127.0.0.1:5000"
    #: IDP_SECRET_KEY: session signing key; generated once into the instance folder if unset.
    secret_key: str = ""
    #: True when secret_key came from the environment rather than the instance file.
    secret_key_configured: bool = False
    #: IDP_MAIL_URL: "outbox" or smtp://user:pass@host:port / smtps://...
    mail_url: str = "outbox"
    #: IDP_MAIL_FROM: sender of reset and invitation mails.
    mail_from: str = "notifications@cpoms.net"
    #: IDP_DATABASE_POOL_SIZE: PostgreSQL connections each worker keeps open once it has needed them;
    #: gunicorn's gevent workers take no more requests at once (gunicorn.conf.py), so none waits for one.
    database_pool_size: int = 25
    #: IDP_DATABASE_STATEMENT_TIMEOUT: seconds a PostgreSQL statement may run before it is cancelled
    #: (the request answers 503). gunicorn's timeout does not stop a gevent request, so this bounds it.
    database_statement_timeout: int = 5
    #: IDP_DATABASE_LOCK_TIMEOUT: seconds a statement may wait for a lock (PostgreSQL lock_timeout,
    #: SQLite's busy wait) before the request answers 503 instead of hanging on a locked table.
    database_lock_timeout: int = 2
    #: IDP_DATABASE_CONNECT_TIMEOUT: seconds to wait for a new PostgreSQL connection (a failed-over
    #: host that drops packets would otherwise hang each request for minutes).
    database_connect_timeout: int = 5
    #: IDP_DATABASE_POOL_RECYCLE: seconds after which a pooled connection is closed and made afresh,
    #: so none outlives a failover or a changed server setting for long.
    database_pool_recycle: int = 600
    #: IDP_REDIS_URL: shared rate-limit store for several processes.
    redis_url: str | None = None
    #: IDP_REDIS_TIMEOUT: seconds to wait for Redis to connect or answer before the throttled
    #: action answers 503.
    redis_timeout: int = 2
    #: IDP_TIMEZONE: default tenant timezone.
    timezone: str = "Europe/London"
    #: IDP_TRUSTED_PROXIES: how many reverse proxies' X-Forwarded-* headers to trust (0 = none).
    trusted_proxies: int = 0
    #: IDP_MFA_KEY: key that encrypts TOTP secrets at rest (Fernet, urlsafe base64 32 bytes);
    #: derived from the secret key when unset.
    mfa_key: str = ""
    #: IDP_OPERATORS_REQUIRE_SECURITY_KEY: platform operators must sign in with a security key or
    #: passkey (the phishing-resistant level), not an app code.
    operators_require_security_key: bool = False
    #: IDP_PASSWORD_MIN_LENGTH
    password_min_length: int = 8
    #: IDP_ARGON2_TIME_COST / IDP_ARGON2_MEMORY_KIB / IDP_ARGON2_PARALLELISM: argon2id cost.
    #: Defaults follow OWASP's password storage cheat sheet (m=19 MiB, t=2, p=1).
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19456
    argon2_parallelism: int = 1
    #: Lifetimes (seconds).
    authorization_code_ttl: int = 60
    access_token_ttl: int = 3600
    id_token_ttl: int = 3600
    refresh_token_ttl: int = 30 * 24 * 3600
    #: IDP_SESSION_TTL: how long a browser sign-in lasts (seconds).
    session_ttl: int = 12 * 3600
    #: IDP_RATELIMITS: set to "off" only for load tests of non-login paths.
    ratelimits_enabled: bool = True
    #: IDP_COUNT_QUERIES: adds an X-SQL-Queries response header (benchmarks, tests).
    count_queries: bool = False
    #: Extra Flask config (tests).
    flask_overrides: dict = field(default_factory=dict)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def outbox_path(self) -> Path:
        return Path(self.instance_path) / "outbox"

    @property
    def https(self) -> bool:
        return self.issuer.startswith("https://")

    @classmethod
    def from_env(cls, overrides: dict | None = None) -> "Settings":
        instance = Path(_env("IDP_INSTANCE_PATH", str(PROJECT_ROOT / "instance"))).resolve()
        values = dict(
            env=_env("IDP_ENV", "development"),
            instance_path=instance,
            database_url=_env("IDP_DATABASE_URL", ""),
            database_pool_size=_env_int("IDP_DATABASE_POOL_SIZE", 25, minimum=1),
            database_statement_timeout=_env_int("IDP_DATABASE_STATEMENT_TIMEOUT", 5, minimum=1),
            database_lock_timeout=_env_int("IDP_DATABASE_LOCK_TIMEOUT", 2, minimum=1),
            database_connect_timeout=_env_int("IDP_DATABASE_CONNECT_TIMEOUT", 5, minimum=1),
            database_pool_recycle=_env_int("IDP_DATABASE_POOL_RECYCLE", 600, minimum=1),
            issuer=_env("IDP_ISSUER", "http://127.0.0.1:5000").rstrip("/"),
            secret_key=_env("IDP_SECRET_KEY", ""),
            mail_url=_env("IDP_MAIL_URL", "outbox"),
            mail_from=_env("IDP_MAIL_FROM", "notifications@cpoms.net"),
            redis_url=_env("IDP_REDIS_URL"),
            redis_timeout=_env_int("IDP_REDIS_TIMEOUT", 2, minimum=1),
            timezone=_env("IDP_TIMEZONE", "Europe/London"),
            trusted_proxies=_env_int("IDP_TRUSTED_PROXIES", 0),
            mfa_key=_env("IDP_MFA_KEY", ""),
            operators_require_security_key=_env_bool("IDP_OPERATORS_REQUIRE_SECURITY_KEY", False),
            password_min_length=_env_int("IDP_PASSWORD_MIN_LENGTH", 8),
            argon2_time_cost=_env_int("IDP_ARGON2_TIME_COST", 2),
            argon2_memory_kib=_env_int("IDP_ARGON2_MEMORY_KIB", 19456),
            argon2_parallelism=_env_int("IDP_ARGON2_PARALLELISM", 1),
            session_ttl=_env_int("IDP_SESSION_TTL", 12 * 3600),
            ratelimits_enabled=_env_bool("IDP_RATELIMITS", True),
            count_queries=_env_bool("IDP_COUNT_QUERIES", False),
        )
        known = {f.name for f in fields(cls)}
        flask_overrides = {}
        for key, value in (overrides or {}).items():
            if key in known:
                values[key] = value
            else:
                flask_overrides[key] = value
        values["flask_overrides"] = flask_overrides
        if isinstance(values["instance_path"], str):
            values["instance_path"] = Path(values["instance_path"])
        settings = cls(**values)
        if settings.env not in ("development", "production"):
            # A typo ("prod") must not quietly start a development server with a generated key.
            raise UnsafeForProduction([f"IDP_ENV must be development or production (it is {settings.env!r})"], when="")
        if not settings.database_url:
            settings = replace(
                settings, database_url=f"sqlite:///{Path(settings.instance_path) / 'idp.sqlite3'}"
            )
        if settings.secret_key:
            settings = replace(settings, secret_key_configured=True)
        return settings

    def with_generated_secret(self) -> "Settings":
        """Development only: a secret key kept in the instance folder, made once."""
        if self.secret_key:
            return self
        path = Path(self.instance_path) / "secret_key"
        if not path.exists():
            # Several gunicorn workers start at once: the first to link its key wins and
            # every worker reads that one, or sessions would not survive a change of worker.
            path.parent.mkdir(parents=True, exist_ok=True)
            draft = path.with_name(f".secret_key.{os.getpid()}.{secrets.token_hex(4)}")
            draft.write_text(secrets.token_urlsafe(48))
            draft.chmod(0o600)
            try:
                os.link(draft, path)
            except FileExistsError:
                pass
            finally:
                draft.unlink()
        return replace(self, secret_key=path.read_text().strip())

    def check_production(self) -> None:
        """In production mode, refuse (UnsafeForProduction) settings that must not serve real users."""
        problems = self.problems_for_production() if self.is_production else []
        if problems:
            raise UnsafeForProduction(problems)

    def problems_for_production(self) -> list[str]:
        """Why this configuration must not serve real users (empty when fine)."""
        problems = []
        if not self.https:
            problems.append(f"IDP_ISSUER must be an https URL in production (it is {self.issuer})")
        if not self.secret_key_configured:
            problems.append("IDP_SECRET_KEY must be set in production")
        elif len(self.secret_key) < 32:
            problems.append("IDP_SECRET_KEY must be at least 32 characters long")
        if self.mail_url == "outbox":
            problems.append("IDP_MAIL_URL must name an SMTP server in production, not the outbox")
        if self.database_url.startswith("sqlite"):
            problems.append("IDP_DATABASE_URL should be PostgreSQL in production (it is SQLite)")
        if not self.ratelimits_enabled:
            problems.append("IDP_RATELIMITS must be on in production (it guards every password and code)")
        if not self.redis_url:
            # Production runs several worker processes (and nodes): counts kept in each process
            # would give a guesser a fresh allowance in every one of them.
            problems.append("IDP_REDIS_URL must be set in production, so every process counts sign-in attempts together")
        return problems
