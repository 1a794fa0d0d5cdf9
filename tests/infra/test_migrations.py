"""The migrations are the schema: upgrading an empty database gives exactly the
models' tables, and a downgrade to nothing followed by an upgrade works, on
SQLite and (in CI) PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect

from idp import create_app
from idp.extensions import db
from tests.servers import drop_scratch_database, scratch_database_url


@pytest.fixture
def empty_database(tmp_path):
    url = scratch_database_url(tmp_path, "migrations")
    app = create_app({"database_url": url, "instance_path": tmp_path / "instance"})
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()
    drop_scratch_database(url)


def _tables() -> set[str]:
    return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def _differences_from_models() -> list:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return compare_metadata(context, db.metadata)


def test_upgrade_from_empty_creates_every_table_of_the_models(empty_database):
    assert _tables() == set()
    upgrade()
    assert _tables() == set(db.metadata.tables)


def test_migrated_schema_matches_the_models_exactly(empty_database):
    upgrade()
    assert _differences_from_models() == []


def test_downgrade_to_nothing_then_upgrade_again(empty_database):
    upgrade()
    downgrade(revision="base")
    assert _tables() == set()
    upgrade()
    assert _tables() == set(db.metadata.tables)
    assert _differences_from_models() == []


def test_partial_unique_indexes_allow_same_email_for_identity_and_sso(empty_database):
    # The rule that one email may be an SSO account and an Identity account at each
    # school lives in partial indexes; both databases must honour the WHERE clause.
    from sqlalchemy.exc import IntegrityError

    from idp.accounts.directory import create_account
    from idp.tenants import create_tenant

    upgrade()
    oak = create_tenant(slug="oak", name="Oak School", product="cpoms")
    elm = create_tenant(slug="elm", name="Elm School", product="cpoms")
    create_account(provider="sso", email="a@example.org", tenants=[oak], name="A")
    create_account(provider="identity", email="a@example.org", tenants=[oak], name="A")
    create_account(provider="identity", email="a@example.org", tenants=[elm], name="A")
    db.session.commit()
    with pytest.raises(Exception) as raised:
        create_account(provider="sso", email="a@example.org", tenants=[elm], name="A again")
        db.session.flush()
    db.session.rollback()
    assert isinstance(raised.value, IntegrityError) or "already" in str(raised.value).lower()


BATCH_MIGRATION = '''"""recreate accounts (test only)"""
import sqlalchemy as sa
from alembic import op

revision = "9999"
down_revision = "{head}"
branch_labels = None
depends_on = None


def _recreate():
    # Copying the table is SQLite's way; PostgreSQL alters in place.
    return "always" if op.get_bind().dialect.name == "sqlite" else "auto"


def upgrade():
    with op.batch_alter_table("accounts", recreate=_recreate()) as batch_op:
        batch_op.add_column(sa.Column("nickname", sa.String(20)))


def downgrade():
    with op.batch_alter_table("accounts", recreate=_recreate()) as batch_op:
        batch_op.drop_column("nickname")
'''


def test_a_migration_that_recreates_a_table_keeps_the_rows_that_point_at_it(empty_database, tmp_path):
    # SQLite alters tables by copying them; with foreign keys enforced, dropping the old
    # `accounts` would delete every membership (ON DELETE CASCADE) unless migrations turn them off.
    import shutil

    from sqlalchemy import text

    from idp.accounts.directory import create_account
    from idp.config import PROJECT_ROOT
    from idp.tenants import create_tenant

    migrations = tmp_path / "migrations"
    shutil.copytree(PROJECT_ROOT / "migrations", migrations, ignore=shutil.ignore_patterns("__pycache__"))
    upgrade(directory=str(migrations))
    tenant = create_tenant(slug="oak", name="Oak School", product="cpoms")
    create_account(provider="sso", email="a@example.org", tenants=[tenant], name="A")
    db.session.commit()
    db.session.remove()

    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(migrations)).get_current_head()
    (migrations / "versions" / "9999_recreate_accounts.py").write_text(BATCH_MIGRATION.replace("{head}", head))
    upgrade(directory=str(migrations))
    downgrade(directory=str(migrations), revision=head)
    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM memberships")).scalar() == 1
        if connection.dialect.name == "sqlite":
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
