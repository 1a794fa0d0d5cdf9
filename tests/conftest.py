"""A small world for every test: tenants, accounts, clients, a frozen clock.

The database is SQLite in a temporary folder, or PostgreSQL when
IDP_TEST_DATABASE_URL is set (CI runs both). The schema is created once per
run from the migrations; every test starts from empty tables."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from idp import create_app
from idp.clock import clock as idp_clock
from idp.extensions import db

PASSWORD = "Correct-Horse-42!"

# Cheap argon2 in tests; the production cost is tested explicitly in tests/accounts.
FAST_ARGON2 = dict(argon2_time_cost=1, argon2_memory_kib=1024, argon2_parallelism=1)


def _worker_suffix() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    url = os.environ.get("IDP_TEST_DATABASE_URL")
    if not url:
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite3'}"
    # One database per xdist worker, created beside the one named.
    # IDP_TEST_DATABASE_PREFIX keeps two checkouts' runs on one cluster apart.
    name = f"{os.environ.get('IDP_TEST_DATABASE_PREFIX', 'idp_test')}_{_worker_suffix()}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return re.sub(r"/[^/?]*(\?|$)", f"/{name}\\1", url, count=1) if "/" in url.split("://", 1)[1] else url


@pytest.fixture(scope="session")
def migrated(database_url, tmp_path_factory):
    """Run the real migrations once; every test then works on empty tables."""
    from flask_migrate import upgrade

    instance = tmp_path_factory.mktemp("instance")
    app = create_app({"database_url": database_url, "instance_path": instance, **FAST_ARGON2})
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return database_url


def _empty_all_tables():
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # One statement, and ids restart at 1 as they do on SQLite after a DELETE.
            names = ", ".join(f'"{table.name}"' for table in db.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture
def app_overrides() -> dict:
    """Override per test module to change settings (e.g. hide_unknown_email, Redis)."""
    return {}


@pytest.fixture
def app(migrated, tmp_path, app_overrides):
    overrides = {
        "database_url": migrated,
        "instance_path": tmp_path / "instance",
        "TESTING": True,
        "THROTTLE_RULES": {},
        **FAST_ARGON2,
        **app_overrides,
    }
    app = create_app(overrides)

    @app.teardown_request
    def _like_a_fresh_request(exc):
        # The test keeps one app context open (to use db.session directly), so
        # Flask reuses it for every request: forget what a real request would not keep.
        from flask import g

        g.pop("csrf_token", None)
        g.pop("_login_user", None)
        g.pop("idp_sign_ins", None)
        db.session.expire_all()

    with app.app_context():
        _empty_all_tables()
        yield app
        db.session.remove()
        _empty_all_tables()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def frozen_clock():
    """The one clock, frozen at a known instant; tests move it with .freeze()/.advance()."""
    idp_clock.freeze(datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc))
    yield idp_clock
    idp_clock.unfreeze()


@dataclass
class World:
    oakwood: object  # CPOMS school with SSO members
    beech: object  # CPOMS school with no SSO users
    staffsafe: object  # a StaffSafe tenant
    sso_user: object  # SSO account, member of oakwood and staffsafe
    oakwood_identity: object  # Identity account at oakwood, same email as sso_user
    beech_identity: object  # Identity account at beech
    oakwood_admin: object  # Identity admin at oakwood
    invited: object  # Identity account at oakwood with no password yet
    oakwood_app: object  # confidential client of oakwood
    oakwood_app_secret: str
    staffsafe_app: object
    staffsafe_app_secret: str
    beech_app: object
    beech_app_secret: str
    public_app: object  # public client of oakwood (PKCE, no secret)


@pytest.fixture
def world(app) -> World:
    from idp.accounts.directory import create_account
    from idp.oidc.registry import register_client
    from idp.tenants import create_tenant

    oakwood = create_tenant(slug="oakwood", name="Oakwood Primary School", product="cpoms")
    beech = create_tenant(slug="beech", name="Beech Academy", product="cpoms")
    staffsafe = create_tenant(slug="oakwood-staffsafe", name="Oakwood Trust", product="staffsafe")
    sso_user = create_account(provider="sso", email="Sam.Jones@Example.org", name="Sam Jones",
                              tenants=[oakwood, staffsafe], password=PASSWORD)
    oakwood_identity = create_account(provider="identity", email="sam.jones@example.org", name="Sam Jones (local)",
                                      tenants=[oakwood], password="Different-Pass-77!")
    beech_identity = create_account(provider="identity", email="pat.lee@example.org", name="Pat Lee",
                                    tenants=[beech], password=PASSWORD)
    oakwood_admin = create_account(provider="identity", email="head@oakwood.example.org", name="Alex Head",
                                   tenants=[oakwood], role="admin", password=PASSWORD)
    invited = create_account(provider="identity", email="new.teacher@example.org", name="New Teacher",
                             tenants=[oakwood])
    oak = register_client(oakwood, name="Oakwood CPOMS", redirect_uris=["https://oakwood.example/callback"],
                          post_logout_redirect_uris=["https://oakwood.example/bye"])
    safe = register_client(staffsafe, name="StaffSafe", redirect_uris=["https://staffsafe.example/callback"],
                           post_logout_redirect_uris=["https://staffsafe.example/bye"])
    bee = register_client(beech, name="Beech CPOMS", redirect_uris=["https://beech.example/callback"])
    public = register_client(oakwood, name="Oakwood mobile", redirect_uris=["http://127.0.0.1:8765/cb"], public=True)
    db.session.commit()
    return World(oakwood, beech, staffsafe, sso_user, oakwood_identity, beech_identity, oakwood_admin, invited,
                 oak.client, oak.client_secret, safe.client, safe.client_secret, bee.client, bee.client_secret,
                 public.client)


def join_directly(account, tenant, role: str = "staff"):
    """Test set-up: make `account` an accepted member of `tenant` as if the person had accepted
    (the product's own path mails them an acceptance link, see accounts.lifecycle)."""
    from idp import clock
    from idp.models import Membership

    membership = Membership(tenant_id=tenant.id, role=role, active=True, accepted_at=clock.now())
    account.memberships.append(membership)
    db.session.flush()
    return membership


CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "page has no csrf_token field"
    return match.group(1)


class Browser:
    """Drives the IdP's pages like a person would, through Flask's test client."""

    def __init__(self, client):
        self.client = client

    def get(self, url, **kw):
        return self.client.get(url, **kw)

    def submit(self, page_url: str, data: dict, post_url: str | None = None, **kw):
        page = self.client.get(page_url)
        token = csrf_token_from(page.get_data(as_text=True))
        return self.client.post(post_url or page_url.split("?")[0], data={"csrf_token": token, **data}, **kw)

    def login(self, tenant_slug: str, email: str, password: str = PASSWORD, provider: str = "identity",
              next_url: str | None = None):
        page_url = f"/t/{tenant_slug}/login?provider={provider}"
        data = {"email": email, "password": password, "provider": provider}
        if next_url:
            data["next"] = next_url
        return self.submit(page_url, data)


@pytest.fixture
def browser(client) -> Browser:
    return Browser(client)


def _written_order(path: Path):
    # File names start with the (possibly frozen) clock's time: the write order decides.
    return (path.stat().st_mtime_ns, path.name)


class Outbox:
    """The mails the outbox backend wrote during a test, oldest first."""

    LINK_RE = re.compile(r"https?://\S+/reset/[A-Za-z0-9_-]+")

    def __init__(self, folder: Path):
        self.folder = folder

    def messages(self) -> list:
        from email import policy
        from email.parser import BytesParser

        if not self.folder.is_dir():
            return []
        return [BytesParser(policy=policy.default).parsebytes(p.read_bytes()) for p in sorted(self.folder.glob("*.eml"), key=_written_order)]

    def text(self, message) -> str:
        return message.get_body(preferencelist=("plain",)).get_content()

    def html(self, message) -> str:
        return message.get_body(preferencelist=("html",)).get_content()

    def last(self, to: str | None = None):
        found = [m for m in self.messages() if to is None or m["To"].addresses[0].addr_spec == to.lower()]
        assert found, f"no mail sent{' to ' + to if to else ''}"
        return found[-1]

    def last_link(self, to: str | None = None) -> str:
        """The path (/reset/<token>) of the link in the newest mail."""
        match = self.LINK_RE.search(self.text(self.last(to)))
        assert match, "the mail has no reset link"
        return "/reset/" + match.group(0).rsplit("/reset/", 1)[1]


@pytest.fixture
def outbox(app) -> Outbox:
    return Outbox(app.config["SETTINGS"].outbox_path)


@pytest.fixture
def smtp_server():
    """A real SMTP server on localhost (aiosmtpd) that keeps what it receives:
    (controller, handler); handler.envelopes, and handler.peers (the client address of each)."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Sink

    class Collect(Sink):
        def __init__(self):
            self.envelopes = []
            self.peers = []

        async def handle_DATA(self, server, session, envelope):
            self.envelopes.append(envelope)
            self.peers.append(session.peer)
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = Collect()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield controller, handler
    controller.stop()
