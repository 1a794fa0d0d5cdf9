"""Admin-area fixtures: a beech admin (for cross-tenant forgery), signed-in browsers, a DB snapshot,
tokens, and a statement counter."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import event, select

from idp import clock
from idp.accounts.directory import create_account
from idp.extensions import db
from idp.models import Membership, Token
from idp.models.base import hash_secret, new_secret
from tests.conftest import PASSWORD, Browser


@pytest.fixture(autouse=True)
def _forget_signed_in_user_between_requests(app):
    # The test keeps one app context open, so Flask-Login's cached `g._login_user` would leak from one
    # browser's request into another's: a real request never shares it.
    from flask import g

    @app.teardown_request
    def _forget(exc):
        g.pop("_login_user", None)


@pytest.fixture
def beech_admin(world):
    account = create_account(provider="identity", email="head@beech.example.org", name="Bea Head",
                             tenants=[world.beech], role="admin", password=PASSWORD)
    db.session.commit()
    return account


@pytest.fixture
def oakwood_browser(world, client):
    browser = Browser(client)
    response = browser.login("oakwood", "head@oakwood.example.org")
    assert response.status_code == 302
    return browser


@pytest.fixture
def beech_browser(beech_admin, app):
    browser = Browser(app.test_client())
    response = browser.login("beech", "head@beech.example.org")
    assert response.status_code == 302
    return browser


def membership_of(account, tenant) -> Membership:
    return db.session.scalars(
        select(Membership).where(Membership.account_id == account.id, Membership.tenant_id == tenant.id)
    ).one()


def make_token(account, tenant, client) -> Token:
    now = clock.now()
    token = Token(client_id=client.client_id, account_id=account.id, tenant_id=tenant.id,
                  access_token_hash=hash_secret(new_secret()), refresh_token_hash=hash_secret(new_secret()),
                  family_id=new_secret(12), scope="openid", auth_time=int(now.timestamp()), amr=["pwd"],
                  issued_at=now, access_expires_at=now + timedelta(hours=1),
                  refresh_expires_at=now + timedelta(days=1))
    db.session.add(token)
    db.session.commit()
    return token


def snapshot() -> dict:
    """Every row of every table: compared before and after a forged request."""
    db.session.expire_all()
    with db.engine.connect() as conn:
        return {table.name: sorted(map(tuple, conn.execute(table.select()).all()), key=repr)
                for table in db.metadata.sorted_tables}


@contextmanager
def count_statements():
    statements: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
