"""`make bench-compare`: the same four workloads against our IdP, an older checkout of it, and panva's
oidc-provider in both its shapes, all in one run.

    .venv/bin/python bench/compare.py [the options of bench/run.py]
        [--peer-shapes memory,redis] [--baseline-tree PATH [--baseline-database-url URL]]

Installs the peer into bench/peer/ (npm ci) and serves, all at once:
  ours         this checkout under gunicorn, exactly as `make bench` does;
  baseline     (with --baseline-tree) another checkout of ours, e.g. `git worktree add /tmp/old <commit>`,
               its own idp, migrations and gunicorn.conf.py (each worker reports which idp it imported,
               and a tree other than the one asked for stops the run); its own SQLite instance, or on
               PostgreSQL the database --baseline-database-url names (not ours: its schema is older);
  peer-memory  bench/peer/server.mjs, one Node process, oidc-provider's default in-memory adapter, which
               its documentation says is for development only;
  peer-redis   the same with bench/peer/redis_adapter.mjs on a local redis-server with appendonly yes and
               appendfsync everysec: the peer's production shape.
The workloads are interleaved (ours, baseline, peer-memory, peer-redis, then the next workload), so all
see the same neighbours on a shared machine. Per workload and server it reports throughput, p50/p95/p99 and
CPU milliseconds per iteration of the server together with its store (gunicorn + PostgreSQL, nothing
extra for SQLite, node + redis-server), then ours over each of the others, and issue 15's targets.
Results go to bench/results/compare.json."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import loadgen  # noqa: E402
import run  # noqa: E402

PEER_DIR = BENCH_DIR / "peer"
COMPARE_RESULTS = BENCH_DIR / "results" / "compare.json"
PEER_SHAPES = ("memory", "redis")
PEER_CONFIGURATION = (
    "panva/oidc-provider {version} on Node {node}, one process, {store}, "
    "one confidential client (client_secret_basic), PKCE S256 required, refresh tokens rotated on every use, "
    "first-party auto-grant via loadExistingGrant, RS256 ID tokens, login form checked with argon2id "
    "(@node-rs/argon2, m=19456 KiB, t=2, p=1, async on libuv's thread pool)"
)
PEER_STORES = {
    "memory": "its default in-memory adapter (development only: no store, nothing survives a restart or is "
              "shared between processes; an LRU of the 1,000 most recently used entries)",
    "redis": "bench/peer/redis_adapter.mjs with ioredis {ioredis} on redis-server {redis} over TCP on 127.0.0.1 "
             "(appendonly yes, appendfsync everysec, no RDB snapshots)",
}
# Issue 15's targets: (workload, compared with, figure, at most ours/theirs).
TARGETS = (
    ("sso", "baseline", "cpu", 0.5),
    ("refresh", "baseline", "cpu", 0.6),
    ("discovery", "baseline", "cpu", 0.7),
    ("sso", "peer-redis", "p99", 1.5),
)


def install_peer() -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is needed for the peer (Node 20+)")
    command = [npm, "ci"] if (PEER_DIR / "package-lock.json").exists() else [npm, "install"]
    subprocess.run(command + ["--no-audit", "--no-fund", "--loglevel=error"], cwd=PEER_DIR, check=True)


def installed_version(package: str) -> str:
    return json.loads((PEER_DIR / "node_modules" / package / "package.json").read_text())["version"]


def redis_server_binary() -> str:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        raise SystemExit("redis-server is needed for the peer's Redis shape (apt-get install redis-server)")
    return binary


def redis_command(binary: str, port: int, folder: Path) -> list[str]:
    """A private redis-server configured as the peer would run in production: every write appended to
    its log, flushed to disk once a second. RDB snapshots are off (the log is the durability) so that
    a snapshot's fork does not land in one workload's window by chance."""
    return [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--daemonize", "no", "--logfile", ""]


def redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server(folder: Path, timeout: float = 20):
    """redis-server on a free port from start until it answers PING, stopped after; yields (url, process)."""
    port = run.free_port()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "redis.log", "w") as log:
        process = subprocess.Popen(redis_command(redis_server_binary(), port, folder), stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not redis_answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"redis-server did not start:\n{(folder / 'redis.log').read_text()[-3000:]}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def peer_target(args, shape: str = "memory", log=print):
    """The peer in one shape; yields (Target, CPU probes: the node process, and redis-server for "redis")."""
    port = run.free_port()
    secret = secrets.token_urlsafe(32)
    target = loadgen.Target(
        name=f"peer-{shape}", base_url=f"http://127.0.0.1:{port}", client_id="bench-client", client_secret=secret,
        redirect_uri=run.REDIRECT_URI, kind="peer",
        users=[(run.bench_email(n), run.PASSWORD) for n in range(args.concurrency)],
    )
    env = {**os.environ, "PEER_PORT": str(port), "PEER_USERS": str(args.concurrency), "PEER_PASSWORD": run.PASSWORD,
           "PEER_CLIENT_ID": target.client_id, "PEER_CLIENT_SECRET": secret,
           "PEER_REDIRECT_URI": run.REDIRECT_URI, "NODE_ENV": "production", "PEER_STORE": shape}
    workdir = Path(tempfile.mkdtemp(prefix=f"idp-bench-peer-{shape}-"))
    try:
        with ExitStack() as stack:
            probes = {}
            if shape == "redis":
                url, redis = stack.enter_context(redis_server(workdir / "redis"))
                env["PEER_REDIS_URL"] = url
                probes["redis"] = lambda: loadgen.process_tree_cpu(redis.pid)
            log(f"Starting the peer (oidc-provider {installed_version('oidc-provider')}, {shape} store) "
                f"on {target.base_url} ...")
            process = stack.enter_context(run.serving(
                ["node", "server.mjs"], cwd=PEER_DIR, env=env, log_path=workdir / "peer.log", port=port,
                stop_timeout=10))
            # Server first: the order the tables list them in.
            yield target, {"server": lambda: loadgen.process_tree_cpu(process.pid), **probes}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def peer_configuration(shape: str) -> str:
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    store = PEER_STORES[shape]
    if shape == "redis":
        version = subprocess.run([redis_server_binary(), "--version"], capture_output=True, text=True).stdout
        redis = next((w.split("=", 1)[1] for w in version.split() if w.startswith("v=")), "?")
        store = store.format(ioredis=installed_version("ioredis"), redis=redis)
    return PEER_CONFIGURATION.format(version=installed_version("oidc-provider"), node=node, store=store)


def run_all(args, log=print) -> dict:
    """Every server up at once, workloads interleaved; {name: results} in the order they ran."""
    with ExitStack() as stack:
        ours = {"ours": stack.enter_context(run.ours_server(args, log))}
        if args.baseline_tree:
            ours["baseline"] = stack.enter_context(run.ours_server(
                args, log, tree=args.baseline_tree, name="baseline", database_url=args.baseline_database_url))
        peers = {f"peer-{shape}": stack.enter_context(peer_target(args, shape, log)) for shape in args.peer_shapes}
        benches = [loadgen.Bench(target, args.concurrency, log, probes) for target, _, probes in ours.values()]
        benches += [loadgen.Bench(target, args.concurrency, log, probes) for target, probes in peers.values()]
        results = dict(zip([*ours, *peers], asyncio.run(loadgen.run_interleaved(
            benches, duration=args.duration, workloads=args.workloads)), strict=True))
        for name, (target, server, _) in ours.items():
            run.finish_ours(results[name], target, server, args, log)
    for name in peers:
        results[name]["configuration"] = peer_configuration(name.removeprefix("peer-"))
    return results


def service_cpu(workload: dict) -> float:
    """CPU ms per iteration of the server and its store together: everything measured but the load generator."""
    cpu = workload.get("cpu_ms_per_iteration", {})
    return round(sum(v for k, v in cpu.items() if k != "loadgen"), 2)


def _ratio(ours: float, theirs: float) -> float | None:
    return round(ours / theirs, 2) if theirs else None


def ratios(results: dict) -> dict:
    """{workload: {other server: ours over it}} for every workload both ran."""
    ours = results["ours"]["workloads"]
    out: dict = {}
    for name, w in ours.items():
        for other, theirs in results.items():
            t = theirs["workloads"].get(name)
            if other == "ours" or not t:
                continue
            out.setdefault(name, {})[other] = {
                "throughput": _ratio(w["throughput_per_s"], t["throughput_per_s"]),
                "p99": _ratio(w["p99_ms"], t["p99_ms"]),
                "cpu": _ratio(service_cpu(w), service_cpu(t)),
                "cpu_ms_per_iteration": {"ours": service_cpu(w), other: service_cpu(t)},
                "errors": {"ours": w["errors"], other: t["errors"]},
            }
    return out


def targets(results: dict, r: dict) -> list[dict]:
    """Issue 15's targets, each met, short, or not measured in this run (a workload or server left out)."""
    errors = sum(w["errors"] for x in results.values() for w in x["workloads"].values())
    out = []
    for workload, other, figure, at_most in TARGETS:
        value = r.get(workload, {}).get(other, {}).get(figure)
        status = "not measured" if value is None else "met" if value <= at_most and not errors else "short"
        out.append({"workload": workload, "against": other, "figure": figure, "at_most": at_most,
                    "ours_over_theirs": value, "status": status})
    return out


def format_servers(results: dict, markdown: bool = False) -> str:
    """One row per workload and server: what each served and what it cost (CPU of the server and its store)."""
    rows = [("workload", "server", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors",
             "CPU ms/iteration: server + store = total")]
    for name in results["ours"]["workloads"]:
        for server, x in results.items():
            w = x["workloads"].get(name)
            if not w:
                continue
            cpu = w["cpu_ms_per_iteration"]
            store = round(service_cpu(w) - cpu.get("server", 0), 2)
            rows.append((loadgen.WORKLOAD_TITLES[name], server, f"{w['throughput_per_s']:.1f}", f"{w['p50_ms']:.1f}",
                         f"{w['p95_ms']:.1f}", f"{w['p99_ms']:.1f}", str(w["errors"]),
                         f"{cpu.get('server', 0):g} + {store:g} = {service_cpu(w):g}"))
    return loadgen.render_rows(rows, markdown)


def format_ratios(r: dict, markdown: bool = False) -> str:
    rows = [("workload", "ours over", "throughput", "p99", "CPU per iteration (server + store)")]
    for name, others in r.items():
        for other, x in others.items():
            cpu = x["cpu_ms_per_iteration"]
            rows.append((loadgen.WORKLOAD_TITLES[name], other, f"{x['throughput']}x", f"{x['p99']}x",
                         f"{cpu['ours']:g} / {cpu[other]:g} = {x['cpu']}x"))
    return loadgen.render_rows(rows, markdown)


def format_targets(t: list[dict], markdown: bool = False) -> str:
    rows = [("target (issue 15)", "ours over theirs", "status")]
    for x in t:
        figure = "CPU per iteration" if x["figure"] == "cpu" else x["figure"]
        rows.append((f"{loadgen.WORKLOAD_TITLES[x['workload']]}: {figure} <= {x['at_most']}x {x['against']}",
                     "-" if x["ours_over_theirs"] is None else f"{x['ours_over_theirs']}x", x["status"]))
    return loadgen.render_rows(rows, markdown)


def parse_args(argv=None):
    parser = run.build_parser(__doc__)
    parser.add_argument("--peer-shapes", default=",".join(PEER_SHAPES),
                        help="the peer's stores to run: memory, redis or both (default)")
    parser.add_argument("--baseline-tree", type=Path, default=None,
                        help="another checkout of ours to serve beside this one (e.g. a git worktree of an older commit)")
    parser.add_argument("--baseline-database-url", default=None,
                        help="the baseline's database (needed on PostgreSQL; default: SQLite in its own instance)")
    args = run.parse_args(argv, parser)
    args.peer_shapes = tuple(s for s in args.peer_shapes.split(",") if s)
    if set(args.peer_shapes) - set(PEER_SHAPES):
        parser.error(f"--peer-shapes: choose from {', '.join(PEER_SHAPES)}")
    if args.baseline_tree:
        args.baseline_tree = args.baseline_tree.resolve()
        if not (args.baseline_tree / "idp" / "__init__.py").exists() or not (args.baseline_tree / "wsgi.py").exists():
            parser.error(f"--baseline-tree {args.baseline_tree} is not a checkout of this project (no idp/, wsgi.py)")
        ours_url = args.database_url or os.environ.get("IDP_BENCH_DATABASE_URL", "")
        if ours_url.startswith("postgresql") and not args.baseline_database_url:
            parser.error("on PostgreSQL the baseline needs a database of its own: --baseline-database-url")
        if args.baseline_database_url and args.baseline_database_url == ours_url:
            parser.error("--baseline-database-url must not be ours: the two schemas differ")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.peer_shapes:
        install_peer()
    results = run_all(args)
    for name in ("ours", "baseline"):
        if name in results:
            print(f"\n== {name}: {results[name]['server']['tree']} at {results[name]['server']['commit']}")
            run.print_report(results[name])
    for name, x in results.items():
        if name.startswith("peer-"):
            print(f"\n== {name}: {x['configuration']}")
            print(loadgen.format_table(x))
    print("\nEvery server, same machine, same load generator, same run:")
    print(format_servers(results))
    r = ratios(results)
    print("\nours / each other server (throughput: higher is better for ours; p99 and CPU: lower is):")
    print(format_ratios(r))
    t = targets(results, r)
    print()
    print(format_targets(t))
    print("\nCPU per iteration is the figure to compare on a shared machine; throughput only within one run.")
    document = {**results, "ratios": r, "targets": t}
    output = args.output if args.output != run.RESULTS else COMPARE_RESULTS
    run.write_results(document, output)
    print(f"\nwritten to {output}")
    errors = sum(w["errors"] for x in results.values() for w in x["workloads"].values())
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
