"""PostgreSQL failing under load, on a private cluster each test makes and breaks itself: stopped,
made read-only, restarted fast and immediate, with gunicorn workers and master killed meanwhile.
The IdP answers clean 503s (never a 500, never a traceback or a secret in its log), its readiness
check tells the truth, it recovers by itself, and no write that got a success answer is lost."""

from __future__ import annotations

import itertools
import os
import secrets
import threading
import time

import pytest
import requests
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

from tests.conftest import CSRF_RE, PASSWORD
from tests.infra.test_gunicorn import post_form, seed
from tests.infra.traffic import PROTOCOL_STEPS, NoAnswer, Traffic, lost_writes, sign_in_journey
from tests.servers import gunicorn, idp_env, private_postgres

pytestmark = pytest.mark.slow

WORKERS = 2
SUCCESS = (200, 302)


@pytest.fixture
def cluster():
    if not os.environ.get("IDP_TEST_DATABASE_URL"):
        pytest.skip("PostgreSQL fault tests run in the PostgreSQL pass (IDP_TEST_DATABASE_URL set); "
                    "tests/ops/test_outages.py shows the same answers on SQLite")
    with private_postgres() as pg:
        yield pg


def _env(tmp_path, cluster):
    return idp_env(tmp_path, cluster.url, IDP_SECRET_KEY=secrets.token_urlsafe(48))


@pytest.fixture
def served(cluster, tmp_path):
    env = _env(tmp_path, cluster)
    seeded = seed(cluster.url, env["IDP_INSTANCE_PATH"])
    with gunicorn(tmp_path, env, workers=WORKERS) as server:
        server.seeded = seeded
        yield server


def _not_clean(answers) -> list:
    """Answers that are not what an outage may give: a 500, a 503 without Retry-After, HTML to a
    relying party."""
    return [a for a in answers if a.status is not None and (
        a.status >= 500 and a.status != 503
        or a.status == 503 and not a.retry_after
        or a.step in PROTOCOL_STEPS and not a.is_json)]


def _secrets_in(log: str, extra=()) -> list[str]:
    told = ("teacher@oakwood.example", PASSWORD, "code_challenge=", "state=", "code=", "$argon2", *extra)
    return [secret for secret in told if secret in log]


def test_a_stopped_database_gets_clean_503s_under_load_and_the_idp_recovers_by_itself(cluster, served):
    reset_token = "SECRET-reset-token-" + secrets.token_urlsafe(8)
    http = served.session()
    with Traffic(served, sign_in_journey, concurrency=8, seeded=served.seeded) as traffic:
        traffic.wait_for_journeys(8)
        cluster.stop("fast")
        down_at = time.monotonic()
        time.sleep(0.5)
        while_down = {
            "live": http.get(served.url("/healthz/live"), timeout=10),
            "ready": http.get(served.url("/healthz/ready"), timeout=10),
            "reset": http.get(served.url(f"/reset/{reset_token}"), timeout=10),
            "login": http.get(served.url("/t/oakwood/login"), timeout=10),
        }
        time.sleep(1.5)  # two seconds down
        cluster.start()
        up_at = time.monotonic()
        time.sleep(4)
    outage = [a for a in traffic.since(down_at) if a.at < up_at]

    assert while_down["live"].status_code == 200
    assert while_down["ready"].status_code == 503
    for page in ("reset", "login"):
        assert while_down[page].status_code == 503
        assert "CPOMS is briefly unavailable, please try again in a minute" in while_down[page].text
    assert any(a.status == 503 for a in outage), "requests during the outage should have been answered 503"
    assert _not_clean(traffic.answers) == []
    recovered = traffic.since(up_at + 2)
    assert recovered and all(a.status in SUCCESS for a in recovered), "the IdP should serve again within 2 s"

    log = served.log.read_text()
    assert "Traceback" not in log
    assert 1 <= log.count("outage began: database is unavailable") <= WORKERS
    assert log.count("outage ended: database is available again") >= 1
    assert _secrets_in(log, [reset_token]) == []


def test_a_read_only_database_fails_readiness_and_the_idp_writes_again_as_soon_as_it_is_writable(cluster, served):
    http = served.session()
    with Traffic(served, sign_in_journey, concurrency=8, seeded=served.seeded) as traffic:
        traffic.wait_for_journeys(8)
        # As a failover to a server that is read-only: every connection is cut, and those made
        # meanwhile are read-only for as long as they live.
        cluster.execute("ALTER DATABASE idp SET default_transaction_read_only = on",
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = 'idp' AND pid <> pg_backend_pid()")
        read_only_at = time.monotonic()
        readiness = _poll(lambda: http.get(served.url("/healthz/ready"), timeout=10),
                          until=lambda r: r.status_code == 503)
        time.sleep(2)
        cluster.execute("ALTER DATABASE idp RESET default_transaction_read_only")  # no connection cut
        writable_at = time.monotonic()
        ready_again = _poll(lambda: http.get(served.url("/healthz/ready"), timeout=10),
                            until=lambda r: r.status_code == 200)
        time.sleep(3)
    assert readiness.json() == {"status": "unavailable", "database": "read-only"}
    assert ready_again.status_code == 200
    during = [a for a in traffic.since(read_only_at + 1) if a.at < writable_at]
    assert any(a.status == 503 for a in during), "writes during the read-only spell should have been answered 503"
    assert _not_clean(traffic.answers) == []
    # Connections made while it was read-only are discarded at their first refused write.
    after = traffic.since(writable_at + 1)
    assert after and all(a.status in SUCCESS for a in after), \
        f"{sum(a.status not in SUCCESS for a in after)} of {len(after)} requests failed after the database was writable"
    assert "Traceback" not in served.log.read_text()


def _poll(call, until, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        answer = call()
        if until(answer) or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)  # polling a health check, as a load balancer does


# --- no acknowledged write lost -----------------------------------------------------------


def _seed_people(database_url: str, instance, count: int) -> dict:
    """An admin, and `count` staff members, each with a reset link of their own."""
    from idp import create_app
    from idp.accounts.directory import create_account
    from idp.extensions import db
    from idp.models import Tenant
    from idp.reset.links import issue_reset_link

    app = create_app({"database_url": database_url, "instance_path": instance,
                      "argon2_time_cost": 1, "argon2_memory_kib": 1024})
    with app.app_context():
        tenant = db.session.scalar(select(Tenant).where(Tenant.slug == "oakwood"))
        create_account(provider="identity", email="head@oakwood.example", name="Alex Head", tenants=[tenant],
                       role="admin", password=PASSWORD)
        people = []
        for n in range(count):
            account = create_account(provider="identity", email=f"staff{n}@oakwood.example", name=f"Staff {n}",
                                     tenants=[tenant], password=PASSWORD)
            db.session.commit()
            people.append({"account_id": account.id, "member_id": account.memberships[0].id,
                           "reset_token": issue_reset_link(account, tenant).token})
        db.session.remove()
        db.engine.dispose()
    return {"people": people}


class Changes:
    """Password and admin changes made one after another, and those that got a success answer."""

    def __init__(self, people):
        self._next = itertools.count()
        self._lock = threading.Lock()
        self.people = people
        self.passwords: dict[int, str] = {}  # account id -> the new password, acknowledged
        self.names: dict[int, str] = {}  # member id -> the new name, acknowledged

    def take(self) -> dict | None:
        with self._lock:
            n = next(self._next)
        return self.people[n] if n < len(self.people) else None


def password_change_journey(site, traffic, number, *, changes: Changes):
    """Someone follows their reset link and sets a new password."""
    person = changes.take()
    if person is None:
        time.sleep(0.2)
        return
    http = site.session(f"reset-{number}")
    password = "Fresh-" + secrets.token_urlsafe(10) + "-7q!"
    try:
        page = http.get(site.url(f"/reset/{person['reset_token']}"), timeout=10)
        traffic.record("reset-page", page)
        if page.status_code != 200:
            raise NoAnswer("reset-page")
        saved = traffic.record("reset", post_form(http, page, {"password": password, "confirm": password},
                                                  timeout=10))
    except requests.RequestException:
        traffic.record("reset", None)
        raise NoAnswer("reset") from None
    if saved.status_code == 302:
        changes.passwords[person["account_id"]] = password


def admin_change_journey(site, traffic, number, *, changes: Changes, admin_cookies):
    """The school's admin renames a member of staff."""
    person = changes.take()
    if person is None:
        time.sleep(0.2)
        return
    http = site.session(f"admin-{number}")
    http.cookies.update(admin_cookies)  # a cookie jar: each cookie keeps its domain
    name = f"Renamed {secrets.token_hex(4)}"
    try:
        page = http.get(site.url(f"/t/oakwood/admin/users/{person['member_id']}"), timeout=10)
        traffic.record("admin-page", page)
        if page.status_code != 200 or not CSRF_RE.search(page.text):
            raise NoAnswer("admin-page")
        saved = traffic.record("admin-save", post_form(http, page, {"name": name}, timeout=10))
    except requests.RequestException:
        traffic.record("admin-save", None)
        raise NoAnswer("admin-save") from None
    if saved.status_code == 302:
        changes.names[person["member_id"]] = name


def _admin_cookies(server):
    http = server.session()
    page = http.get(server.url("/t/oakwood/login"), timeout=30)
    response = post_form(http, page, {"email": "head@oakwood.example", "password": PASSWORD}, timeout=30)
    assert response.status_code == 302, response.text
    return http.cookies


def _lost_changes(database_url: str, passwords: Changes, renames: Changes) -> list[str]:
    from idp.models import Account, Membership

    engine = create_engine(database_url, poolclass=NullPool)
    with engine.connect() as conn:
        hashes = dict(conn.execute(select(Account.id, Account.password_hash)).all())
        names = dict(conn.execute(select(Membership.id, Account.name).join(Account)).all())
    engine.dispose()
    lost = []
    for account_id, password in passwords.passwords.items():
        try:
            PasswordHasher().verify(hashes[account_id], password)
        except VerificationError:
            lost.append("a password change")
    lost += ["an admin change" for member_id, name in renames.names.items() if names[member_id] != name]
    return lost


def test_no_acknowledged_write_is_lost_when_workers_the_master_and_the_database_are_killed(cluster, tmp_path):
    env = _env(tmp_path, cluster)
    seeded = seed(cluster.url, env["IDP_INSTANCE_PATH"])
    people = _seed_people(cluster.url, env["IDP_INSTANCE_PATH"], 120)["people"]
    passwords, renames = Changes(people[:60]), Changes(people[60:])
    with gunicorn(tmp_path, env, workers=WORKERS) as server:
        admin = _admin_cookies(server)
        with Traffic(server, sign_in_journey, concurrency=6, seeded=seeded) as sign_ins, \
                Traffic(server, password_change_journey, concurrency=1, changes=passwords) as resets, \
                Traffic(server, admin_change_journey, concurrency=1, changes=renames, admin_cookies=admin) as admins:
            sign_ins.wait_for_journeys(6)
            server.kill_worker()
            time.sleep(2)
            cluster.restart("fast")
            time.sleep(2)
            cluster.restart("immediate")  # as a crash: PostgreSQL recovers from its log on start
            time.sleep(2)
            server.kill_master()
            with gunicorn(tmp_path, env, workers=WORKERS, port=server.port):
                time.sleep(3)
    every_answer = sign_ins.answers + resets.answers + admins.answers
    assert _not_clean(every_answer) == []
    assert len(sign_ins.acknowledged.tokens) >= 10 and passwords.passwords and renames.names, \
        "the load should have made writes throughout"
    assert lost_writes(cluster.url, sign_ins.acknowledged) == []
    assert _lost_changes(cluster.url, passwords, renames) == []
    log = server.log.read_text()
    assert "Traceback" not in log
    assert _secrets_in(log, [person["reset_token"] for person in people]) == []
