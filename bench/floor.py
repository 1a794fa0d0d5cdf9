"""The floor of the stack: how many three-request iterations a do-nothing Flask app serves on this
machine, under the IdP's own gunicorn settings and the benchmark's own load generator.

    .venv/bin/python bench/floor.py [--concurrency 16] [--duration 20] [--workers 3] [--worker-class gevent]

An SSO flow is three requests (authorize, token, userinfo). Whatever the IdP does inside them, it
cannot serve more flows per second than this app serves empty iterations, nor spend less server
CPU per flow. Set beside the peer's SSO figures in bench/README.md. Results: results/floor.json."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

import httpx

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import loadgen  # noqa: E402
import run  # noqa: E402

RESULTS = BENCH_DIR / "results" / "floor.json"


async def drive(base_url: str, concurrency: int, duration: float) -> tuple[loadgen.Recorder, float]:
    rec = loadgen.Recorder()
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
    clients = [httpx.AsyncClient(timeout=30, limits=limits) for _ in range(concurrency)]
    deadline = time.perf_counter() + duration

    async def loop(http: httpx.AsyncClient) -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                for n in (1, 2, 3):
                    response = await loadgen.timed(rec, f"step {n}", http.get(f"{base_url}/step/{n}"))
                    loadgen.expect(response.status_code == 200 and response.json()["ok"], f"step {n}")
            except (loadgen.CheckFailed, httpx.HTTPError, ValueError) as failure:
                rec.error(f"{type(failure).__name__}: {failure}")
                continue
            rec.latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(loop(http) for http in clients))
    finally:
        await asyncio.gather(*(http.aclose() for http in clients))
    return rec, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--worker-class", default="gevent")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    port = run.free_port()
    command = [str(Path(sys.executable).with_name("gunicorn")), "floor_app:app",
               "--config", str(run.PROJECT_ROOT / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}",
               "--workers", str(args.workers), "--worker-class", args.worker_class, "--keep-alive", "120",
               "--log-level", "warning", "--chdir", str(BENCH_DIR)]
    log_path = Path(os.environ.get("TMPDIR", "/tmp")) / "idp-bench-floor.log"
    print(f"Starting gunicorn ({args.workers} {args.worker_class} workers) with bench/floor_app.py ...")
    with run.serving(command, env=dict(os.environ), log_path=log_path, port=port) as process:
        asyncio.run(drive(f"http://127.0.0.1:{port}", args.concurrency, 2))  # warm-up
        server_before, own_before = loadgen.process_tree_cpu(process.pid), loadgen._cpu_seconds()
        rec, wall = asyncio.run(drive(f"http://127.0.0.1:{port}", args.concurrency, args.duration))
        server_cpu = loadgen.process_tree_cpu(process.pid) - server_before
        own_cpu = loadgen._cpu_seconds() - own_before
    iterations = max(len(rec.latencies), 1)
    result = {
        "what": "three GETs of an empty Flask app per iteration (the floor of an SSO flow)",
        "workers": args.workers, "worker_class": args.worker_class,
        "concurrency": args.concurrency, "duration_s": args.duration, "machine": run.machine(),
        "iterations": len(rec.latencies),
        "throughput_per_s": round(len(rec.latencies) / wall, 1),
        **{k: v for k, v in loadgen.summarise(rec.latencies).items() if k != "count"},
        "errors": rec.errors,
        "cpu_ms_per_iteration": {"server": round(1000 * server_cpu / iterations, 2),
                                 "loadgen": round(1000 * own_cpu / iterations, 2)},
    }
    print(json.dumps(result, indent=2))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.output}")
    return 0 if rec.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
