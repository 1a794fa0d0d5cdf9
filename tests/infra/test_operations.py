"""Operations: the load balancer's health checks (liveness needs nothing; readiness fails while
the database cannot take writes or a configured Redis does not answer), production mode refusing
unsafe settings (and saying which), and cookies that only travel over TLS
when the issuer is https."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from idp import create_app
from idp.config import UnsafeForProduction
from idp.extensions import db
from tests.servers import PROJECT_ROOT, free_port, idp_env

SAFE_PRODUCTION = dict(
    env="production",
    issuer="https://login.cpoms.example",
    secret_key="s" * 48,
    mail_url="smtp://mailer:secret@smtp.example:587",
    database_url="postgresql+psycopg://idp:secret@127.0.0.1:1/idp",
    redis_url="redis://127.0.0.1:1/0",
)


def test_healthz_answers_200_when_the_database_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"
    # Load balancers poll it every few seconds: no session, nothing cached.
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("broken_url", [
    "postgresql+psycopg://idp:wrong@127.0.0.1:{port}/idp?connect_timeout=2",
    "sqlite:////nonexistent-folder/for/sure/idp.sqlite3",
])
def test_healthz_answers_503_when_the_database_does_not(tmp_path, broken_url):
    app = create_app({"database_url": broken_url.format(port=free_port()), "instance_path": tmp_path, "TESTING": True})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "unavailable"
    assert "wrong" not in response.get_data(as_text=True)  # no connection string leaks


@pytest.mark.parametrize("path", ["/healthz", "/healthz/ready"])
def test_readiness_answers_200_when_the_database_takes_writes(client, path):
    response = client.get(path)
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_liveness_needs_nothing_not_even_the_database(tmp_path):
    app = create_app({"database_url": f"postgresql+psycopg://idp@127.0.0.1:{free_port()}/idp",
                      "instance_path": tmp_path, "TESTING": True})
    client = app.test_client()
    assert client.get("/healthz/live").status_code == 200
    assert client.get("/healthz/ready").status_code == 503


@pytest.mark.parametrize("app_overrides", [{"database_lock_timeout": 5}])
def test_readiness_fails_while_a_hot_table_is_locked(app, client, app_overrides):
    from tests.ops.test_outages import hot_table_locked

    with hot_table_locked(db.engine.url.render_as_string(hide_password=False)):
        started = time.monotonic()
        response = client.get("/healthz/ready")
        assert time.monotonic() - started < 4  # a short wait of its own, not the requests' lock timeout
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "database": "locked"}
    assert client.get("/healthz/ready").status_code == 200


def test_readiness_fails_while_a_configured_redis_does_not_answer(app, tmp_path):
    unreachable = create_app({"database_url": app.config["SQLALCHEMY_DATABASE_URI"], "instance_path": tmp_path,
                              "redis_url": f"redis://127.0.0.1:{free_port()}/0", "TESTING": True})
    response = unreachable.test_client().get("/healthz/ready")
    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "redis": "unreachable"}


def test_production_mode_starts_with_safe_settings(tmp_path):
    app = create_app({**SAFE_PRODUCTION, "instance_path": tmp_path})
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert not (tmp_path / "secret_key").exists()  # the configured key is used, none generated


@pytest.mark.parametrize("unsafe, says", [
    ({"issuer": "http://login.cpoms.example"}, "IDP_ISSUER must be an https URL"),
    ({"secret_key": ""}, "IDP_SECRET_KEY must be set"),
    ({"secret_key": "short"}, "IDP_SECRET_KEY must be at least 32 characters"),
    ({"mail_url": "outbox"}, "IDP_MAIL_URL must name an SMTP server"),
    ({"ratelimits_enabled": False}, "IDP_RATELIMITS must be on in production"),
    # Without a shared store each worker and node would count sign-in attempts on its own.
    ({"redis_url": None}, "IDP_REDIS_URL must be set in production"),
])
def test_production_mode_refuses_unsafe_setting_and_says_which(tmp_path, unsafe, says):
    with pytest.raises(UnsafeForProduction) as refused:
        create_app({**SAFE_PRODUCTION, "instance_path": tmp_path, **unsafe})
    assert len(refused.value.problems) == 1
    assert says in str(refused.value)


def test_an_unknown_idp_env_is_refused_rather_than_taken_for_development(tmp_path):
    with pytest.raises(UnsafeForProduction, match="IDP_ENV must be development or production"):
        create_app({"env": "prod", "instance_path": tmp_path})


@pytest.mark.parametrize("value", ["lots", "0", "-3"])
def test_a_pool_size_that_is_not_a_positive_number_is_refused_by_name(monkeypatch, value):
    from idp.config import Settings

    monkeypatch.setenv("IDP_DATABASE_POOL_SIZE", value)
    with pytest.raises(ValueError, match="IDP_DATABASE_POOL_SIZE must be a whole number of at least 1"):
        Settings.from_env()


def test_development_mode_is_not_refused(tmp_path):
    create_app({"instance_path": tmp_path, "issuer": "http://127.0.0.1:5000"})


def _production_env(tmp_path: Path) -> dict:
    return idp_env(tmp_path, "sqlite:///" + str(tmp_path / "idp.sqlite3"), IDP_ENV="production",
                   IDP_ISSUER="http://login.cpoms.example", IDP_MAIL_URL="outbox")


def test_idp_command_refuses_production_start_with_a_clear_message(tmp_path):
    idp = Path(sys.executable).with_name("idp")
    command = [str(idp)] if idp.exists() else [sys.executable, "-c", "from idp.cli import main; main()"]
    result = subprocess.run([*command, "serve", "--port", str(free_port())], cwd=PROJECT_ROOT,
                            env=_production_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    for says in ("IDP_ISSUER must be an https URL", "IDP_SECRET_KEY must be set", "IDP_MAIL_URL must name an SMTP"):
        assert says in result.stderr


@pytest.mark.slow
def test_gunicorn_refuses_production_start_with_a_clear_message(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "wsgi:app", "--bind", f"127.0.0.1:{free_port()}"],
        cwd=PROJECT_ROOT, env=_production_env(tmp_path), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "IDP_ISSUER must be an https URL" in result.stderr
    assert "IDP_SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize("app_overrides", [{"issuer": "https://login.cpoms.example"}])
def test_session_cookie_is_secure_when_issuer_is_https(client, world, app_overrides):
    response = client.get("/t/oakwood/login", base_url="https://login.cpoms.example")
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("idp_session="))
    assert "; Secure" in cookie and "HttpOnly" in cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


@pytest.mark.parametrize("app_overrides", [{"issuer": "http://127.0.0.1:5000"}])
def test_session_cookie_is_not_secure_on_a_local_http_issuer(client, world, app_overrides):
    response = client.get("/t/oakwood/login")
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("idp_session="))
    assert "Secure" not in cookie
    assert "Strict-Transport-Security" not in response.headers


def test_workers_starting_together_generate_one_shared_secret_key(tmp_path):
    # Without IDP_SECRET_KEY each gunicorn worker makes the instance's key on boot; if two
    # wrote different keys, a session signed by one worker would be rejected by the next.
    import threading

    from idp.config import Settings

    settings = Settings.from_env({"instance_path": tmp_path})
    start = threading.Barrier(8)
    keys = []

    def boot():
        start.wait()
        keys.append(settings.with_generated_secret().secret_key)

    threads = [threading.Thread(target=boot) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 8 and len(set(keys)) == 1
    assert (tmp_path / "secret_key").read_text().strip() == keys[0]
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no drafts left behind
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
