"""Production serving: `gunicorn wsgi:app` with three workers. A relying party's
code flow crosses workers freely, because nothing lives in one process's memory:
sessions are signed cookies, codes and tokens are in the database, keys are in
the database, and (with IDP_REDIS_URL) throttling counts are in Redis."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import KeySet

from idp import create_app
from idp.extensions import db
from tests.conftest import PASSWORD
from tests.servers import (
    drop_scratch_database, gunicorn, idp_env, redis_server, redis_server_binary, scratch_database_url,
)

pytestmark = pytest.mark.slow

REDIRECT_URI = "https://school.example/callback"
FAILED = "Your email address or password was incorrect"
THROTTLED = "Too many unsuccessful sign-in attempts"


class _Form(HTMLParser):
    """The inputs of the first <form method=post> on a page, outside its header (whose form signs out)."""

    def __init__(self):
        super().__init__()
        self.fields: dict[str, str] = {}
        self.action: str | None = None
        self._inside = False
        self._in_header = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "header":
            self._in_header = True
        elif tag == "form" and self.action is None and not self._in_header \
                and (attrs.get("method") or "").lower() == "post":
            self.action, self._inside = attrs.get("action") or "", True
        elif tag == "input" and self._inside and attrs.get("name"):
            if attrs.get("type") in ("radio", "checkbox") and "checked" not in attrs:
                return
            self.fields[attrs["name"]] = attrs.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._inside = False
        elif tag == "header":
            self._in_header = False


def post_form(http: requests.Session, page: requests.Response, values: dict, **kw) -> requests.Response:
    form = _Form()
    form.feed(page.text)
    assert form.action is not None, f"no form on {page.url}"
    return http.post(urljoin(page.url, form.action), data={**form.fields, **values},
                     headers={"Referer": page.url, **kw.pop("headers", {})}, allow_redirects=False, **kw)


def seed(database_url: str, instance, signing_key: bool = True) -> dict:
    """A school, one member and one confidential client, written through the services."""
    from flask_migrate import upgrade

    from idp.accounts.directory import create_account
    from idp.oidc.registry import register_client
    from idp.tenants import create_tenant

    app = create_app({"database_url": database_url, "instance_path": instance,
                      "argon2_time_cost": 1, "argon2_memory_kib": 1024})
    with app.app_context():
        upgrade()
        tenant = create_tenant(slug="oakwood", name="Oakwood Primary School", product="cpoms")
        create_account(provider="identity", email="teacher@oakwood.example", name="Terry Teacher",
                       tenants=[tenant], password=PASSWORD)
        registered = register_client(tenant, name="Oakwood CPOMS", redirect_uris=[REDIRECT_URI])
        db.session.commit()
        if signing_key:
            from idp.oidc.keys import current_signing_key

            current_signing_key()
        seeded = {"client_id": registered.client.client_id, "client_secret": registered.client_secret}
        db.session.remove()
        db.engine.dispose()
    return seeded


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    if redis_server_binary() is None:
        yield None
        return
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@contextmanager
def _served(tmp, redis_url, name: str, signing_key: bool = True):
    url = scratch_database_url(tmp, name)
    env = idp_env(tmp, url, IDP_SECRET_KEY=secrets.token_urlsafe(48))
    if redis_url:
        env["IDP_REDIS_URL"] = redis_url
    seeded = seed(url, env["IDP_INSTANCE_PATH"], signing_key=signing_key)
    try:
        with gunicorn(tmp, env, workers=3) as server:
            server.seeded = seeded
            yield server
    finally:
        drop_scratch_database(url)


@pytest.fixture(scope="module")
def served(tmp_path_factory, redis_url):
    with _served(tmp_path_factory.mktemp("gunicorn"), redis_url, "gunicorn") as server:
        yield server


@pytest.fixture
def served_without_keys(tmp_path, redis_url):
    with _served(tmp_path, redis_url, "gunicorn_nokeys", signing_key=False) as server:
        yield server


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def code_flow(server, flow: int) -> dict:
    """One person signing in to the school's app, as a browser and the app's back end would.
    Every request carries X-Flow so the access log shows which worker served which step."""
    http = server.session(str(flow))
    # A new connection per step, as the browser and the app's back end are different clients:
    # any worker may take any step (a kept-alive connection would stay with one worker).
    http.headers["Connection"] = "close"
    discovery = http.get(server.url("/.well-known/openid-configuration"), timeout=30).json()
    assert discovery["issuer"] == server.base_url
    verifier, challenge = _pkce()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    response = http.get(discovery["authorization_endpoint"], params={
        "response_type": "code", "client_id": server.seeded["client_id"], "redirect_uri": REDIRECT_URI,
        "scope": "openid email profile", "state": state, "nonce": nonce,
        "code_challenge": challenge, "code_challenge_method": "S256",
    }, allow_redirects=False, timeout=30)
    assert response.status_code == 302 and "/t/oakwood/login" in response.headers["Location"]
    page = http.get(urljoin(response.url, response.headers["Location"]), timeout=30)
    response = post_form(http, page, {"email": "teacher@oakwood.example", "password": PASSWORD}, timeout=30)
    assert response.status_code == 302, response.text
    while not response.headers["Location"].startswith(REDIRECT_URI):
        response = http.get(urljoin(response.url, response.headers["Location"]), allow_redirects=False, timeout=30)
        assert response.status_code == 302, response.text
    answer = parse_qs(urlsplit(response.headers["Location"]).query)
    assert answer["state"] == [state]

    tokens = http.post(discovery["token_endpoint"], data={
        "grant_type": "authorization_code", "code": answer["code"][0], "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }, auth=(server.seeded["client_id"], server.seeded["client_secret"]), timeout=30)
    assert tokens.status_code == 200, tokens.text
    tokens = tokens.json()
    jwks = KeySet.import_key_set(http.get(discovery["jwks_uri"], timeout=30).json())
    claims = jwt.decode(tokens["id_token"], jwks).claims
    assert claims["iss"] == server.base_url and claims["nonce"] == nonce
    assert claims["aud"] in (server.seeded["client_id"], [server.seeded["client_id"]])

    userinfo = http.get(discovery["userinfo_endpoint"],
                        headers={"Authorization": f"Bearer {tokens['access_token']}"}, timeout=30)
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["email"] == "teacher@oakwood.example"
    assert userinfo.json()["sub"] == claims["sub"]
    return claims


def _workers_by_flow(server) -> dict[str, list[str]]:
    by_flow: dict[str, list[str]] = {}
    for pid, flow in server.served_by_flow():
        by_flow.setdefault(flow, []).append(pid)
    return by_flow


def _jwks_burst(server, n: int = 36) -> set[tuple[str, ...]]:
    with ThreadPoolExecutor(max_workers=12) as pool:
        bodies = list(pool.map(lambda _: server.session().get(server.url("/jwks.json"), timeout=30).json(), range(n)))
    return {tuple(key["kid"] for key in body["keys"]) for body in bodies}


def test_jwks_is_the_same_from_every_worker(served):
    published = _jwks_burst(served)
    assert len(published) == 1, f"workers publish different keys: {published}"
    assert len(next(iter(published))) == 1
    assert len(set(served.served_by())) >= 3, "the requests should have reached every worker"


def test_workers_agree_on_one_first_key_when_asked_at_once(served_without_keys):
    # No key exists yet and every worker is asked at the same moment: each must end up
    # publishing (and signing with) the same single key.
    published = _jwks_burst(served_without_keys)
    assert len(published) == 1, f"workers publish different keys: {published}"
    assert len(next(iter(published))) == 1


def test_code_flow_crosses_workers(served):
    # Several people at once, so the three workers take turns mid-flow; each flow's
    # cookie session, code and token must be honoured by whichever worker gets the next step.
    crossed = False
    for batch in range(8):  # which worker accepts a connection is the kernel's choice
        flows = range(batch * 3, batch * 3 + 3)
        with ThreadPoolExecutor(max_workers=3) as pool:
            subjects = {claims["sub"] for claims in pool.map(lambda n: code_flow(served, n), flows)}
        assert len(subjects) == 1  # one account, one stable subject, whichever worker answered
        by_flow = _workers_by_flow(served)
        crossed = any(len(set(by_flow.get(str(n), []))) >= 2 for n in flows)
        if crossed:
            break
    assert crossed, "no flow was served by more than one worker"


def test_a_sign_in_on_one_worker_is_honoured_by_every_worker(served):
    http = served.session("200")
    page = http.get(served.url("/t/oakwood/login"), timeout=30)
    assert post_form(http, page, {"email": "teacher@oakwood.example", "password": PASSWORD},
                     timeout=30).status_code == 302
    cookies = http.cookies.get_dict()

    def home(n):
        visit = served.session(str(201 + n))
        visit.cookies.update(cookies)
        return visit.get(served.url("/t/oakwood/"), allow_redirects=False, timeout=30)

    with ThreadPoolExecutor(max_workers=6) as pool:
        pages = list(pool.map(home, range(18)))
    assert {page.status_code for page in pages} == {200}
    assert all("Terry Teacher" in page.text or "teacher@oakwood.example" in page.text for page in pages)
    served_home = {pid for pid, flow in served.served_by_flow() if 201 <= int(flow) <= 218}
    assert len(served_home) >= 2, "the signed-in visits should have reached several workers"


def test_forwarded_proto_is_not_believed_from_an_untrusted_proxy(served):
    # gunicorn trusts X-Forwarded-Proto from localhost unless told otherwise (gunicorn.conf.py);
    # were it believed, the request would count as https and the referer-less post would be refused.
    http = served.session()
    page = http.get(served.url("/t/oakwood/login"), timeout=30)
    response = post_form(http, page, {"email": "teacher@oakwood.example", "password": PASSWORD},
                         headers={"Referer": "", "X-Forwarded-Proto": "https"}, timeout=30)
    assert response.status_code == 302, response.text


def test_failed_logins_are_counted_across_workers(served, redis_url):
    if redis_url is None:
        pytest.skip("redis-server is not installed")
    import redis

    def fail_once(flow):
        http = served.session(str(flow))
        http.headers["Connection"] = "close"  # each request may land on any worker
        page = http.get(served.url("/t/oakwood/login"), timeout=30)
        return post_form(http, page, {"email": "teacher@oakwood.example", "password": "wrong"}, timeout=30)

    # Which worker accepts a connection is the kernel's choice: if one worker happened to take
    # all five failures, the experiment proves nothing, so it starts again from a clean count.
    for attempt in range(6):
        redis.Redis.from_url(redis_url).flushdb()
        flows = [100 + 10 * attempt + n for n in range(5)]
        with ThreadPoolExecutor(max_workers=5) as pool:
            failures = list(pool.map(fail_once, flows))
        assert all(FAILED in response.text for response in failures)
        posts = rf'^pid=<?(\d+)>? flow=(?:{"|".join(map(str, flows))}) "POST '
        failed_by = set(re.findall(posts, served.log.read_text(), flags=re.M))
        if len(failed_by) >= 2:
            break
    assert len(failed_by) >= 2, "the failures should have reached several workers"
    # Spread over several workers, no single worker saw all five: only a shared count can refuse.
    http = served.session()
    page = http.get(served.url("/t/oakwood/login"), timeout=30)
    response = post_form(http, page, {"email": "teacher@oakwood.example", "password": PASSWORD}, timeout=30)
    assert response.status_code == 429 and THROTTLED in response.text


def test_health_check_answers_from_every_worker(served):
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda _: served.session().get(served.url("/healthz"), timeout=30).status_code, range(18)))
    assert set(statuses) == {200}
