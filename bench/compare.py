"""`make bench-compare`: the same four workloads against our IdP and against panva's oidc-provider.

    .venv/bin/python bench/compare.py [the options of bench/run.py]

Installs the peer into bench/peer/ (npm ci), runs ours under gunicorn exactly as
`make bench` does, then the peer (bench/peer/server.mjs, one Node process, its
default IN-MEMORY storage adapter: no database round trips at all), with the
same load generator, concurrency and duration, and prints ours/peer ratios.
Results go to bench/results/compare.json."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import loadgen  # noqa: E402
import run  # noqa: E402

PEER_DIR = BENCH_DIR / "peer"
COMPARE_RESULTS = BENCH_DIR / "results" / "compare.json"
PEER_CONFIGURATION = (
    "panva/oidc-provider {version} on Node {node}, one process, default in-memory adapter (no database), "
    "one confidential client (client_secret_basic), PKCE S256 required, refresh tokens rotated on every use, "
    "first-party auto-grant via loadExistingGrant, RS256 ID tokens, login form checked with argon2id "
    "(@node-rs/argon2, m=19456 KiB, t=2, p=1, async on libuv's thread pool)"
)


def install_peer() -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is needed for the peer (Node 20+)")
    command = [npm, "ci"] if (PEER_DIR / "package-lock.json").exists() else [npm, "install"]
    subprocess.run(command + ["--no-audit", "--no-fund", "--loglevel=error"], cwd=PEER_DIR, check=True)


def peer_version() -> str:
    package = PEER_DIR / "node_modules" / "oidc-provider" / "package.json"
    return json.loads(package.read_text())["version"]


@contextmanager
def peer_server(port: int, users: int, client_secret: str):
    env = {**os.environ, "PEER_PORT": str(port), "PEER_USERS": str(users), "PEER_PASSWORD": run.PASSWORD,
           "PEER_CLIENT_ID": "bench-client", "PEER_CLIENT_SECRET": client_secret,
           "PEER_REDIRECT_URI": run.REDIRECT_URI, "NODE_ENV": "production"}
    workdir = Path(tempfile.mkdtemp(prefix="idp-bench-peer-"))
    try:
        with run.serving(["node", "server.mjs"], cwd=PEER_DIR, env=env, log_path=workdir / "peer.log", port=port,
                         stop_timeout=10) as process:
            yield process
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def peer_target(args, log=print):
    import secrets

    port = run.free_port()
    secret = secrets.token_urlsafe(32)
    target = loadgen.Target(
        name="peer", base_url=f"http://127.0.0.1:{port}", client_id="bench-client", client_secret=secret,
        redirect_uri=run.REDIRECT_URI, kind="peer",
        users=[(run.bench_email(n), run.PASSWORD) for n in range(args.concurrency)],
    )
    log(f"Starting the peer (oidc-provider {peer_version()}) on {target.base_url} ...")
    with peer_server(port, args.concurrency, secret) as process:
        yield target, {"server": lambda: loadgen.process_tree_cpu(process.pid)}


def run_both(args, log=print) -> tuple[dict, dict]:
    """Both servers up at once, workloads interleaved (ours, peer, ours, peer, ...)."""
    with run.ours_server(args, log) as (ours_target, server, probes), peer_target(args, log) as (peer, peer_probes):
        benches = [loadgen.Bench(ours_target, args.concurrency, log, probes),
                   loadgen.Bench(peer, args.concurrency, log, peer_probes)]
        ours, theirs = asyncio.run(loadgen.run_interleaved(benches, duration=args.duration,
                                                           workloads=args.workloads))
        run.finish_ours(ours, ours_target, server, args, log)
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    theirs["configuration"] = PEER_CONFIGURATION.format(version=peer_version(), node=node)
    return ours, theirs


def _service_cpu(workload: dict) -> float:
    cpu = workload.get("cpu_ms_per_iteration", {})
    return round(sum(v for k, v in cpu.items() if k != "loadgen"), 2)


def ratios(ours: dict, peer: dict) -> dict:
    out = {}
    for name, w in ours["workloads"].items():
        p = peer["workloads"].get(name)
        if not p:
            continue
        out[name] = {
            "throughput_ours_over_peer": round(w["throughput_per_s"] / p["throughput_per_s"], 2)
            if p["throughput_per_s"] else None,
            "p99_ours_over_peer": round(w["p99_ms"] / p["p99_ms"], 2) if p["p99_ms"] else None,
            "errors": {"ours": w["errors"], "peer": p["errors"]},
            # Robust on a shared machine: the work each iteration costs (ours: gunicorn + database).
            "cpu_ms_per_iteration": {"ours": _service_cpu(w), "peer": _service_cpu(p)},
        }
        cpu = out[name]["cpu_ms_per_iteration"]
        out[name]["cpu_ours_over_peer"] = round(cpu["ours"] / cpu["peer"], 2) if cpu["peer"] else None
    return out


def format_ratios(ours: dict, peer: dict, r: dict, markdown: bool = False) -> str:
    rows = [("workload", "ours req/s", "peer req/s", "throughput ours/peer", "ours p99", "peer p99",
             "p99 ours/peer", "CPU ms/iteration ours/peer", "errors ours/peer")]
    for name, x in r.items():
        o, p = ours["workloads"][name], peer["workloads"][name]
        cpu = x["cpu_ms_per_iteration"]
        rows.append((loadgen.WORKLOAD_TITLES[name], f"{o['throughput_per_s']:.1f}", f"{p['throughput_per_s']:.1f}",
                     f"{x['throughput_ours_over_peer']}x", f"{o['p99_ms']:.1f}", f"{p['p99_ms']:.1f}",
                     f"{x['p99_ours_over_peer']}x", f"{cpu['ours']:g}/{cpu['peer']:g} = {x['cpu_ours_over_peer']}x",
                     f"{o['errors']}/{p['errors']}"))
    return loadgen.render_rows(rows, markdown)


def main(argv=None) -> int:
    args = run.parse_args(argv)
    install_peer()
    ours, peer = run_both(args)
    run.print_report(ours)
    print("\npeer:", peer["configuration"])
    print(loadgen.format_table(peer))
    r = ratios(ours, peer)
    print("\nours / peer (same machine, same load generator, same run):")
    print(format_ratios(ours, peer, r))
    print("\nCaveat: the peer keeps everything in memory in one process (no database, nothing survives a restart "
          "or is shared between processes); ours writes codes and tokens to "
          f"{ours['server']['database']} and serves from {ours['server']['workers']} gunicorn workers.")
    document = {"ours": ours, "peer": peer, "ratios": r}
    run.write_results(document, args.output if args.output != run.RESULTS else COMPARE_RESULTS)
    print(f"\nwritten to {args.output if args.output != run.RESULTS else COMPARE_RESULTS}")
    errors = sum(w["errors"] for w in ours["workloads"].values()) + sum(
        w["errors"] for w in peer["workloads"].values())
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
