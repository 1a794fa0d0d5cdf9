"""The command line of interface.md: every command, its --json output, and its refusals."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from idp.extensions import db
from idp.models import Account, Client, Tenant
from tests.conftest import PASSWORD


def run(runner, *args):
    return runner.invoke(args=list(args))


@pytest.fixture
def school(runner):
    result = run(runner, "tenant", "create", "--slug", "hazel", "--name", "Hazel School", "--product", "cpoms")
    assert result.exit_code == 0, result.output
    return "hazel"


def test_tenant_create_prints_what_it_made(runner):
    result = run(runner, "tenant", "create", "--slug", "hazel", "--name", "Hazel School", "--product", "cpoms",
                 "--timezone", "Europe/London")
    assert result.exit_code == 0
    assert "Created tenant hazel (Hazel School, CPOMS, Europe/London)" in result.stdout
    assert db.session.scalar(select(Tenant).where(Tenant.slug == "hazel")).name == "Hazel School"


def test_tenant_create_json_is_parseable(runner):
    result = run(runner, "tenant", "create", "--slug", "safe", "--name", "Trust", "--product", "staffsafe", "--json")
    data = json.loads(result.stdout)
    assert data["slug"] == "safe" and data["product"] == "staffsafe" and data["timezone"] == "Europe/London"


def test_tenant_create_refuses_a_taken_slug(runner, school):
    result = run(runner, "tenant", "create", "--slug", school, "--name", "Again")
    assert result.exit_code == 1
    assert "Error: A tenant with slug 'hazel' already exists" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--slug", "Not A Slug", "--name", "X"], "Invalid slug"),
    (["--slug", "ok", "--name", "X", "--timezone", "Mars/Olympus"], "Unknown timezone 'Mars/Olympus'"),
])
def test_tenant_create_refuses_bad_values(runner, args, message):
    result = run(runner, "tenant", "create", *args)
    assert result.exit_code == 1
    assert message in result.stderr


def test_client_register_shows_the_secret_once_and_stores_only_its_hash(runner, school):
    result = run(runner, "client", "register", "--tenant", school, "--name", "Hazel CPOMS",
                 "--redirect-uri", "https://hazel.example/callback", "--redirect-uri", "http://127.0.0.1:9000/cb",
                 "--post-logout-redirect-uri", "https://hazel.example/", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["redirect_uris"] == ["https://hazel.example/callback", "http://127.0.0.1:9000/cb"]
    assert data["post_logout_redirect_uris"] == ["https://hazel.example/"]
    client = db.session.scalar(select(Client).where(Client.client_id == data["client_id"]))
    assert client.check_client_secret(data["client_secret"])
    assert data["client_secret"] not in (client.secret_hash or "")


def test_client_register_text_output_names_id_and_secret(runner, school):
    result = run(runner, "client", "register", "--tenant", school, "--name", "App",
                 "--redirect-uri", "https://hazel.example/cb")
    assert "client_id: " in result.stdout and "client_secret: " in result.stdout


def test_public_client_has_no_secret(runner, school):
    result = run(runner, "client", "register", "--tenant", school, "--name", "Mobile",
                 "--redirect-uri", "http://127.0.0.1:8765/cb", "--public", "--json")
    data = json.loads(result.stdout)
    assert data["public"] is True and "client_secret" not in data


def test_client_register_for_unknown_tenant_fails_clearly(runner):
    result = run(runner, "client", "register", "--tenant", "nowhere", "--name", "App",
                 "--redirect-uri", "https://x.example/cb")
    assert result.exit_code == 1
    assert "Error: Unknown tenant 'nowhere'" in result.stderr


@pytest.mark.parametrize("uri, message", [
    ("/callback", "must be an absolute URL"),
    ("https://app.example/cb#frag", "must not contain a fragment"),
    ("http://app.example/cb", "must use https"),
])
def test_client_register_refuses_a_bad_redirect_uri(runner, school, uri, message):
    result = run(runner, "client", "register", "--tenant", school, "--name", "App", "--redirect-uri", uri)
    assert result.exit_code == 1
    assert message in result.stderr
    assert db.session.scalar(select(func.count()).select_from(Client)) == 0


def test_client_register_refuses_a_bad_post_logout_uri(runner, school):
    result = run(runner, "client", "register", "--tenant", school, "--name", "App",
                 "--redirect-uri", "https://a.example/cb", "--post-logout-redirect-uri", "ftp://a.example/")
    assert result.exit_code == 1
    assert "post-logout redirect URI" in result.stderr


def test_user_create_identity_with_password(runner, school):
    result = run(runner, "user", "create", "--email", "Kim.Ray@Example.org", "--provider", "identity",
                 "--tenant", school, "--role", "admin", "--password", PASSWORD, "--name", "Kim Ray", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["email"] == "kim.ray@example.org"
    assert data["tenants"] == {"hazel": {"role": "admin", "active": True, "accepted": True}}
    assert data["email_verified"] is False  # set by a command, not proven by the person
    assert data["invited"] is False and data["sub"]


def test_user_create_without_password_invites(runner, school, outbox):
    result = run(runner, "user", "create", "--email", "new@example.org", "--provider", "identity", "--tenant", school)
    assert result.exit_code == 0
    assert "invited (no password yet; invitation sent)" in result.stdout
    assert "/reset/" in outbox.last_link("new@example.org")


def test_user_create_refuses_a_password_that_breaks_the_policy(runner, school):
    result = run(runner, "user", "create", "--email", "weak@example.org", "--provider", "identity",
                 "--tenant", school, "--password", "password")
    assert result.exit_code == 1
    assert "capital letter" in result.stderr and "number" in result.stderr


def test_sso_user_can_belong_to_several_tenants(runner, school):
    run(runner, "tenant", "create", "--slug", "safe", "--name", "Trust", "--product", "staffsafe")
    result = run(runner, "user", "create", "--email", "sso@example.org", "--provider", "sso",
                 "--tenant", school, "--tenant", "safe", "--json")
    assert set(json.loads(result.stdout)["tenants"]) == {"hazel", "safe"}


def test_identity_user_with_two_tenants_is_refused(runner, school):
    run(runner, "tenant", "create", "--slug", "elm", "--name", "Elm")
    result = run(runner, "user", "create", "--email", "a@example.org", "--provider", "identity",
                 "--tenant", school, "--tenant", "elm")
    assert result.exit_code == 1
    assert "Error: An Identity account belongs to exactly one tenant" in result.stderr
    assert db.session.scalar(select(func.count()).select_from(Account)) == 0


def test_duplicate_email_is_refused(runner, school):
    args = ["user", "create", "--email", "dup@example.org", "--provider", "sso", "--tenant", school]
    assert run(runner, *args).exit_code == 0
    result = run(runner, *args[:3], "DUP@example.org", *args[4:])
    assert result.exit_code == 1
    assert "dup@example.org already has a CPOMS SSO account" in result.stderr


def test_duplicate_identity_email_in_the_same_tenant_is_refused(runner, school):
    args = ["user", "create", "--email", "dup@example.org", "--provider", "identity", "--tenant", school]
    assert run(runner, *args).exit_code == 0
    result = run(runner, *args)
    assert result.exit_code == 1
    assert "already has a CPOMS Identity account at hazel" in result.stderr


def test_user_create_in_unknown_tenant_fails(runner):
    result = run(runner, "user", "create", "--email", "a@example.org", "--provider", "sso", "--tenant", "nowhere")
    assert result.exit_code == 1
    assert "Unknown tenant 'nowhere'" in result.stderr


def test_user_create_refuses_an_invalid_email(runner, school):
    result = run(runner, "user", "create", "--email", "not-an-email", "--provider", "sso", "--tenant", school)
    assert result.exit_code == 1
    assert "is not a valid email address" in result.stderr


def test_user_assign_adds_an_sso_account_to_another_tenant_once_the_person_accepts(runner, school, outbox):
    run(runner, "tenant", "create", "--slug", "safe", "--name", "Trust", "--product", "staffsafe")
    run(runner, "user", "create", "--email", "sso@example.org", "--provider", "sso", "--tenant", school)
    result = run(runner, "user", "assign", "--email", "SSO@example.org", "--provider", "sso", "--tenant", "safe",
                 "--role", "admin", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tenants"]["safe"] == {"role": "admin", "active": True, "accepted": False}
    mail = outbox.last("sso@example.org")
    assert "Trust has added you" in mail["Subject"] and "/join/" in outbox.text(mail)


def test_user_assign_of_an_identity_account_is_refused(runner, school):
    run(runner, "tenant", "create", "--slug", "elm", "--name", "Elm")
    run(runner, "user", "create", "--email", "id@example.org", "--provider", "identity", "--tenant", school)
    result = run(runner, "user", "assign", "--email", "id@example.org", "--provider", "identity", "--tenant", "elm")
    assert result.exit_code == 1
    assert "only a CPOMS SSO account can be assigned to another tenant" in result.stderr


def test_user_assign_of_an_unknown_account_fails(runner, school):
    result = run(runner, "user", "assign", "--email", "ghost@example.org", "--tenant", school)
    assert result.exit_code == 1
    assert "No CPOMS SSO account with email ghost@example.org" in result.stderr


def test_user_assign_to_unknown_tenant_fails(runner, school):
    run(runner, "user", "create", "--email", "sso@example.org", "--provider", "sso", "--tenant", school)
    result = run(runner, "user", "assign", "--email", "sso@example.org", "--tenant", "nowhere")
    assert result.exit_code == 1
    assert "Unknown tenant 'nowhere'" in result.stderr


def test_demo_data_twice_changes_nothing_the_second_time(runner):
    first = run(runner, "demo-data", "--json")
    assert first.exit_code == 0, first.output
    counts = [db.session.scalar(select(func.count()).select_from(m)) for m in (Tenant, Account, Client)]
    second = run(runner, "demo-data", "--json")
    assert second.exit_code == 0, second.output
    assert [db.session.scalar(select(func.count()).select_from(m)) for m in (Tenant, Account, Client)] == counts
    assert json.loads(first.stdout)["apps"] == json.loads(second.stdout)["apps"]


def test_demo_data_prints_urls_and_credentials(runner):
    result = run(runner, "demo-data")
    assert "http://127.0.0.1:5001/oakwood/" in result.stdout
    assert "http://127.0.0.1:5002/oakwood-trust/" in result.stdout
    assert "sam.jones@example.org" in result.stdout and "Demo-Password-2026!" in result.stdout


def test_keys_rotate_publishes_a_new_key(runner):
    pytest.importorskip("idp.oidc.keys")
    result = run(runner, "keys", "rotate", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["kid"]


def test_serve_runs_the_app_on_the_given_address_without_werkzeug_access_log(runner, monkeypatch):
    import logging

    import werkzeug.serving

    calls = []

    class FakeServer:
        def serve_forever(self):
            calls.append("serving")

        def server_close(self):
            calls.append("closed")

    # The port is bound (make_server) before "listening" is printed, then served.
    monkeypatch.setattr(werkzeug.serving, "make_server",
                        lambda host, port, app, **kw: calls.append((host, port)) or FakeServer())
    result = run(runner, "serve", "--host", "127.0.0.1", "--port", "5999")
    assert result.exit_code == 0, result.output
    assert calls == [("127.0.0.1", 5999), "serving", "closed"]
    assert "listening on http://127.0.0.1:5999" in result.output
    # Its access lines carry whole URLs (reset tokens); idp.request_log writes safe ones.
    assert logging.getLogger("werkzeug").getEffectiveLevel() >= logging.WARNING


@pytest.mark.parametrize("command", [
    ["tenant", "create", "--slug", "longname", "--name", "n" * 5000],
    ["tenant", "create", "--slug", "longzone", "--name", "Long Zone", "--timezone", "Europe/" + "x" * 100],
    ["client", "register", "--tenant", "hazel", "--name", "n" * 5000, "--redirect-uri", "https://a.example/cb"],
    ["client", "register", "--tenant", "hazel", "--name", "App", "--redirect-uri", "https://a.example/" + "p" * 3000],
    ["user", "create", "--email", "long@example.org", "--provider", "identity", "--tenant", "hazel",
     "--name", "n" * 5000],
    ["user", "create", "--email", "x" * 400 + "@example.org", "--provider", "identity", "--tenant", "hazel"],
])
def test_values_longer_than_what_is_stored_are_refused_with_a_clear_error(runner, school, command):
    # The same on SQLite (which would store them) and PostgreSQL (which would fail on the column).
    result = run(runner, *command)
    assert result.exit_code == 1, result.output
    assert "characters or fewer" in result.stderr or "not a valid email address" in result.stderr
