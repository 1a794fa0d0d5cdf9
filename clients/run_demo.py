"""`make run`'s foreground process: the IdP on :5000, its background worker, and the demo apps on :5001 and :5002.

Ctrl-C (or SIGTERM) stops all four; if one of them dies (a port already in
use, say), the others are stopped too and the exit code is non-zero."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from .rp import default_clients_file

IDP_PORT = 5000
SCHOOL_PORT = 5001
STAFFSAFE_PORT = 5002
READY_TIMEOUT = 60


def _commands(host: str) -> list[tuple[str, list[str]]]:
    python = sys.executable
    return [
        ("identity provider", [python, "-c", "from idp.cli import main; main()", "serve",
                               "--host", host, "--port", str(IDP_PORT)]),
        # Delivers back-channel logout notices: signing out in one app ends the other apps' sessions.
        ("background worker", [python, "-c", "from idp.cli import main; main()", "worker"]),
        ("school app", [python, "-m", "clients.school_app", "--host", host, "--port", str(SCHOOL_PORT)]),
        ("StaffSafe app", [python, "-m", "clients.staffsafe_app", "--host", host, "--port", str(STAFFSAFE_PORT)]),
    ]


def _wait_until_ready(url: str, processes) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if any(p.poll() is not None for _, p in processes):
            return False
        try:
            with urlopen(url, timeout=2):
                return True
        except (URLError, OSError):
            time.sleep(0.3)
    return False


def _stop(processes) -> None:
    for _, process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 10
    for _, process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _banner(host: str) -> str:
    lines = ["", "Everything is up. Press Ctrl-C to stop the servers and the worker.", ""]
    lines.append(f"  Identity provider   http://{host}:{IDP_PORT}/.well-known/openid-configuration")
    try:
        clients = json.loads(Path(default_clients_file()).read_text())["clients"]
    except (OSError, ValueError, KeyError):
        clients = {}
    for client in clients.values():
        lines.append(f"  {client['tenant_name']:<26}  {client['app_url']}")
    from idp.demo import ACCOUNTS, DEMO_PASSWORD

    lines += ["", f"  Demo accounts (password {DEMO_PASSWORD}):"]
    for account in ACCOUNTS:
        lines.append(f"    {account.email:<32} {account.why}")
    lines += ["", "  SSO: sign in on one school's app with \"Login using your CPOMS SSO account\",",
              "  then click Sign in on another school's app or on StaffSafe: no password is asked.", ""]
    return "\n".join(lines)


def main() -> int:
    host = os.environ.get("DEMO_HOST", "127.0.0.1")
    processes: list[tuple[str, subprocess.Popen]] = []
    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    # The servers run in their own sessions, so a closed terminal (SIGHUP) must stop them through us too.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request_stop)
    try:
        for name, command in _commands(host):
            # Own process group: a terminal's Ctrl-C reaches only this process, which then stops them in order.
            processes.append((name, subprocess.Popen(command, start_new_session=True)))
        if not _wait_until_ready(f"http://{host}:{IDP_PORT}/healthz", processes):
            if not stopping:
                print("The identity provider did not start (is port 5000 free?).", file=sys.stderr)
                return 1
        elif not stopping:
            print(_banner(host), flush=True)
        while not stopping:
            for name, process in processes:
                if process.poll() is not None:
                    print(f"The {name} stopped (exit code {process.returncode}); stopping the others.",
                          file=sys.stderr)
                    return 1
            time.sleep(0.5)
        print("\nStopping the demo...", flush=True)
        return 0
    finally:
        _stop(processes)


if __name__ == "__main__":
    sys.exit(main())
