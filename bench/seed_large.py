"""Fill a database with a national-scale directory, fast: `bench/seed_large.py --database-url URL`.

Defaults: 10,000 tenants (one confidential client each), 1,000,000 accounts
(100 per tenant, one in ten an SSO account) each with one active membership,
and 1,000,000 live refresh tokens (one per account; access token expired,
refresh token valid for 30 days). Bulk loading: COPY on PostgreSQL, SQLAlchemy
Core executemany batches on SQLite. Every account shares one precomputed argon2id
hash (hashing a million passwords would take hours and proves nothing here);
codes and tokens are stored as SHA-256 hashes, as the IdP stores them.

Run it on an empty or migrated database, then `bench/run.py --database-url URL`
adds the benchmark tenant, users and client next to the seeded rows."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sys
import time
from datetime import timedelta
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR.parent))

from sqlalchemy import func, insert, select, text  # noqa: E402

from idp import clock, create_app  # noqa: E402
from idp.extensions import db  # noqa: E402

SCOPE = "openid email profile offline_access"
REDIRECT = "https://school-{n}.example.org/callback"


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def shared_password_hash() -> str:
    from argon2 import PasswordHasher, Type

    # The IdP's default cost, so a seeded account verifies exactly like a real one.
    return PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.ID).hash(
        "Seeded-Account-" + secrets.token_urlsafe(8))


def next_id(conn, table) -> int:
    return (conn.execute(select(func.max(table.c.id))).scalar() or 0) + 1


class Rows:
    """Generates the rows of each table as tuples in the tables' column order."""

    def __init__(self, tenants: int, accounts: int, tokens: int, start: dict, salt: str, password_hash: str):
        self.tenants, self.accounts, self.tokens = tenants, accounts, tokens
        self.start, self.salt, self.password_hash = start, salt, password_hash
        self.now = clock.now()
        self.per_tenant = max(1, accounts // tenants)

    def tenant_id(self, n: int) -> int:
        return self.start["tenants"] + n

    def account_tenant(self, a: int) -> int:
        return self.tenant_id(min(a // self.per_tenant, self.tenants - 1))

    def tenant_rows(self):
        for n in range(self.tenants):
            yield {"id": self.tenant_id(n), "slug": f"seed-{self.salt}-{n}", "name": f"Seeded School {n}",
                   "product": "cpoms" if n % 4 else "staffsafe", "timezone": "Europe/London", "require_2fa": "off",
                   "hide_unknown_email": False, "created_at": self.now}

    def client_rows(self):
        for n in range(self.tenants):
            yield {"id": self.start["clients"] + n, "client_id": f"seed-{self.salt}-{n}",
                   "tenant_id": self.tenant_id(n), "name": f"CPOMS for school {n}",
                   "secret_hash": sha256(f"client-{self.salt}-{n}"), "is_public": False,
                   "redirect_uris": [REDIRECT.format(n=n)], "post_logout_redirect_uris": [],
                   "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"],
                   "scope": SCOPE, "token_endpoint_auth_method": "client_secret_basic",
                   "registration_token_hash": None, "created_at": self.now}

    def account_rows(self):
        for a in range(self.accounts):
            sso = a % 10 == 0
            yield {"id": self.start["accounts"] + a, "sub": sha256(f"sub-{self.salt}-{a}")[:32],
                   "provider": "sso" if sso else "identity",
                   "tenant_id": None if sso else self.account_tenant(a),
                   "email": f"person{a}.{self.salt}@school{a // self.per_tenant}.example.org",
                   "name": f"Person {a}", "password_hash": self.password_hash, "password_changed_at": self.now,
                   "session_epoch": 0, "retired": False, "is_operator": False, "created_at": self.now}

    def membership_rows(self):
        for a in range(self.accounts):
            yield {"id": self.start["memberships"] + a, "account_id": self.start["accounts"] + a,
                   "tenant_id": self.account_tenant(a), "role": "admin" if a % 50 == 0 else "staff",
                   "active": True, "created_at": self.now}

    def token_rows(self):
        issued = self.now - timedelta(days=1)
        for t in range(self.tokens):
            a = t % self.accounts
            tenant_n = self.account_tenant(a) - self.start["tenants"]
            yield {"id": self.start["tokens"] + t, "client_id": f"seed-{self.salt}-{tenant_n}",
                   "account_id": self.start["accounts"] + a, "tenant_id": self.account_tenant(a),
                   "access_token_hash": sha256(f"at-{self.salt}-{t}"),
                   "refresh_token_hash": sha256(f"rt-{self.salt}-{t}"),
                   "family_id": sha256(f"fam-{self.salt}-{t}")[:32], "authorization_code_id": None,
                   "scope": SCOPE, "auth_time": int(issued.timestamp()), "amr": ["pwd"], "acr": None,
                   "issued_at": issued, "access_expires_at": issued + timedelta(hours=1),
                   "refresh_expires_at": self.now + timedelta(days=29), "refresh_used_at": None,
                   "revoked_at": None}


def json_columns(table) -> set[str]:
    return {c.name for c in table.columns if c.type.__class__.__name__ == "JSON"}


def load_postgresql(conn, table, rows, columns: list[str]) -> int:
    """COPY: one stream for the whole table."""
    raw = conn.connection.driver_connection
    as_json = json_columns(table)
    count = 0
    with raw.cursor() as cursor:
        with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([json.dumps(row[c]) if c in as_json else row[c] for c in columns])
                count += 1
    return count


def load_sqlite(conn, table, rows, batch: int) -> int:
    """SQLAlchemy Core insert(), executemany in batches (the column types do the conversions)."""
    statement = insert(table)
    count, chunk = 0, []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= batch:
            conn.execute(statement, chunk)
            count += len(chunk)
            chunk = []
    if chunk:
        conn.execute(statement, chunk)
        count += len(chunk)
    return count


def seed(database_url: str, *, tenants: int, accounts: int, tokens: int, batch: int, log=print) -> dict:
    from flask_migrate import upgrade

    instance = Path(os.environ.get("IDP_BENCH_INSTANCE", "/tmp/idp-seed-instance"))
    app = create_app({"database_url": database_url, "instance_path": instance})
    postgres = database_url.startswith("postgresql")
    timings = {}
    with app.app_context():
        upgrade()
        tables = db.metadata.tables
        names = ("tenants", "clients", "accounts", "memberships", "tokens")
        with db.engine.begin() as conn:
            start = {name: next_id(conn, tables[name]) for name in names}
        rows = Rows(tenants, accounts, tokens, start, secrets.token_hex(3), shared_password_hash())
        generators = {"tenants": rows.tenant_rows, "clients": rows.client_rows, "accounts": rows.account_rows,
                      "memberships": rows.membership_rows, "tokens": rows.token_rows}
        for name in names:
            table = tables[name]
            began = time.perf_counter()
            first = next(generators[name](), None)
            if first is None:
                continue
            columns = [c for c in first if c in table.c]
            with db.engine.begin() as conn:
                if postgres:
                    count = load_postgresql(conn, table, generators[name](), columns)
                else:
                    conn.exec_driver_sql("PRAGMA synchronous=OFF")
                    count = load_sqlite(conn, table, generators[name](), batch)
            timings[name] = {"rows": count, "seconds": round(time.perf_counter() - began, 1)}
            log(f"  {name}: {count:,} rows in {timings[name]['seconds']} s")
        with db.engine.begin() as conn:
            if postgres:
                for name in names:
                    # Explicit ids were loaded: move each serial sequence past them.
                    conn.execute(text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))"))
                conn.execute(text("ANALYZE"))
            else:
                conn.execute(text("ANALYZE"))
        db.engine.dispose()
    return timings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=os.environ.get("IDP_BENCH_DATABASE_URL"),
                        help="SQLAlchemy URL (or IDP_BENCH_DATABASE_URL)")
    parser.add_argument("--tenants", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--tokens", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=20_000, help="rows per executemany batch (SQLite)")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("give --database-url or IDP_BENCH_DATABASE_URL")
    began = time.perf_counter()
    print(f"Seeding {args.tenants:,} tenants, {args.accounts:,} accounts, {args.tokens:,} refresh tokens ...")
    seed(args.database_url, tenants=args.tenants, accounts=args.accounts, tokens=args.tokens, batch=args.batch)
    print(f"done in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
