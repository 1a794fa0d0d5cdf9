"""`make run`'s foreground process: the IdP on :5000, its background worker, and the demo apps on :5001 and :5002.

The ports come from IDP_PORT, DEMO_SCHOOL_PORT and DEMO_STAFFSAFE_PORT (and the address from
DEMO_HOST). Every port is checked before anything starts: a busy one stops the demo with a
message naming it and the variable that moves it. The demo data (the apps' redirect URIs) and
the issuer then follow the chosen ports. Ctrl-C (or SIGTERM) stops all four; if one of them
dies, the others are stopped too and the exit code is non-zero."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from .rp import default_clients_file

READY_TIMEOUT = 60

#: (what listens, the variable that sets its port, the default port)
PORTS = (
    ("identity provider", "IDP_PORT", 5000),
    ("school app", "DEMO_SCHOOL_PORT", 5001),
    ("StaffSafe app", "DEMO_STAFFSAFE_PORT", 5002),
)


class PortProblem(Exception):
    """A port that cannot be used; the message says which and how to choose another."""


def chosen_ports(environ=os.environ) -> dict[str, int]:
    """{variable: port} from the environment (the defaults where unset); PortProblem for a bad value."""
    ports = {}
    for name, variable, default in PORTS:
        raw = (environ.get(variable) or "").strip() or str(default)
        if not raw.isdigit() or not 1 <= int(raw) <= 65535:
            raise PortProblem(f"{variable}={raw!r} is not a port number for the {name} (1 to 65535).")
        ports[variable] = int(raw)
    if len(set(ports.values())) < len(ports):
        raise PortProblem("IDP_PORT, DEMO_SCHOOL_PORT and DEMO_STAFFSAFE_PORT must be three different ports "
                          f"(they are {', '.join(str(p) for p in ports.values())}).")
    return ports


def check_ports_free(host: str, ports: dict[str, int]) -> None:
    """Bind each port for a moment, before anything is started or says it is listening."""
    names = {variable: name for name, variable, _ in PORTS}
    for variable, port in ports.items():
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError as error:
                why = "is already in use" if error.errno == errno.EADDRINUSE else f"cannot be used ({error.strerror})"
                raise PortProblem(
                    f"Port {port} on {host} (the {names[variable]}) {why}. Stop what is using it, or choose "
                    f"another port, for example: {variable}={_suggest(port, ports)} make run"
                ) from None


def _suggest(port: int, ports: dict[str, int]) -> int:
    candidate = port + 10
    while candidate in ports.values():
        candidate += 1
    return candidate


def _issuer(host: str, ports: dict[str, int]) -> str:
    return os.environ.get("IDP_ISSUER") or f"http://{host}:{ports['IDP_PORT']}"


def _commands(host: str, ports: dict[str, int]) -> list[tuple[str, list[str]]]:
    python = sys.executable
    return [
        ("identity provider", [python, "-c", "from idp.cli import main; main()", "serve",
                               "--host", host, "--port", str(ports["IDP_PORT"])]),
        # Delivers back-channel logout notices: signing out in one app ends the other apps' sessions.
        ("background worker", [python, "-c", "from idp.cli import main; main()", "worker"]),
        ("school app", [python, "-m", "clients.school_app", "--host", host, "--port", str(ports["DEMO_SCHOOL_PORT"])]),
        ("StaffSafe app", [python, "-m", "clients.staffsafe_app", "--host", host,
                           "--port", str(ports["DEMO_STAFFSAFE_PORT"])]),
    ]


def _load_demo_data(host: str, ports: dict[str, int]) -> bool:
    """The demo tenants and clients, their redirect URIs on the chosen ports (idempotent)."""
    command = [sys.executable, "-c", "from idp.cli import main; main()", "demo-data",
               "--school-app-url", f"http://{host}:{ports['DEMO_SCHOOL_PORT']}",
               "--staffsafe-app-url", f"http://{host}:{ports['DEMO_STAFFSAFE_PORT']}"]
    return subprocess.run(command, stdout=subprocess.DEVNULL).returncode == 0


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


def _banner(host: str, ports: dict[str, int]) -> str:
    lines = ["", "Everything is up. Press Ctrl-C to stop the servers and the worker.", ""]
    lines.append(f"  Identity provider   {_issuer(host, ports)}/.well-known/openid-configuration")
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
    try:
        ports = chosen_ports()
        check_ports_free(host, ports)
    except PortProblem as problem:
        print(f"make run: {problem}", file=sys.stderr)
        return 1
    # The servers (and the demo data's clients file) use the issuer the chosen port makes.
    os.environ["IDP_ISSUER"] = _issuer(host, ports)
    if not _load_demo_data(host, ports):
        print("make run: loading the demo data failed (see above).", file=sys.stderr)
        return 1
    processes: list[tuple[str, subprocess.Popen]] = []
    stopping = False

    def request_stop(signum, frame):
        nonlocal stopping
        stopping = True

    # The servers run in their own sessions, so a closed terminal (SIGHUP) must stop them through us too.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request_stop)
    try:
        for name, command in _commands(host, ports):
            # Own process group: a terminal's Ctrl-C reaches only this process, which then stops them in order.
            processes.append((name, subprocess.Popen(command, start_new_session=True)))
        if not _wait_until_ready(f"http://{host}:{ports['IDP_PORT']}/healthz", processes):
            if not stopping:
                print(f"The identity provider did not start on port {ports['IDP_PORT']} (IDP_PORT).", file=sys.stderr)
                return 1
        elif not stopping:
            print(_banner(host, ports), flush=True)
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
