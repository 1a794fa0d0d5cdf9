"""Does the SSO flow slow down with a national-scale database? Small and large side by side.

    .venv/bin/python bench/scale.py --database-url SMALL_URL --large-database-url LARGE_URL [--rounds 3]
        [--duration 20] [--workloads sso,refresh] [the other options of bench/run.py]

Two gunicorn servers run at once, one on each database (fill the large one with
bench/seed_large.py first), and the workloads alternate between them round by
round (small, large, small, large, ...), so both see the same background load on a
shared machine. Prints throughput per round and the large/small ratio; results go
to bench/results/scale.json."""

from __future__ import annotations

import argparse
import asyncio
import copy
import statistics
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import loadgen  # noqa: E402
import run  # noqa: E402

SCALE_RESULTS = BENCH_DIR / "results" / "scale.json"


async def alternate(small: loadgen.Bench, large: loadgen.Bench, *, rounds: int, duration: float, workloads) -> dict:
    rows: dict = {name: [] for name in workloads}
    try:
        await small.prepare(workloads)
        await large.prepare(workloads)
        for n in range(rounds):
            for name in workloads:
                s = copy.deepcopy(await small.run(name, duration))
                big = copy.deepcopy(await large.run(name, duration))
                rows[name].append({"round": n + 1, "small": s, "large": big})
    finally:
        await small.close()
        await large.close()
    return rows


def summary(rows: dict) -> dict:
    out = {}
    for name, runs in rows.items():
        small = [r["small"]["throughput_per_s"] for r in runs]
        large = [r["large"]["throughput_per_s"] for r in runs]
        ratios = [b / a for a, b in zip(small, large) if a]
        cpu = {size: statistics.fmean(
            r[size]["cpu_ms_per_iteration"].get("server", 0) + r[size]["cpu_ms_per_iteration"].get("database", 0)
            for r in runs) for size in ("small", "large")}
        out[name] = {
            "small_throughput_per_s": small, "large_throughput_per_s": large,
            "large_over_small_per_round": [round(x, 3) for x in ratios],
            "large_over_small_mean": round(statistics.fmean(ratios), 3) if ratios else None,
            "large_over_small_median": round(statistics.median(ratios), 3) if ratios else None,
            # All rounds together: less swayed by one round that a neighbour's burst hit.
            "large_over_small_total": round(sum(large) / sum(small), 3) if sum(small) else None,
            "small_p99_ms": [r["small"]["p99_ms"] for r in runs], "large_p99_ms": [r["large"]["p99_ms"] for r in runs],
            "errors": sum(r["small"]["errors"] + r["large"]["errors"] for r in runs),
            "server_plus_database_cpu_ms_per_iteration": {k: round(v, 2) for k, v in cpu.items()},
            "sql_per_request": {"small": runs[-1]["small"]["sql_per_request"],
                                "large": runs[-1]["large"]["sql_per_request"]},
        }
    return out


def main(argv=None) -> int:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--large-database-url", required=True)
    extra.add_argument("--rounds", type=int, default=3)
    known, rest = extra.parse_known_args(argv)
    if "--workloads" not in " ".join(rest):
        rest += ["--workloads", "sso,refresh"]
    args = run.parse_args(rest)
    large_args = copy.copy(args)
    large_args.database_url = known.large_database_url
    with run.ours_server(args) as (small_target, small_server, small_probes), \
            run.ours_server(large_args) as (large_target, large_server, large_probes):
        small_target.name, large_target.name = "small", "large"
        rows = asyncio.run(alternate(
            loadgen.Bench(small_target, args.concurrency, print, small_probes),
            loadgen.Bench(large_target, args.concurrency, print, large_probes),
            rounds=known.rounds, duration=args.duration, workloads=args.workloads,
        ))
    result = {"concurrency": args.concurrency, "duration_s": args.duration, "rounds": known.rounds,
              "small": {"rows": small_server["rows"], "database": small_server["database"]},
              "large": {"rows": large_server["rows"], "database": large_server["database"]},
              "machine": run.machine(), "summary": summary(rows), "runs": rows}
    print(f"\nsmall database rows {small_server['rows']}; large database rows {large_server['rows']}")
    table = [("workload", "small req/s per round", "large req/s per round", "large/small (all rounds)",
              "CPU ms/iteration small/large", "errors")]
    for name, s in result["summary"].items():
        cpu = s["server_plus_database_cpu_ms_per_iteration"]
        table.append((loadgen.WORKLOAD_TITLES[name], ", ".join(f"{x:g}" for x in s["small_throughput_per_s"]),
                      ", ".join(f"{x:g}" for x in s["large_throughput_per_s"]), f"{s['large_over_small_total']}",
                      f"{cpu['small']} / {cpu['large']}", str(s["errors"])))
    print(loadgen.render_rows(table))
    output = args.output if args.output != run.RESULTS else SCALE_RESULTS
    run.write_results(result, output)
    print(f"\nwritten to {output}")
    return 1 if any(s["errors"] for s in result["summary"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
