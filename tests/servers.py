"""Real servers for tests that must cross process boundaries: gunicorn serving
wsgi:app, redis-server, a private PostgreSQL cluster and HAProxy, each on a free
local port (loopback only), stopped afterwards.

Also `scratch_database_url()`: a database of its own (SQLite file, or a fresh
PostgreSQL database beside IDP_TEST_DATABASE_URL) for tests that migrate,
downgrade or let other processes write; and `python -m tests.servers two-nodes`
(`make two-nodes`), which runs two IdP nodes behind HAProxy by hand."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

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
    # The server stops its own children; if it hangs, its whole group (own session) is killed.
    if process.poll() is None:
        try:
            os.kill(process.pid, sig)
            process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    # Whatever is left of its group (the server hung, or was killed and left its workers behind).
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
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
        self.port = int(base_url.rsplit(":", 1)[1])
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

    def workers(self) -> list[int]:
        """The pids of the master's live workers."""
        found = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in found.stdout.split()]

    def kill_worker(self) -> int:
        """kill -9 one worker (the master starts another); its pid."""
        pid = self.workers()[0]
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill_master(self) -> None:
        """kill -9 the master alone; its orphaned workers notice and exit by themselves."""
        workers = self.workers()
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        _wait_for_exit(workers, what="gunicorn's orphaned workers")

    def kill_node(self) -> None:
        """kill -9 the master and every worker at once, as when the machine dies."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def _wait_for_exit(pids: list[int], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for pid in pids:
        while _alive(pid):
            if time.monotonic() > deadline:
                for straggler in pids:
                    try:
                        os.kill(straggler, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                raise RuntimeError(f"{what} did not exit within {timeout}s")
            time.sleep(0.05)  # polling a process that is exiting


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its new parent) is gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


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
    with log.open("a") as out:  # appended: a node restarted on its port keeps one log
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
        _stop(server.process, signal.SIGQUIT)  # gunicorn's quick shutdown: tests need no graceful drain


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


# --- a PostgreSQL cluster of a test's own ---------------------------------------------------

POSTGRESQL_BIN = Path("/usr/lib/postgresql/15/bin")


def postgresql_missing() -> str | None:
    """Why a private cluster cannot be made here (None when it can)."""
    if not (POSTGRESQL_BIN / "initdb").exists():
        return f"PostgreSQL 15 server binaries are not installed ({POSTGRESQL_BIN}; apt-get install postgresql)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser: initdb must run as the postgres user"
    return None


class PrivatePostgres:
    """A PostgreSQL cluster in a temporary folder on a free port, which its test may stop, restart
    or make read-only without touching anyone else's. Run by `postgres` when we are root (initdb
    refuses root), like .ci/postgres. Commits stay synchronous: an acknowledged commit must survive
    an immediate (crash) stop; fsync is off, which only an operating-system crash would notice."""

    PASSWORD = "idp-private-only"

    def __init__(self):
        self.folder = Path(tempfile.mkdtemp(prefix="idp-pg-"))
        self.port = free_port()
        self.url = f"postgresql+psycopg://idp:{self.PASSWORD}@127.0.0.1:{self.port}/idp"
        self.data = self.folder / "data"
        self.log = self.folder / "server.log"

    def _run(self, *command: str) -> None:
        if os.geteuid() == 0:
            command = ("runuser", "-u", "postgres", "--", *command)
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            log = self.log.read_text()[-4000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}{log}")

    def create(self) -> "PrivatePostgres":
        (self.folder / "pwfile").write_text(self.PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
            shutil.chown(self.folder / "pwfile", "postgres")
        self._run(str(POSTGRESQL_BIN / "initdb"), "-D", str(self.data), "-U", "idp",
                  f"--pwfile={self.folder / 'pwfile'}", "-E", "UTF8", "--locale=C.UTF-8",
                  "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync")
        self.start()
        self._run(str(POSTGRESQL_BIN / "createdb"), "-h", str(self.folder), "-p", str(self.port), "-U", "idp", "idp")
        return self

    def start(self) -> None:
        self._run(str(POSTGRESQL_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "start", "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                  "-c max_connections=200 -c fsync=off -c full_page_writes=off")

    def stop(self, mode: str = "fast") -> None:
        """`fast` (clients cut, clean shutdown) or `immediate` (as a crash: recovery on next start)."""
        self._run(str(POSTGRESQL_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def execute(self, *statements: str) -> list:
        """Run statements as the cluster's superuser, outside any transaction; the last one's rows."""
        engine = create_engine(self.url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT",
                               poolclass=NullPool)
        try:
            with engine.connect() as conn:
                rows = []
                for statement in statements:
                    result = conn.exec_driver_sql(statement)
                    rows = result.fetchall() if result.returns_rows else []
                return rows
        finally:
            engine.dispose()

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            try:
                self.stop("immediate")
            except RuntimeError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)


@contextmanager
def private_postgres():
    """A PrivatePostgres for the block; skips the test when PostgreSQL's binaries are missing."""
    missing = postgresql_missing()
    if missing:
        pytest.skip(missing)
    cluster = PrivatePostgres()
    try:
        yield cluster.create()
    finally:
        cluster.destroy()


# --- HAProxy in front of several nodes -------------------------------------------------------

#: How HAProxy decides a node is down: two failed readiness checks half a second apart.
HAPROXY_CHECK = "inter 500ms fastinter 250ms downinter 500ms fall 2 rise 2"


def haproxy_binary() -> str | None:
    return shutil.which("haproxy", path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/local/sbin")


def haproxy_config(port: int, stats_port: int, nodes: dict[str, int]) -> str:
    """Round robin over `nodes` (name: port), each checked on the readiness endpoint; a request
    whose connection a dead node refuses is sent to another (redispatch), never one that got in."""
    servers = "\n".join(f"  server {name} 127.0.0.1:{node_port} check" for name, node_port in nodes.items())
    return f"""global
  maxconn 512

defaults
  mode http
  option forwardfor
  option redispatch
  retries 2
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  timeout check 2s

frontend idp
  bind 127.0.0.1:{port}
  default_backend nodes

backend nodes
  balance roundrobin
  option httpchk GET /healthz/ready
  http-check expect status 200
  default-server {HAPROXY_CHECK}
{servers}

frontend stats
  bind 127.0.0.1:{stats_port}
  stats enable
  stats uri /
  stats refresh 2s
"""


class HAProxy:
    def __init__(self, base_url: str, stats_url: str, process: subprocess.Popen, log: Path):
        self.base_url = base_url
        self.stats_url = stats_url
        self.process = process
        self.log = log

    def url(self, path: str) -> str:
        return self.base_url + path

    def session(self, flow: str = "-") -> requests.Session:
        http = requests.Session()
        http.headers["X-Flow"] = flow
        return http

    def node_states(self) -> dict[str, str]:
        """Each node's state as HAProxy sees it ("UP", "DOWN", ...), from its statistics page."""
        lines = requests.get(self.stats_url + ";csv", timeout=5).text.splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","))) for line in lines[1:] if line]
        return {row["svname"]: row["status"] for row in rows
                if row["pxname"] == "nodes" and row["svname"] not in ("FRONTEND", "BACKEND")}


@contextmanager
def haproxy(tmp_path: Path, nodes: dict[str, int], port: int | None = None, stats_port: int | None = None):
    """HAProxy on `port` in front of `nodes`; skips the test when it is not installed."""
    binary = haproxy_binary()
    if binary is None:
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    port, stats_port = port or free_port(), stats_port or free_port()
    config = tmp_path / "haproxy.cfg"
    config.write_text(haproxy_config(port, stats_port, nodes))
    log = tmp_path / "haproxy.log"
    with log.open("w") as out:
        # -db: stay in the foreground, so stopping this process stops HAProxy.
        process = subprocess.Popen([binary, "-db", "-f", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    server = HAProxy(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{stats_port}/", process, log)
    try:
        _wait_until(lambda: _port_open(port) and _port_open(stats_port), process, log, "haproxy")
        yield server
    finally:
        _stop(process, signal.SIGUSR1)  # HAProxy's soft stop


# --- make two-nodes ---------------------------------------------------------------------------


def _idp_command(env: dict, *args: str) -> str:
    result = subprocess.run([sys.executable, "-c", "from idp.cli import main; main()", *args], cwd=PROJECT_ROOT,
                            env=env, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"idp {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def _demo_app(folder: Path, env: dict, module: str, port: int):
    """A demo relying party on `port` (skipped, with None, when the port is taken)."""
    if _port_open(port):
        return None
    log = folder / f"{module.rsplit('.', 1)[1]}.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", module, "--port", str(port)], cwd=PROJECT_ROOT, env=env,
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    _wait_until(lambda: _port_open(port), process, log, module)
    return process


def _delivery_worker(folder: Path, env: dict):
    """`idp worker`: delivers back-channel logout notices; any node may run it (here, one)."""
    log = folder / "worker.log"
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-c", "from idp.cli import main; main()", "worker"],
                                cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True), log


def serve_two_nodes(balancer_port: int) -> None:
    """`make two-nodes`: a throwaway PostgreSQL cluster and redis-server, the demo data, two IdP
    nodes (gunicorn, two workers each), HAProxy in front and the back-channel logout worker, in a temporary folder, until Ctrl-C."""
    from contextlib import ExitStack

    missing = postgresql_missing() or (
        "haproxy is not installed (apt-get install haproxy)" if haproxy_binary() is None else None) or (
        "redis-server is not installed (apt-get install redis-server)" if redis_server_binary() is None else None)
    if missing:
        sys.exit(f"Cannot run two nodes here: {missing}")

    def stop(signum, frame):
        raise KeyboardInterrupt

    # Ctrl-C, and `kill`, both stop everything this started (SIGINT may arrive ignored, as it
    # does for a job sent to the background).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop)
    with ExitStack() as stack:
        folder = Path(tempfile.mkdtemp(prefix="idp-two-nodes-"))
        stack.callback(shutil.rmtree, folder, ignore_errors=True)
        print(f"Setting up in {folder} (PostgreSQL, Redis, two nodes, HAProxy)...", flush=True)
        cluster = PrivatePostgres()
        stack.callback(cluster.destroy)
        cluster.create()
        redis_url = stack.enter_context(redis_server(folder))
        issuer = f"http://127.0.0.1:{balancer_port}"
        env = idp_env(folder, cluster.url, IDP_SECRET_KEY=secrets.token_urlsafe(48), IDP_REDIS_URL=redis_url,
                      IDP_ISSUER=issuer, IDP_TRUSTED_PROXIES="1")
        for cheap in ("IDP_ARGON2_TIME_COST", "IDP_ARGON2_MEMORY_KIB"):  # production's costs here
            env.pop(cheap)
        _idp_command(env, "db", "upgrade")
        _idp_command(env, "demo-data")
        nodes = {}
        for name in ("a", "b"):
            (folder / name).mkdir()
            node_env = {**env, "IDP_INSTANCE_PATH": str(folder / name / "instance")}
            nodes[name] = stack.enter_context(gunicorn(folder / name, node_env, workers=2, name=name))
        balancer = stack.enter_context(haproxy(folder, {name: node.port for name, node in nodes.items()},
                                               port=balancer_port))
        worker, worker_log = _delivery_worker(folder, env)
        stack.callback(_stop, worker)
        demo_apps = {port: _demo_app(folder, env, module, port)
                     for module, port in (("clients.school_app", 5001), ("clients.staffsafe_app", 5002))}
        for process in demo_apps.values():
            if process is not None:
                stack.callback(_stop, process)
        print(f"""
Two IdP nodes behind HAProxy, sharing one PostgreSQL and one Redis:

  Load balancer (the issuer)  {issuer}/.well-known/openid-configuration
  A school's login page       {issuer}/t/oakwood/login   (sam.jones@example.org, Demo-Password-2026!)
  HAProxy's statistics        {balancer.stats_url}
  Node a                      {nodes['a'].base_url}/healthz/ready   (log: {nodes['a'].log})
  Node b                      {nodes['b'].base_url}/healthz/ready   (log: {nodes['b'].log})
  Back-channel logout worker  idp worker   (log: {worker_log})
  PostgreSQL                  {cluster.url.replace(PrivatePostgres.PASSWORD, '…')}
  Redis                       {redis_url}
""")
        for port, process in demo_apps.items():
            print(f"  Demo app                    http://127.0.0.1:{port}/" if process is not None
                  else f"  (port {port} is taken: its demo app is not started)")
        print(f"""
Kill a node (kill -9 -{nodes['a'].process.pid}: node a's gunicorn master and workers) and watch
HAProxy drain it.
Ctrl-C stops everything and removes {folder}.""", flush=True)
        try:
            while balancer.process.poll() is None:
                time.sleep(1)  # until Ctrl-C; a node killed meanwhile is HAProxy's to notice
        except KeyboardInterrupt:
            print("\nStopping...", flush=True)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.servers")
    commands = parser.add_subparsers(dest="command", required=True)
    two_nodes = commands.add_parser("two-nodes", help="two IdP nodes behind HAProxy (make two-nodes)")
    two_nodes.add_argument("--port", type=int, default=8100, help="the load balancer's port (the issuer's)")
    arguments = parser.parse_args()
    serve_two_nodes(arguments.port)
