"""The large-data seeder writes rows the IdP reads like its own: live refresh tokens, members, clients."""

from __future__ import annotations

import sys
from pathlib import Path

from sqlalchemy import func, select

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH_DIR))

import seed_large  # noqa: E402


def test_seeded_tokens_are_live_and_belong_to_members_of_their_clients_tenant(tmp_path, monkeypatch):
    monkeypatch.setenv("IDP_BENCH_INSTANCE", str(tmp_path / "instance"))
    url = f"sqlite:///{tmp_path / 'seed.sqlite3'}"
    timings = seed_large.seed(url, tenants=3, accounts=30, tokens=30, batch=7, log=lambda *_: None)
    assert {name: t["rows"] for name, t in timings.items()} == {
        "tenants": 3, "clients": 3, "accounts": 30, "memberships": 30, "tokens": 30}

    from idp import create_app
    from idp.extensions import db
    from idp.models import Account, Client, Token

    app = create_app({"database_url": url, "instance_path": tmp_path / "instance"})
    with app.app_context():
        assert db.session.scalar(select(func.count(Account.id)).where(Account.provider == "sso")) == 3
        for token in db.session.scalars(select(Token)):
            assert token.is_refresh_usable()
            assert token.is_expired()  # the access token is a day old; only the refresh token is live
            client = db.session.scalars(select(Client).where(Client.client_id == token.client_id)).one()
            assert client.tenant_id == token.tenant_id
            assert token.account.membership_in(token.tenant_id) is not None
            assert len(token.refresh_token_hash) == 64
        db.engine.dispose()
