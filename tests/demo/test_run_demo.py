"""`make run`'s supervisor: when one of the three servers dies, the others are stopped too."""

from __future__ import annotations

import subprocess
import sys

from clients import run_demo


def test_when_one_server_dies_the_others_are_stopped_and_the_exit_code_says_so(monkeypatch, capsys):
    started = []
    real_popen = subprocess.Popen

    def popen(command, **kwargs):
        process = real_popen(command, **kwargs)
        started.append(process)
        return process

    monkeypatch.setattr(run_demo.subprocess, "Popen", popen)
    monkeypatch.setattr(run_demo.signal, "signal", lambda *args: None)  # leave pytest's own handlers alone
    monkeypatch.setattr(run_demo, "_wait_until_ready", lambda url, processes: True)
    monkeypatch.setattr(run_demo, "chosen_ports", lambda: {"IDP_PORT": 1, "DEMO_SCHOOL_PORT": 2, "DEMO_STAFFSAFE_PORT": 3})
    monkeypatch.setattr(run_demo, "check_ports_free", lambda host, ports: None)
    monkeypatch.setattr(run_demo, "_load_demo_data", lambda host, ports: True)
    monkeypatch.setattr(run_demo, "_commands", lambda host, ports: [
        ("identity provider", [sys.executable, "-c", "import time; time.sleep(120)"]),
        ("school app", [sys.executable, "-c", "raise SystemExit(3)"]),
    ])

    monkeypatch.setenv("IDP_ISSUER", "http://127.0.0.1:5000")  # main() sets it for its servers: undone after
    assert run_demo.main() == 1
    assert "The school app stopped (exit code 3); stopping the others." in capsys.readouterr().err
    assert all(process.poll() is not None for process in started)
