"""The installed `idp` script and `flask --app idp` on a fresh, empty instance folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

BIN = Path(sys.executable).parent


@pytest.fixture
def fresh_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    instance = tmp_path / "instance"
    env.update(IDP_INSTANCE_PATH=str(instance), IDP_ARGON2_MEMORY_KIB="1024", IDP_ARGON2_TIME_COST="1")
    return env, instance


def cli(env, *args, program="idp"):
    command = [str(BIN / "idp"), *args] if program == "idp" else [str(BIN / "flask"), "--app", "idp", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_db_upgrade_creates_the_schema_in_an_empty_instance_then_commands_work(fresh_env):
    env, instance = fresh_env
    result = cli(env, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    tables = set(inspect(create_engine(f"sqlite:///{instance / 'idp.sqlite3'}")).get_table_names())
    assert {"tenants", "accounts", "memberships", "clients", "alembic_version"} <= tables

    assert cli(env, "db", "upgrade").returncode == 0  # already current: nothing to do, no error

    created = cli(env, "tenant", "create", "--slug", "hazel", "--name", "Hazel School", "--json")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["slug"] == "hazel"

    refused = cli(env, "user", "create", "--email", "a@example.org", "--provider", "identity",
                  "--tenant", "nowhere", program="flask")
    assert refused.returncode == 1
    assert refused.stderr.strip() == "Error: Unknown tenant 'nowhere'"
