"""With IDP_REDIS_URL set, throttling counts live in Redis, so every process
sees the same counts; without it each process counts alone. Two separate
servers share one database: failures made on either count towards the limit. (Redis configured
but down: tests/ops/test_outages.py.)"""

from __future__ import annotations

import secrets

import pytest

from tests.conftest import PASSWORD
from tests.infra.test_gunicorn import FAILED, THROTTLED, post_form, seed
from tests.servers import drop_scratch_database, gunicorn, idp_env, redis_server, scratch_database_url

pytestmark = pytest.mark.slow


def _attempt(server, password: str):
    http = server.session()
    page = http.get(server.url("/t/oakwood/login"), timeout=30)
    return post_form(http, page, {"email": "teacher@oakwood.example", "password": password}, timeout=30)


@pytest.fixture
def two_servers(tmp_path, request):
    """Two single-worker servers over one database, with or without a shared Redis."""
    url = scratch_database_url(tmp_path, "two_servers")
    env = idp_env(tmp_path, url, IDP_SECRET_KEY=secrets.token_urlsafe(48))
    seed(url, env["IDP_INSTANCE_PATH"])

    def start(redis_url):
        if redis_url:
            env["IDP_REDIS_URL"] = redis_url
        first_dir, second_dir = tmp_path / "a", tmp_path / "b"
        first_dir.mkdir(), second_dir.mkdir()
        return gunicorn(first_dir, env, workers=1, name="a"), gunicorn(second_dir, env, workers=1, name="b")

    try:
        if request.param == "redis":
            with redis_server(tmp_path) as redis_url:
                first, second = start(redis_url)
                with first as a, second as b:
                    yield a, b
        else:
            first, second = start(None)
            with first as a, second as b:
                yield a, b
    finally:
        drop_scratch_database(url)


@pytest.mark.parametrize("two_servers", ["redis"], indirect=True)
def test_failed_logins_on_two_servers_add_up_with_redis(two_servers):
    a, b = two_servers
    # The account limit is 5 failures a minute: 3 here and 2 there reach it.
    for server, times in ((a, 3), (b, 2)):
        for _ in range(times):
            assert FAILED in _attempt(server, "wrong").text
    response = _attempt(a, PASSWORD)
    assert response.status_code == 429 and THROTTLED in response.text


@pytest.mark.parametrize("two_servers", ["memory"], indirect=True)
def test_without_redis_each_server_counts_alone(two_servers):
    # The control: the test above would notice counts that are not shared.
    a, b = two_servers
    for server, times in ((a, 3), (b, 2)):
        for _ in range(times):
            assert FAILED in _attempt(server, "wrong").text
    assert _attempt(a, PASSWORD).status_code == 302


@pytest.fixture
def redis_url(tmp_path):
    with redis_server(tmp_path) as url:
        yield url


def test_throttle_counts_are_kept_in_redis_when_configured(tmp_path, redis_url, migrated):
    import redis

    from idp import create_app
    from idp import ratelimits
    from idp.extensions import db
    from idp.ratelimits import LOGIN_PER_ACCOUNT

    app = create_app({"database_url": migrated, "instance_path": tmp_path / "instance", "redis_url": redis_url})
    with app.app_context():
        assert type(ratelimits.storage()).__name__.lower().startswith("redis")
        LOGIN_PER_ACCOUNT.hit("oakwood", "identity", "someone@example.org")
        db.engine.dispose()
    assert redis.Redis.from_url(redis_url).keys("*login-account*")
