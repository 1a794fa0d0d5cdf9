"""One relying party, one browser, in process: the SSO flow's cost per step without gunicorn, the
network or a load generator in the way. For comparing two commits on a machine too busy for the
load figures to tell them apart (bench/README.md).

    .venv/bin/python bench/steps.py [--database-url URL] [--flows 800] [--rounds 3]

Per round: wall milliseconds per step (authorize, token, userinfo), this process's CPU per flow,
and the local PostgreSQL server's CPU per flow (when it runs here). Prints JSON."""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import secrets
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import loadgen  # noqa: E402
import run  # noqa: E402

STEPS = ("authorize", "token", "userinfo")


class SignedInBrowser:
    def __init__(self, app, client_id: str, client_secret: str):
        self.http = app.test_client()
        self.client_id = client_id
        self.basic = "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        page = self.http.get(f"/t/{run.TENANT_SLUG}/login").get_data(as_text=True)
        csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        response = self.http.post(f"/t/{run.TENANT_SLUG}/login", data={
            "csrf_token": csrf, "email": run.bench_email(0), "password": run.PASSWORD, "provider": "identity"})
        loadgen.expect(response.status_code == 302, f"login {response.status_code}")

    def flow(self, seconds: dict) -> None:
        verifier, challenge = loadgen.pkce_pair()
        query = urlencode({"response_type": "code", "client_id": self.client_id, "redirect_uri": run.REDIRECT_URI,
                           "scope": "openid profile email offline_access", "state": secrets.token_urlsafe(8),
                           "nonce": secrets.token_urlsafe(8), "code_challenge": challenge,
                           "code_challenge_method": "S256"})
        started = time.perf_counter()
        response = self.http.get("/authorize?" + query)
        loadgen.expect(response.status_code == 302, f"authorize {response.status_code}")
        code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
        authorized = time.perf_counter()
        response = self.http.post("/token", headers={"Authorization": self.basic}, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": run.REDIRECT_URI,
            "code_verifier": verifier})
        loadgen.expect(response.status_code == 200, f"token {response.status_code}")
        access_token = response.get_json()["access_token"]
        tokened = time.perf_counter()
        response = self.http.get("/userinfo", headers={"Authorization": "Bearer " + access_token})
        loadgen.expect(response.status_code == 200, f"userinfo {response.status_code}")
        done = time.perf_counter()
        for step, spent in zip(STEPS, (authorized - started, tokened - authorized, done - tokened)):
            seconds[step] += spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--flows", type=int, default=800)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    instance = Path(tempfile.mkdtemp(prefix="idp-bench-steps-"))
    database_url = args.database_url or f"sqlite:///{instance / 'idp.sqlite3'}"
    info = run.prepare_instance(instance, database_url, users=1)
    from idp import create_app

    app = create_app({"database_url": database_url, "instance_path": instance,
                      "issuer": "http://127.0.0.1:9"})
    import logging

    from idp.request_log import LOGGER_NAME

    logging.getLogger(LOGGER_NAME).setLevel(logging.WARNING)  # the request log would time the terminal
    browser = SignedInBrowser(app, info["client_id"], info["client_secret"])
    postmaster = run.local_postmaster_pid(database_url)
    for _ in range(50):  # warm caches, prepared statements and the signing key
        browser.flow(dict.fromkeys(STEPS, 0.0))
    rounds = []
    for _ in range(args.rounds):
        seconds = dict.fromkeys(STEPS, 0.0)
        cpu_before, db_before = time.process_time(), loadgen.process_tree_cpu(postmaster) if postmaster else 0.0
        for _ in range(args.flows):
            browser.flow(seconds)
        cpu = time.process_time() - cpu_before
        result = {f"{step}_ms": round(1000 * spent / args.flows, 3) for step, spent in seconds.items()}
        result["flow_ms"] = round(sum(result.values()), 3)
        result["app_cpu_ms_per_flow"] = round(1000 * cpu / args.flows, 3)
        if postmaster:
            result["database_cpu_ms_per_flow"] = round(
                1000 * (loadgen.process_tree_cpu(postmaster) - db_before) / args.flows, 3)
        rounds.append(result)
    print(json.dumps({"database": run.database_label(database_url), "flows_per_round": args.flows,
                      "rounds": rounds}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
