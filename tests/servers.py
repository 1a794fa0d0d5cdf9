"""Real servers for tests that must cross process boundaries: gunicorn serving
wsgi:app and redis-server, each on a free local port, stopped afterwards.

Also `scratch_database_url()`: a database of its own (SQLite file, or a fresh
PostgreSQL database beside IDP_TEST_DATABASE_URL) for tests that migrate,
downgrade or let other processes write."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

PROJECT_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scratch_database_url(tmp_path: Path, name: str) -> str:
    """An empty database only this test uses (dropped and recreated on PostgreSQL)."""
    base = os.environ.get("IDP_TEST_DATABASE_URL")
    if not base:
        return f"sqlite:///{tmp_path / (name + '.sqlite3')}"
    db_name = f"idp_{name}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"[:63]
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{db_name}"'))
    admin.dispose()
    return re.sub(r"/[^/?]*(\?|$)", f"/{db_name}\\1", base, count=1)


def drop_scratch_database(url: str) -> None:
    if not url.startswith("postgresql"):
        return
    base = os.environ["IDP_TEST_DATABASE_URL"]
    db_name = url.rsplit("/", 1)[1].split("?")[0]
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
    admin.dispose()


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is not None:
        return
    # The server stops its own children; if it hangs, its whole group (own session) is killed.
    try:
        os.kill(process.pid, sig)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)


def _wait_until(ready, process: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        if ready():
            return
        time.sleep(0.05)  # polling a starting server, not waiting out application time
    _stop(process)
    raise RuntimeError(f"{what} did not start within {START_TIMEOUT}s:\n{log.read_text()[-4000:]}")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def idp_env(tmp_path: Path, database_url: str, **extra: str) -> dict:
    """Environment for an IdP process: its own instance folder, cheap argon2, this database."""
    instance = tmp_path / "instance"
    instance.mkdir(exist_ok=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith("IDP_")}
    env.update(
        IDP_INSTANCE_PATH=str(instance),
        IDP_DATABASE_URL=database_url,
        IDP_ARGON2_TIME_COST="1",
        IDP_ARGON2_MEMORY_KIB="1024",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


class Gunicorn:
    def __init__(self, base_url: str, process: subprocess.Popen, log: Path):
        self.base_url = base_url
        self.process = process
        self.log = log

    def url(self, path: str) -> str:
        return self.base_url + path

    def session(self, flow: str = "-") -> requests.Session:
        """An HTTP client whose requests the access log attributes to `flow`.

        Send every request through one of these: gunicorn 27 fails to log a request
        that lacks a header named in the access log format."""
        http = requests.Session()
        http.headers["X-Flow"] = flow
        return http

    def requests(self) -> list[tuple[str, str]]:
        """(worker pid, request line) of every request so far, from the access log."""
        return re.findall(r'^pid=<?(\d+)>? flow=\S* "([^"]*)"', self.log.read_text(), flags=re.M)

    def served_by(self) -> list[str]:
        """The worker pid of every request so far (oldest first)."""
        return [pid for pid, _ in self.requests()]

    def served_by_flow(self) -> list[tuple[str, str]]:
        """(worker pid, X-Flow header) of the requests that sent one."""
        return re.findall(r"^pid=<?(\d+)>? flow=(\d+) ", self.log.read_text(), flags=re.M)


@contextmanager
def gunicorn(tmp_path: Path, env: dict, workers: int = 3, port: int | None = None, name: str = "gunicorn"):
    """`gunicorn wsgi:app` as production runs it; the access log records each request's worker pid."""
    port = port or free_port()
    log = tmp_path / f"{name}.log"
    env = {**env, "IDP_ISSUER": env.get("IDP_ISSUER", f"http://127.0.0.1:{port}")}
    command = [
        sys.executable, "-m", "gunicorn", "wsgi:app",
        "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
        "--access-logfile", "-", "--access-logformat", 'pid=%(p)s flow=%({x-flow}i)s "%(r)s" %(s)s',
        "--error-logfile", "-", "--graceful-timeout", "1",
    ]
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
    server = Gunicorn(f"http://127.0.0.1:{port}", process, log)

    def healthy(_=None) -> bool:
        try:
            return server.session().get(server.url("/healthz"), timeout=5).status_code == 200
        except requests.RequestException:
            return False

    def ready() -> bool:
        # Every worker must have loaded the app, or the first requests all land on one.
        if not healthy():
            return False
        with ThreadPoolExecutor(max_workers=2 * workers) as pool:
            list(pool.map(healthy, range(4 * workers)))
        return len(set(server.served_by())) >= workers

    try:
        _wait_until(ready, process, log, "gunicorn")
        yield server
    finally:
        _stop(process, signal.SIGQUIT)  # gunicorn's quick shutdown: tests need no graceful drain


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


@contextmanager
def redis_server(tmp_path: Path):
    """A private redis-server with no persistence; skips the test when Redis is not installed."""
    binary = redis_server_binary()
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    log = tmp_path / "redis.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(tmp_path)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    try:
        _wait_until(lambda: _port_open(port), process, log, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        _stop(process)
