"""`make bench`: the IdP under gunicorn, loaded by bench/loadgen.py, results in bench/results/latest.json.

    .venv/bin/python bench/run.py [--concurrency 16] [--duration 20]
        [--database-url postgresql+psycopg://...]  (or IDP_BENCH_DATABASE_URL; default SQLite in a temp folder)
        [--workers 3] [--worker-class gevent|gthread|sync (default: gunicorn.conf.py's)] [--threads 4] [--workloads sso,refresh,discovery,login]

It prepares the instance (migrations, a `bench` tenant, one Identity user per
virtual user, a confidential client), starts gunicorn with IDP_COUNT_QUERIES=1,
waits for /healthz, runs the workloads, stops gunicorn and prints a table."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(0, str(PROJECT_ROOT))

import loadgen  # noqa: E402

TENANT_SLUG = "bench"
PASSWORD = "Correct-Horse-42!"
REDIRECT_URI = "http://127.0.0.1:8765/callback"
RESULTS = BENCH_DIR / "results" / "latest.json"


def bench_email(n: int) -> str:
    return f"bench-user-{n}@example.org"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_instance(instance: Path, database_url: str, users: int) -> dict:
    """Schema, the bench tenant, `users` accounts and a fresh confidential client. Idempotent."""
    from flask_migrate import upgrade
    from sqlalchemy import select

    from idp import create_app
    from idp.accounts import passwords
    from idp.extensions import db
    from idp.models import Account, Tenant

    app = create_app({"database_url": database_url, "instance_path": instance})
    with app.app_context():
        upgrade()
        from idp.accounts.directory import create_account
        from idp.oidc.registry import register_client
        from idp.tenants import create_tenant

        tenant = db.session.scalars(select(Tenant).where(Tenant.slug == TENANT_SLUG)).first()
        if tenant is None:
            tenant = create_tenant(slug=TENANT_SLUG, name="Benchmark Primary School", product="cpoms")
        existing = set(db.session.scalars(
            select(Account.email).where(Account.tenant_id == tenant.id, Account.provider == "identity")
        ))
        shared_hash = None
        for n in range(users):
            if bench_email(n) in existing:
                continue
            account = create_account(provider="identity", email=bench_email(n), name=f"Bench User {n}",
                                     tenants=[tenant], password=None)
            # Same hash for everyone (argon2 once): cheaper setup, same verification cost.
            shared_hash = shared_hash or passwords.hash_password(PASSWORD)
            from idp.accounts.directory import set_password_hash

            set_password_hash(account, shared_hash)
        registered = register_client(tenant, name="Benchmark RP", redirect_uris=[REDIRECT_URI])
        _ensure_signing_key()
        db.session.commit()
        settings = app.config["SETTINGS"]
        info = {
            "client_id": registered.client.client_id,
            "client_secret": registered.client_secret,
            "argon2": (settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism),
        }
        db.engine.dispose()
    return info


def _ensure_signing_key() -> None:
    """Make the first signing key before the workers start, so they do not race to create one."""
    from idp.oidc import keys

    keys.current_signing_key()


@contextmanager
def gunicorn(instance: Path, database_url: str, port: int, *, workers: int, worker_class: str, threads: int,
             extra_env: dict | None = None, tree: Path = PROJECT_ROOT):
    """`gunicorn wsgi:app` of `tree` (this checkout, or an older one to compare with) under that tree's
    gunicorn.conf.py; yields the master process once its every worker has said which idp it imported."""
    env = {
        **os.environ,
        "IDP_INSTANCE_PATH": str(instance),
        "IDP_DATABASE_URL": database_url,
        "IDP_ISSUER": f"http://127.0.0.1:{port}",
        "IDP_COUNT_QUERIES": "1",
        **(extra_env or {}),
    }
    # gunicorn puts the folder it was started in first on sys.path and reads gunicorn.conf.py (which
    # imports idp.config) before it changes into --chdir: started anywhere else, its master would import
    # another tree's idp (or the venv's editable one) and its workers inherit it. So it starts in `tree`,
    # with `tree` first on PYTHONPATH too, and served_idp() checks what the workers got.
    env["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [os.environ.get("PYTHONPATH")])])
    report = instance / "served-idp.txt"
    report.unlink(missing_ok=True)
    config = instance / "gunicorn.bench.conf.py"
    config.write_text(REPORTING_CONFIG.format(config=str(tree / "gunicorn.conf.py"), report=str(report)))
    gunicorn_bin = Path(sys.executable).with_name("gunicorn")
    command = [str(gunicorn_bin), "wsgi:app", "--config", str(config),
               "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
               "--worker-class", worker_class, "--backlog", "2048", "--log-level", "warning",
               # Longer than any pause between workloads, so a reused keep-alive connection is never stale.
               "--keep-alive", "120",
               # Worker heartbeats in memory, not on disk.
               "--worker-tmp-dir", "/dev/shm" if Path("/dev/shm").is_dir() else tempfile.gettempdir(),
               "--chdir", str(tree)]
    if worker_class == "gthread":
        command += ["--threads", str(threads)]
    with serving(command, env=env, log_path=instance / "gunicorn.log", port=port, cwd=tree) as process:
        process.served_idp = served_idp(report, workers, tree / "idp")
        yield process


@contextmanager
def granian(instance: Path, database_url: str, port: int, *, workers: int, threads: int,
            extra_env: dict | None = None):
    """`granian --interface wsgi wsgi:app` of this checkout (the Rust HTTP server, for comparing with
    gunicorn's workers: bench/README.md); `threads` blocking threads per worker run the app."""
    env = {
        **os.environ,
        "IDP_INSTANCE_PATH": str(instance),
        "IDP_DATABASE_URL": database_url,
        "IDP_ISSUER": f"http://127.0.0.1:{port}",
        "IDP_COUNT_QUERIES": "1",
        **(extra_env or {}),
    }
    env["PYTHONPATH"] = os.pathsep.join([str(PROJECT_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    command = [str(Path(sys.executable).with_name("granian")), "--interface", "wsgi", "--host", "127.0.0.1",
               "--port", str(port), "--workers", str(workers), "--blocking-threads", str(threads),
               "--backlog", "2048", "--no-ws", "--log-level", "warning", "wsgi:app"]
    with serving(command, env=env, log_path=instance / "granian.log", port=port, cwd=PROJECT_ROOT) as process:
        process.served_idp = str(PROJECT_ROOT / "idp")
        yield process


# The served tree's gunicorn.conf.py, and each worker writing down where its idp package came from.
REPORTING_CONFIG = """\
# Written by bench/run.py for one run.
import runpy as _runpy

globals().update((k, v) for k, v in _runpy.run_path({config!r}).items() if not k.startswith("__"))
_served_post_worker_init = globals().get("post_worker_init")


def post_worker_init(worker):
    if _served_post_worker_init:
        _served_post_worker_init(worker)
    import sys

    with open({report!r}, "a") as report:
        report.write(sys.modules["idp"].__file__ + "\\n")
"""


def served_idp(report: Path, workers: int, expected: Path, timeout: float = 60) -> str:
    """The idp package every worker imported, refused unless it is `expected` (the tree meant to be served)."""
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = report.read_text().splitlines() if report.exists() else []
        if len(lines) >= workers:
            break
        time.sleep(0.1)
    wrong = {line for line in lines if Path(line).resolve().parent != expected.resolve()}
    if not lines or wrong:
        raise SystemExit(f"gunicorn's workers imported idp from {sorted(wrong) or 'nowhere'}, not {expected}")
    return str(expected)


@contextmanager
def serving(command: list[str], *, env: dict, log_path: Path, port: int, cwd: Path | None = None,
            stop_timeout: float = 20):
    """A server process (ours or the peer) from start until /healthz answers, and stopped after."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            wait_healthy(f"http://127.0.0.1:{port}/healthz", process, log_path)
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def configured_worker_class(database_url: str, tree: Path = PROJECT_ROOT) -> str:
    """The worker class gunicorn.conf.py chooses for this database: what production runs."""
    import runpy

    saved = os.environ.get("IDP_DATABASE_URL")
    os.environ["IDP_DATABASE_URL"] = database_url
    try:
        return runpy.run_path(str(tree / "gunicorn.conf.py"))["worker_class"]
    finally:
        if saved is None:
            os.environ.pop("IDP_DATABASE_URL", None)
        else:
            os.environ["IDP_DATABASE_URL"] = saved


def wait_healthy(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited early:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server not healthy after {timeout}s:\n{log_path.read_text()[-3000:]}")


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def database_label(url: str) -> str:
    return "PostgreSQL" if url.startswith("postgresql") else "SQLite"


def row_count(database_url: str) -> dict:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    with engine.connect() as conn:
        counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in ("tenants", "accounts", "tokens")}
    engine.dispose()
    return counts


@contextmanager
def ours_server(args, log=print, *, tree: Path = PROJECT_ROOT, name: str = "ours", database_url: str | None = None):
    """Prepare the instance, serve it with gunicorn; yields (Target, server description, CPU probes).

    `tree` is the checkout whose idp is prepared and served: this one, or an older one to compare with
    (compare.py --baseline-tree), under the name `name` and on its own database."""
    tree = Path(tree).resolve()
    database_url = database_url or args.database_url or os.environ.get("IDP_BENCH_DATABASE_URL", "")
    if args.workdir:
        workdir = Path(args.workdir) if name == "ours" else Path(args.workdir) / name
    else:
        workdir = Path(tempfile.mkdtemp(prefix=f"idp-bench-{name}-"))
    instance = workdir / "instance"
    instance.mkdir(parents=True, exist_ok=True)
    if not database_url:
        database_url = f"sqlite:///{instance / 'idp.sqlite3'}"
    try:
        log(f"Preparing {database_label(database_url)} instance in {instance} for {name} ({tree}) ...")
        if tree == PROJECT_ROOT:
            info = prepare_instance(instance, database_url, users=args.concurrency)
            info["worker_class"] = configured_worker_class(database_url)
        else:
            info = prepare_instance_of(tree, instance, database_url, users=args.concurrency)
        port = (args.port if name == "ours" else 0) or free_port()
        target = loadgen.Target(
            name=name, base_url=f"http://127.0.0.1:{port}", client_id=info["client_id"],
            client_secret=info["client_secret"], redirect_uri=REDIRECT_URI, kind="ours", tenant_slug=TENANT_SLUG,
            users=[(bench_email(n), PASSWORD) for n in range(args.concurrency)],
        )
        worker_class = args.worker_class or info["worker_class"]
        server = {
            "tree": str(tree), "commit": tree_commit(tree),
            "database": database_label(database_url), "rows": row_count(database_url), "workers": args.workers,
            "worker_class": worker_class, "threads": args.threads if worker_class == "gthread" else 1,
            "argon2": info["argon2"],
        }
        extra_env = {"IDP_SECRET_KEY": secrets.token_urlsafe(32)}
        if name == "ours" and args.server == "granian":
            server.update(server="granian", worker_class="granian", threads=args.threads)
            log(f"Starting granian ({args.workers} workers x {args.threads} threads) on {target.base_url} ...")
            serve = granian(instance, database_url, port, workers=args.workers, threads=args.threads,
                            extra_env=extra_env)
        else:
            server["server"] = "gunicorn"
            log(f"Starting gunicorn ({args.workers} {worker_class} workers) on {target.base_url} ...")
            serve = gunicorn(instance, database_url, port, workers=args.workers, worker_class=worker_class,
                             threads=args.threads, extra_env=extra_env, tree=tree)
        with serve as process:
            server["idp_imported_from"] = process.served_idp
            probes = {"server": lambda: loadgen.process_tree_cpu(process.pid)}
            postmaster = local_postmaster_pid(database_url)
            if postmaster:
                probes["database"] = lambda: loadgen.process_tree_cpu(postmaster)
            yield target, server, probes
    finally:
        if not args.keep_instance and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


# prepare_instance in a fresh interpreter that imports `tree`'s idp, not this checkout's.
PREPARE_IN_TREE = """\
import json, sys
sys.path.insert(0, {bench!r})
import run
sys.path.insert(0, {tree!r})
info = run.prepare_instance(run.Path({instance!r}), {database_url!r}, users={users!r})
info["worker_class"] = run.configured_worker_class({database_url!r}, run.Path({tree!r}))
import idp
info["idp"] = idp.__file__
print(json.dumps(info))
"""


def prepare_instance_of(tree: Path, instance: Path, database_url: str, users: int) -> dict:
    """prepare_instance with `tree`'s own idp (its schema, its migrations), and the worker class its
    gunicorn.conf.py picks."""
    code = PREPARE_IN_TREE.format(bench=str(BENCH_DIR), tree=str(tree), instance=str(instance),
                                  database_url=database_url, users=users)
    done = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"preparing the instance of {tree} failed:\n{done.stderr[-3000:]}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    if Path(info["idp"]).resolve().parent != (tree / "idp").resolve():
        raise SystemExit(f"preparing {tree} imported idp from {info['idp']}")
    return info


def tree_commit(tree: Path) -> str | None:
    """The tree's commit, "+changes" when what is served differs from it; None outside git."""
    def git(*command):
        return subprocess.run(["git", "-C", str(tree), *command], capture_output=True, text=True)

    commit = git("rev-parse", "--short", "HEAD").stdout.strip()
    if not commit:
        return None
    changed = git("status", "--porcelain", "--", "idp", "migrations", "templates", "wsgi.py", "gunicorn.conf.py")
    return commit + ("+changes" if changed.stdout.strip() else "")


def local_postmaster_pid(database_url: str) -> int | None:
    """The PostgreSQL server's process, when it runs on this machine and we may read its data folder."""
    if not database_url.startswith("postgresql"):
        return None
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            folder = conn.execute(text("SHOW data_directory")).scalar()
        return int(Path(folder, "postmaster.pid").read_text().split()[0])
    except Exception:  # noqa: BLE001 - remote server or no privilege: no database CPU figure
        return None
    finally:
        engine.dispose()


def finish_ours(results: dict, target, server: dict, args, log=print) -> dict:
    """The password login alone (no queueing), the hash alone, and the server description."""
    if "login" in args.workloads and args.login_solo > 0:
        log(f"  ours: password login alone (concurrency 1) for {args.login_solo:g}s ...")
        solo = asyncio.run(loadgen.run_all(target, concurrency=1, duration=args.login_solo,
                                           workloads=("login",), log=lambda *_: None))
        results["login_concurrency_1"] = solo["workloads"]["login"]
    t, m, p = server["argon2"]
    results["argon2_verify"] = loadgen.argon2_hash_time(t, m, p)
    results["server"] = server
    results["machine"] = machine()
    results["login_overhead"] = login_overhead(results)
    return results


def run_ours(args, log=print) -> dict:
    with ours_server(args, log) as (target, server, probes):
        results = asyncio.run(loadgen.run_all(target, concurrency=args.concurrency, duration=args.duration,
                                              workloads=args.workloads, log=log, cpu_probes=probes))
        return finish_ours(results, target, server, args, log)


def login_overhead(results: dict) -> dict | None:
    """Password login = the hash + everything else; two ways of splitting it."""
    solo = results.get("login_concurrency_1")
    if not solo:
        return None
    post = solo["steps"].get("login POST", {})
    argon2 = results["argon2_verify"]
    overhead = {"login_post_p50_ms": post.get("p50_ms"), "argon2_verify_p50_ms": argon2["p50_ms"],
                "overhead_ms": round(post.get("p50_ms", 0) - argon2["p50_ms"], 2)}
    loaded = results["workloads"].get("login", {}).get("cpu_ms_per_iteration", {})
    if "server" in loaded:
        # Server CPU per login (page GET + POST, database included) minus the hash's own CPU time.
        cpu = loaded["server"] + loaded.get("database", 0)
        overhead.update(server_cpu_per_login_ms=round(cpu, 2), argon2_verify_cpu_ms=argon2["cpu_p50_ms"],
                        overhead_cpu_ms=round(cpu - argon2["cpu_p50_ms"], 2))
    return overhead


def print_report(results: dict, log=print) -> None:
    server = results["server"]
    log("")
    log(f"ours: {server.get('server', 'gunicorn')} {server['workers']}x{server['worker_class']} on {server['database']} "
        f"(rows: {server['rows']}), concurrency {results['concurrency']}, {results['duration_s']:g}s per workload, "
        f"{results['machine']['cpus']} CPUs")
    log(loadgen.format_table(results))
    log("")
    for name, w in results["workloads"].items():
        steps = ", ".join(f"{s} p50 {v['p50_ms']:.1f}/p99 {v['p99_ms']:.1f} ms" for s, v in w["steps"].items())
        log(f"  {name}: {steps}")
        for sample in w["error_samples"]:
            log(f"    error: {sample}")
    a = results["argon2_verify"]
    log(f"argon2id verify alone (t={a['params']['t']}, m={a['params']['m_kib']} KiB, p={a['params']['p']}): "
        f"p50 {a['p50_ms']} ms")
    overhead = login_overhead(results)
    if overhead:
        log(f"password login POST at concurrency 1: p50 {overhead['login_post_p50_ms']} ms "
            f"= hash {overhead['argon2_verify_p50_ms']} ms + {overhead['overhead_ms']} ms of everything else")
        if "overhead_cpu_ms" in overhead:
            log(f"password login in CPU time: {overhead['server_cpu_per_login_ms']} ms per login (page + POST) "
                f"= hash {overhead['argon2_verify_cpu_ms']} ms + {overhead['overhead_cpu_ms']} ms of everything else")
    log("machine load average (1 min) during the workloads: "
        + ", ".join(f"{n} {w['loadavg_1m'][0]:.1f}-{w['loadavg_1m'][1]:.1f}" for n, w in results["workloads"].items()))
    log(f"ID token signature verified against JWKS: {results.get('id_token_check')}")


def build_parser(description: str = __doc__) -> argparse.ArgumentParser:
    """run.py's options, which compare.py extends with its own."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per workload")
    parser.add_argument("--workloads", default=",".join(loadgen.WORKLOADS))
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("IDP_BENCH_WORKERS", 3)))
    parser.add_argument("--worker-class", default=os.environ.get("IDP_BENCH_WORKER_CLASS") or None,
                        choices=("sync", "gthread", "gevent"),
                        help="default: what gunicorn.conf.py picks for the database (gevent on PostgreSQL)")
    parser.add_argument("--threads", type=int, default=4, help="gthread threads, or granian blocking threads")
    parser.add_argument("--server", default="gunicorn", choices=("gunicorn", "granian"),
                        help="what serves ours (a --baseline-tree is always served by gunicorn)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--login-solo", type=float, default=3.0,
                        help="seconds of password login at concurrency 1 (service time without queueing)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--keep-instance", action="store_true")
    parser.add_argument("--workdir", default=None, help="folder for the instance (default: a new temp folder)")
    return parser


def parse_args(argv=None, parser: argparse.ArgumentParser | None = None):
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    args.workloads = tuple(w for w in args.workloads.split(",") if w)
    unknown = set(args.workloads) - set(loadgen.WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    return args


def write_results(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")


def main(argv=None) -> int:
    args = parse_args(argv)
    results = run_ours(args)
    print_report(results)
    write_results(results, args.output)
    print(f"\nwritten to {args.output}")
    errors = sum(w["errors"] for w in results["workloads"].values())
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
