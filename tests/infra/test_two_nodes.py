"""Two IdP nodes (two gunicorn masters on their own ports) sharing one PostgreSQL and one Redis,
behind HAProxy checking each node's readiness: a sign-in, the throttles' counts and a rotated
signing key hold on both, and when one node dies under load the other carries on with nothing
that was answered lost. `make two-nodes` runs the same set-up by hand."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.oidc.keys import RELOAD_SECONDS
from tests.conftest import PASSWORD
from tests.infra.test_gunicorn import FAILED, THROTTLED, post_form, seed
from tests.infra.traffic import Traffic, lost_writes, one_sign_in, sign_in_journey
from tests.servers import (
    PROJECT_ROOT, Gunicorn, HAProxy, drop_scratch_database, free_port, gunicorn, haproxy, haproxy_binary, idp_env,
    redis_server, redis_server_binary, scratch_database_url,
)

pytestmark = pytest.mark.slow

SUCCESS = (200, 302)


@dataclass
class TwoNodes:
    a: Gunicorn
    b: Gunicorn
    balancer: HAProxy
    seeded: dict
    #: Node a's environment (its instance folder; everything else is the same on both).
    a_env: dict
    database_url: str

    @property
    def issuer(self) -> str:
        return self.a_env["IDP_ISSUER"]


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """One set-up for the module (under xdist, one per worker that runs its tests); the test that
    kills a node comes last."""
    tmp_path = tmp_path_factory.mktemp("two-nodes")
    if not os.environ.get("IDP_TEST_DATABASE_URL"):
        pytest.skip("two nodes share a PostgreSQL database: this runs in the PostgreSQL pass (IDP_TEST_DATABASE_URL)")
    if haproxy_binary() is None:
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    url = scratch_database_url(tmp_path, "two_nodes")
    balancer_port = free_port()
    try:
        with redis_server(tmp_path) as redis_url:
            # What production sets alike on every node: one issuer (the balancer's address), one
            # session key, one database, one Redis, and the balancer as the one trusted proxy.
            env = idp_env(tmp_path, url, IDP_SECRET_KEY=secrets.token_urlsafe(48), IDP_REDIS_URL=redis_url,
                          IDP_ISSUER=f"http://127.0.0.1:{balancer_port}", IDP_TRUSTED_PROXIES="1")
            seeded = seed(url, env["IDP_INSTANCE_PATH"])
            nodes = {}
            for name in ("a", "b"):
                (tmp_path / name).mkdir()
                nodes[name] = {**env, "IDP_INSTANCE_PATH": str(tmp_path / name / "instance")}
            with gunicorn(tmp_path / "a", nodes["a"], workers=2, name="a") as a, \
                    gunicorn(tmp_path / "b", nodes["b"], workers=2, name="b") as b, \
                    haproxy(tmp_path, {"a": a.port, "b": b.port}, port=balancer_port) as balancer:
                _until(lambda: balancer.node_states() == {"a": "UP", "b": "UP"}, "both nodes UP in HAProxy")
                yield TwoNodes(a, b, balancer, seeded, nodes["a"], url)
    finally:
        drop_scratch_database(url)


def _until(check, what: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        answer = check()
        if answer:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.1)  # polling another process's state


def _login(site, email: str, password: str, http: requests.Session | None = None) -> requests.Response:
    http = http or site.session()
    page = http.get(site.url("/t/oakwood/login"), timeout=30)
    return post_form(http, page, {"email": email, "password": password}, timeout=30)


def _header(id_token: str) -> dict:
    segment = id_token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def _verifies_on(node, id_token: str, issuer: str) -> bool:
    keys = KeySet.import_key_set(requests.get(node.url("/jwks.json"), timeout=30).json())
    return jwt.decode(id_token, keys).claims["iss"] == issuer


def test_a_sign_in_on_one_node_is_a_sign_in_on_the_other(two_nodes):
    a, b = two_nodes.a, two_nodes.b
    browser = a.session()
    assert _login(a, "teacher@oakwood.example", PASSWORD, browser).status_code == 302
    home = b.session()
    home.cookies.update(browser.cookies)
    page = home.get(b.url("/t/oakwood/"), allow_redirects=False, timeout=30)
    assert page.status_code == 200 and "teacher@oakwood.example" in page.text
    # And the school's app, sent to the other node, gets a code without a login page.
    tokens = one_sign_in(b, two_nodes.seeded, http=home)
    assert tokens["id_token"]


def test_failed_sign_ins_on_both_nodes_count_towards_one_limit(two_nodes):
    a, b = two_nodes.a, two_nodes.b
    guessed = "not-a-teacher@oakwood.example"  # an account nobody has: its guesses count all the same
    for node, times in ((a, 3), (b, 2)):  # the account limit is 5 failures a minute
        for _ in range(times):
            assert FAILED in _login(node, guessed, "wrong").text
    refused = _login(a, guessed, "wrong")
    assert refused.status_code == 429 and THROTTLED in refused.text


def test_a_key_rotated_on_one_node_is_published_and_used_by_both_within_the_reload_time(two_nodes):
    a, b, issuer = two_nodes.a, two_nodes.b, two_nodes.issuer
    old = one_sign_in(a, two_nodes.seeded)["id_token"]
    rotated = subprocess.run([sys.executable, "-c", "from idp.cli import main; main()", "keys", "rotate", "--json"],
                             cwd=PROJECT_ROOT, env=two_nodes.a_env, capture_output=True, text=True, timeout=60)
    assert rotated.returncode == 0, rotated.stderr
    new_kid = json.loads(rotated.stdout)["kid"]
    # idp.oidc.keys: every worker of every node reloads the keys at least every RELOAD_SECONDS.
    time.sleep(RELOAD_SECONDS + 1)

    for node in (a, b, two_nodes.balancer):
        for _ in range(4):  # a new connection each time, so each worker of the node answers in turn
            published = requests.get(node.url("/jwks.json"), headers={"Connection": "close"}, timeout=30).json()
            assert new_kid in {key["kid"] for key in published["keys"]}
        new = one_sign_in(node, two_nodes.seeded)["id_token"]
        assert _header(new)["kid"] == new_kid
        for verifier in (a, b):
            assert _verifies_on(verifier, new, issuer)
            assert _verifies_on(verifier, old, issuer)  # the old key stays published until its tokens expire
            # Honoured as well as published: the other node accepts it as an id_token_hint.
            logout = requests.get(verifier.url("/logout/end"), params={"id_token_hint": new}, timeout=30)
            assert logout.status_code in SUCCESS, logout.text


def test_when_one_node_dies_under_load_the_balancer_drains_it_and_nothing_answered_is_lost(two_nodes):
    a, balancer = two_nodes.a, two_nodes.balancer
    with Traffic(balancer, sign_in_journey, concurrency=8, seeded=two_nodes.seeded) as traffic:
        traffic.wait_for_journeys(8)
        a.kill_node()
        killed_at = time.monotonic()
        _until(lambda: balancer.node_states()["a"].startswith("DOWN"), "HAProxy marking the dead node DOWN")
        drained_at = time.monotonic()
        completed_before = traffic.completed
        time.sleep(3)
    assert drained_at - killed_at < 5
    assert traffic.completed > completed_before, "the surviving node should carry the load"
    after = traffic.since(drained_at + 0.5)
    assert after and all(answer.status in SUCCESS for answer in after), \
        sorted({(answer.step, answer.status) for answer in after if answer.status not in SUCCESS}, key=str)
    assert lost_writes(two_nodes.database_url, traffic.acknowledged) == []
    for log in (a.log, two_nodes.b.log):
        assert "Traceback" not in log.read_text()
