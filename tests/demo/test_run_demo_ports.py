"""`make run` checks its ports before anything starts or says it is listening, names a busy one
and the variable that moves it, and takes its ports from the environment."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from clients import run_demo


def test_ports_come_from_the_environment_with_the_documented_defaults():
    assert run_demo.chosen_ports({}) == {"IDP_PORT": 5000, "DEMO_SCHOOL_PORT": 5001, "DEMO_STAFFSAFE_PORT": 5002}
    assert run_demo.chosen_ports({"IDP_PORT": "5100", "DEMO_SCHOOL_PORT": " 5101 "})["DEMO_SCHOOL_PORT"] == 5101
    for bad in ({"IDP_PORT": "http"}, {"IDP_PORT": "70000"}, {"DEMO_SCHOOL_PORT": "5000"}):
        with pytest.raises(run_demo.PortProblem):
            run_demo.chosen_ports(bad)


def test_a_busy_port_stops_the_demo_before_anything_starts_naming_the_port_and_its_variable(monkeypatch, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        monkeypatch.setenv("DEMO_SCHOOL_PORT", str(port))
        monkeypatch.delenv("IDP_PORT", raising=False)
        monkeypatch.delenv("DEMO_STAFFSAFE_PORT", raising=False)
        started = []
        monkeypatch.setattr(run_demo.subprocess, "Popen", lambda *a, **k: started.append(a))
        monkeypatch.setattr(run_demo, "_load_demo_data", lambda *a: started.append("demo-data") or True)
        monkeypatch.setattr(run_demo, "check_ports_free", _only_the_school_port(run_demo.check_ports_free))
        assert run_demo.main() == 1
    err = capsys.readouterr()
    assert f"Port {port} on 127.0.0.1 (the school app) is already in use" in err.err
    assert "DEMO_SCHOOL_PORT=" in err.err and "listening" not in err.out + err.err
    assert started == []


def _only_the_school_port(check):
    # The other default ports may be taken on a shared test machine: look at the one made busy.
    return lambda host, ports: check(host, {"DEMO_SCHOOL_PORT": ports["DEMO_SCHOOL_PORT"]})


def test_idp_serve_says_which_port_is_busy_and_never_that_it_is_listening(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-c", "from idp.cli import main; main()", "serve", "--port", str(port)],
            capture_output=True, text=True, timeout=60,
            env={"IDP_INSTANCE_PATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert f"Port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "listening" not in result.stdout
