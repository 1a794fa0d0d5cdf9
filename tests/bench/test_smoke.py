"""The load benchmark itself works: a two-second run against a real gunicorn, every workload error-free."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH_DIR))

import floor  # noqa: E402
import run  # noqa: E402
import steps  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture
def cheap_argon2(monkeypatch):
    # The server and the setup read these from the environment; production cost is not the point here.
    monkeypatch.setenv("IDP_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("IDP_ARGON2_MEMORY_KIB", "1024")


def test_benchmark_runs_every_workload_without_errors_and_writes_json(tmp_path, cheap_argon2, monkeypatch):
    monkeypatch.delenv("IDP_BENCH_DATABASE_URL", raising=False)
    output = tmp_path / "latest.json"
    exit_code = run.main([
        "--concurrency", "2", "--duration", "0.5", "--workers", "1", "--login-solo", "0.3",
        "--workdir", str(tmp_path / "work"), "--output", str(output),
    ])
    results = json.loads(output.read_text())

    assert exit_code == 0
    assert set(results["workloads"]) == {"sso", "refresh", "discovery", "login"}
    for name, workload in results["workloads"].items():
        assert workload["errors"] == 0, (name, workload["error_samples"])
        assert workload["iterations"] > 0
        assert workload["throughput_per_s"] > 0
        assert workload["p50_ms"] <= workload["p95_ms"] <= workload["p99_ms"]
        assert "loadgen_cpu_percent" in workload
    assert results["id_token_check"]["verified"] is True
    sql = {step: v["max"] for w in results["workloads"].values() for step, v in w["sql_per_request"].items()}
    assert {"authorize", "token (code)", "userinfo", "token (refresh)", "discovery", "jwks", "login POST"} <= set(sql)
    assert sql["discovery"] == 0
    assert results["argon2_verify"]["p50_ms"] > 0
    assert results["login_overhead"]["argon2_verify_p50_ms"] > 0
    assert results["server"]["database"] == "SQLite"


def test_floor_serves_the_empty_app_without_errors(tmp_path):
    output = tmp_path / "floor.json"
    assert floor.main(["--concurrency", "2", "--duration", "0.5", "--workers", "1", "--output", str(output)]) == 0
    result = json.loads(output.read_text())
    assert result["errors"] == 0 and result["iterations"] > 0
    assert result["cpu_ms_per_iteration"]["server"] > 0


def test_steps_times_each_step_of_the_sso_flow(cheap_argon2, capsys):
    assert steps.main(["--flows", "3", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{\n"):])
    (only_round,) = report["rounds"]
    assert all(only_round[f"{step}_ms"] > 0 for step in steps.STEPS)
    assert only_round["app_cpu_ms_per_flow"] > 0


def test_query_count_header_only_when_asked(app, client):
    assert "X-SQL-Queries" not in client.get("/healthz").headers


@pytest.mark.parametrize("app_overrides", [{"count_queries": True}])
def test_query_count_header_counts_the_statements_of_the_request(app, client):
    response = client.get("/t/no-such-school/login")  # the one statement that looks the school up
    assert response.headers["X-SQL-Queries"] == "1"
