"""`make bench-compare`: its CPU accounting, ratios and targets, the baseline tree it serves, the
peer's Redis store and the Redis adapter's promises (these last with node, installed when missing)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = PROJECT_ROOT / "bench"
sys.path.insert(0, str(BENCH_DIR))

import compare  # noqa: E402
import loadgen  # noqa: E402
import run  # noqa: E402


def workload(throughput=100.0, p99=50.0, errors=0, **cpu) -> dict:
    return {"throughput_per_s": throughput, "p99_ms": p99, "errors": errors, "cpu_ms_per_iteration": cpu}


def test_cpu_of_a_server_with_its_store_leaves_the_load_generator_out():
    assert compare.service_cpu(workload(server=2.5, database=1.25, loadgen=3.0)) == 3.75
    assert compare.service_cpu(workload(server=2.0, redis=0.5, loadgen=9.0)) == 2.5
    assert compare.service_cpu(workload(server=4.0, loadgen=1.0)) == 4.0  # SQLite: inside the server


def test_ratios_are_ours_over_each_other_server_per_workload():
    results = {
        "ours": {"workloads": {"sso": workload(200, 60, server=3.0, database=1.0, loadgen=3),
                               "login": workload(50, 300, server=30.0, loadgen=3)}},
        "baseline": {"workloads": {"sso": workload(100, 120, server=7.0, database=1.0, loadgen=3)}},
        "peer-redis": {"workloads": {"sso": workload(400, 40, server=1.5, redis=0.5, loadgen=3),
                                     "login": workload(100, 200, server=10.0, redis=0.0, loadgen=3)}},
    }
    r = compare.ratios(results)
    assert r["sso"]["baseline"] == {"throughput": 2.0, "p99": 0.5, "cpu": 0.5,
                                    "cpu_ms_per_iteration": {"ours": 4.0, "baseline": 8.0},
                                    "errors": {"ours": 0, "baseline": 0}}
    assert r["sso"]["peer-redis"]["cpu"] == 2.0
    assert r["sso"]["peer-redis"]["p99"] == 1.5
    assert set(r["login"]) == {"peer-redis"}  # the baseline did not run it


def test_targets_are_met_only_within_their_bound_and_without_errors():
    results = {"ours": {"workloads": {"sso": workload(errors=0)}},
               "baseline": {"workloads": {"sso": workload(errors=0)}}}
    r = {"sso": {"baseline": {"cpu": 0.5}, "peer-redis": {"p99": 1.6}}, "refresh": {"baseline": {"cpu": 0.59}}}
    status = {(t["workload"], t["against"]): t["status"] for t in compare.targets(results, r)}
    assert status == {("sso", "baseline"): "met", ("refresh", "baseline"): "met",
                      ("discovery", "baseline"): "not measured", ("sso", "peer-redis"): "short"}

    results["baseline"]["workloads"]["sso"]["errors"] = 1
    assert {t["status"] for t in compare.targets(results, r)} == {"short", "not measured"}


def test_process_tree_cpu_counts_live_children_and_reaped_ones():
    # The parent burns nothing itself; one child burns 0.3 s and is reaped, the next burns while alive.
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
    script = (
        "import subprocess, sys, time\n"
        f"subprocess.run([sys.executable, '-c', {burn!r}])\n"
        f"subprocess.Popen([sys.executable, '-c', {burn + 'time.sleep(30)'!r}])\n"
        "time.sleep(30)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while loadgen.process_tree_cpu(parent.pid) < 0.6 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert loadgen.process_tree_cpu(parent.pid) >= 0.6
        assert loadgen.process_tree_cpu(parent.pid) < 0.6 + 1.0  # interpreter start-ups, nothing else
    finally:
        os.killpg(parent.pid, signal.SIGKILL)  # the parent and its live child: their own process group
        parent.wait()


def test_a_worker_that_imported_another_trees_idp_stops_the_run(tmp_path):
    report = tmp_path / "served-idp.txt"
    report.write_text(f"{tmp_path / 'old' / 'idp' / '__init__.py'}\n{PROJECT_ROOT / 'idp' / '__init__.py'}\n")
    with pytest.raises(SystemExit, match="imported idp from"):
        run.served_idp(report, workers=2, expected=tmp_path / "old" / "idp", timeout=0.1)
    report.write_text(f"{tmp_path / 'old' / 'idp' / '__init__.py'}\n" * 2)
    assert run.served_idp(report, workers=2, expected=tmp_path / "old" / "idp") == str(tmp_path / "old" / "idp")


def test_the_baseline_must_be_a_checkout_and_have_a_database_of_its_own(tmp_path, capsys):
    with pytest.raises(SystemExit):
        compare.parse_args(["--baseline-tree", str(tmp_path)])
    assert "not a checkout" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        compare.parse_args(["--baseline-tree", str(PROJECT_ROOT), "--database-url", "postgresql+psycopg://x/y"])
    assert "--baseline-database-url" in capsys.readouterr().err
    args = compare.parse_args(["--baseline-tree", str(PROJECT_ROOT), "--peer-shapes", "redis"])
    assert args.peer_shapes == ("redis",) and args.baseline_tree == PROJECT_ROOT


@pytest.fixture
def cheap_argon2(monkeypatch):
    monkeypatch.setenv("IDP_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("IDP_ARGON2_MEMORY_KIB", "1024")
    monkeypatch.delenv("IDP_BENCH_DATABASE_URL", raising=False)


@pytest.mark.slow
def test_compare_serves_the_baseline_tree_it_was_given(tmp_path, cheap_argon2):
    old = tmp_path / "old"
    old.mkdir()
    for part in ("idp", "templates", "migrations"):
        shutil.copytree(PROJECT_ROOT / part, old / part, ignore=shutil.ignore_patterns("__pycache__"))
    for part in ("wsgi.py", "gunicorn.conf.py"):
        shutil.copy(PROJECT_ROOT / part, old / part)
    output = tmp_path / "compare.json"
    exit_code = compare.main(["--concurrency", "2", "--duration", "0.5", "--workers", "1", "--login-solo", "0",
                              "--workloads", "sso", "--peer-shapes", "", "--baseline-tree", str(old),
                              "--workdir", str(tmp_path / "work"), "--output", str(output)])
    results = json.loads(output.read_text())

    assert exit_code == 0
    assert results["baseline"]["server"]["idp_imported_from"] == str(old / "idp")
    assert results["ours"]["server"]["idp_imported_from"] == str(PROJECT_ROOT / "idp")
    for name in ("ours", "baseline"):
        assert all(w["errors"] == 0 and w["iterations"] > 0 for w in results[name]["workloads"].values())
        assert results[name]["workloads"]["sso"]["cpu_ms_per_iteration"]["server"] > 0
    assert set(results["ratios"]) == {"sso"}
    assert results["ratios"]["sso"]["baseline"]["cpu"] > 0


@pytest.fixture
def redis_folder():
    # Short: a unix socket path, should redis make one, has a length limit.
    folder = Path(tempfile.mkdtemp(prefix="bench-redis-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_the_peers_redis_appends_every_write_and_flushes_each_second(redis_folder):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    import redis

    with compare.redis_server(redis_folder) as (url, process):
        client = redis.Redis.from_url(url)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert client.config_get("save") == {"save": ""}
        before = loadgen.process_tree_cpu(process.pid)
        for n in range(3000):
            client.set(f"k{n}", "v")
        assert loadgen.process_tree_cpu(process.pid) > before
        client.close()
    assert process.poll() is not None


@pytest.fixture(scope="module")
def peer_modules():
    """bench/peer/node_modules, installed once (under a lock: test workers run side by side) when missing."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the peer (Node 20+)")
    wanted = [compare.PEER_DIR / "node_modules" / name / "package.json" for name in ("oidc-provider", "ioredis")]
    with open(Path(tempfile.gettempdir()) / "idp-bench-peer-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not all(p.exists() for p in wanted):
            try:
                compare.install_peer()
            except (subprocess.CalledProcessError, SystemExit) as failure:
                pytest.skip(f"could not install the peer's node modules (npm ci in bench/peer): {failure}")


@pytest.mark.slow
def test_the_redis_adapter_keeps_the_promises_of_the_adapter_interface(peer_modules, redis_folder):
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    with compare.redis_server(redis_folder) as (url, _):
        done = subprocess.run(["node", "--test", "redis_adapter.test.mjs"], cwd=compare.PEER_DIR,
                              env={**os.environ, "REDIS_URL": url},
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout


@pytest.mark.slow
def test_the_peer_serves_every_workload_in_both_shapes(tmp_path, peer_modules, cheap_argon2, monkeypatch):
    monkeypatch.setattr(compare, "install_peer", lambda: None)  # the fixture did
    output = tmp_path / "compare.json"
    exit_code = compare.main(["--concurrency", "2", "--duration", "0.5", "--workers", "1", "--login-solo", "0",
                              "--workloads", "sso,refresh,login", "--workdir", str(tmp_path / "work"),
                              "--output", str(output)])
    results = json.loads(output.read_text())

    assert exit_code == 0
    for shape in ("peer-memory", "peer-redis"):
        for name, w in results[shape]["workloads"].items():
            assert w["errors"] == 0 and w["iterations"] > 0, (shape, name, w["error_samples"])
        assert results[shape]["id_token_check"]["verified"] is True
    assert results["peer-redis"]["workloads"]["sso"]["cpu_ms_per_iteration"]["redis"] > 0
    assert "redis" not in results["peer-memory"]["workloads"]["sso"]["cpu_ms_per_iteration"]
    assert "appendfsync everysec" in results["peer-redis"]["configuration"]
    assert {t["status"] for t in results["targets"] if t["against"] == "peer-redis"} <= {"met", "short"}
