"""The load generator shared by `make bench` (run.py) and `make bench-compare` (compare.py).

Virtual users are asyncio tasks, each with its own httpx client (its own cookie
jar): each signs in once through the target's real login form, then repeats one
workload for a fixed time. Every step is checked (status, state, nonce, userinfo
sub, refresh rotation); anything unexpected counts as an error, never silently.
A Target knows only how to sign in on its own login pages; the OAuth steps go to
the endpoints its discovery document advertises."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import resource
import secrets
import statistics
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

SCOPE = "openid email profile offline_access"
WORKLOADS = ("sso", "refresh", "discovery", "login")
WORKLOAD_TITLES = {
    "sso": "SSO flow (authorize+token+userinfo)",
    "refresh": "Refresh grant (rotation)",
    "discovery": "Discovery + JWKS",
    "login": "Password login (form)",
}
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
FORM_ACTION_RE = re.compile(r'<form[^>]*action="([^"]+)"')


class CheckFailed(Exception):
    """A response that a correct IdP would not send."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def b64url_json(segment: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass
class Target:
    """What the generator needs to know about one IdP under test."""

    name: str
    base_url: str
    client_id: str
    client_secret: str
    redirect_uri: str
    users: list[tuple[str, str]]
    #: "ours": /t/<slug>/login sets the session; "peer": oidc-provider's interaction pages.
    kind: str = "ours"
    tenant_slug: str = ""
    discovery: dict = field(default_factory=dict)

    def endpoint(self, name: str) -> str:
        return self.discovery[name]

    def login_url(self) -> str:
        return f"{self.base_url}/t/{self.tenant_slug}/login?provider=identity"


@dataclass
class Recorder:
    """Latencies, SQL counts and errors of one workload."""

    latencies: list[float] = field(default_factory=list)
    steps: dict[str, list[float]] = field(default_factory=dict)
    sql: dict[str, list[int]] = field(default_factory=dict)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def step(self, name: str, seconds: float, response: httpx.Response | None = None) -> None:
        self.steps.setdefault(name, []).append(seconds)
        if response is not None and "x-sql-queries" in response.headers:
            self.sql.setdefault(name, []).append(int(response.headers["x-sql-queries"]))

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(message[:300])


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summarise(values: list[float]) -> dict:
    return {
        "count": len(values),
        "p50_ms": round(percentile(values, 50) * 1000, 2),
        "p95_ms": round(percentile(values, 95) * 1000, 2),
        "p99_ms": round(percentile(values, 99) * 1000, 2),
        "mean_ms": round(statistics.fmean(values) * 1000, 2) if values else 0.0,
    }


async def timed(rec: Recorder, step: str, coro) -> httpx.Response:
    start = time.perf_counter()
    response = await coro
    rec.step(step, time.perf_counter() - start, response)
    return response


class VirtualUser:
    def __init__(self, target: Target, email: str, password: str, *, timeout: float = 30.0):
        self.target = target
        self.email = email
        self.password = password
        limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
        self.http = httpx.AsyncClient(timeout=timeout, follow_redirects=False, limits=limits)
        self.auth = (target.client_id, target.client_secret)
        self.refresh_token: str | None = None
        self.sub: str | None = None

    async def close(self) -> None:
        await self.http.aclose()

    # --- signing in through the target's own pages ---
    async def sign_in(self, rec: Recorder) -> None:
        if self.target.kind == "ours":
            await self._ours_login(rec)
        else:
            await self._peer_login(rec)

    async def _ours_login(self, rec: Recorder) -> None:
        url = self.target.login_url()
        page = await timed(rec, "login page GET", self.http.get(url))
        expect(page.status_code == 200, f"login page {page.status_code}")
        match = CSRF_RE.search(page.text)
        expect(match is not None, "login page has no csrf_token")
        data = {"csrf_token": match.group(1), "email": self.email, "password": self.password, "provider": "identity"}
        posted = await timed(rec, "login POST", self.http.post(url.split("?")[0], data=data))
        expect(posted.status_code in (302, 303), f"login POST {posted.status_code}: {posted.text[:200]}")
        expect("/login" not in posted.headers.get("location", ""), "login POST redirected back to the login page")

    async def _peer_login(self, rec: Recorder) -> str:
        """oidc-provider signs in inside an authorization request; returns the final code."""
        state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        verifier, challenge = pkce_pair()
        start = await timed(rec, "authorize (no session)", self.http.get(self._authorize_url(state, nonce, challenge)))
        expect(start.status_code in (302, 303), f"authorize {start.status_code}")
        page_url = httpx.URL(self.target.base_url).join(start.headers["location"])
        page = await timed(rec, "login page GET", self.http.get(page_url))
        expect(page.status_code == 200, f"login page {page.status_code}")
        action = FORM_ACTION_RE.search(page.text)
        token = CSRF_RE.search(page.text)
        expect(action is not None and token is not None, "peer login page has no form")
        data = {"csrf_token": token.group(1), "email": self.email, "password": self.password, "provider": "identity"}
        posted = await timed(rec, "login POST", self.http.post(page_url.join(action.group(1)), data=data))
        expect(posted.status_code in (302, 303), f"login POST {posted.status_code}: {posted.text[:200]}")
        resumed = await timed(rec, "authorize resume", self.http.get(page_url.join(posted.headers["location"])))
        expect(resumed.status_code in (302, 303), f"resume {resumed.status_code}")
        params = self._callback_params(resumed, state)
        return params["code"][0]

    # --- the OAuth steps ---
    def _authorize_url(self, state: str, nonce: str, challenge: str) -> str:
        query = urlencode({
            "response_type": "code", "client_id": self.target.client_id, "redirect_uri": self.target.redirect_uri,
            "scope": SCOPE, "state": state, "nonce": nonce,
            "code_challenge": challenge, "code_challenge_method": "S256",
        })
        return f"{self.target.endpoint('authorization_endpoint')}?{query}"

    def _callback_params(self, response: httpx.Response, state: str) -> dict:
        location = response.headers.get("location", "")
        expect(location.startswith(self.target.redirect_uri), f"authorize went to {location[:200]!r}")
        params = parse_qs(urlsplit(location).query)
        expect("error" not in params, f"authorize error {params.get('error')} {params.get('error_description')}")
        expect(params.get("state") == [state], "state does not match")
        expect("code" in params, "no code in the redirect")
        return params

    async def sso_flow(self, rec: Recorder) -> dict:
        state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        verifier, challenge = pkce_pair()
        auth = await timed(rec, "authorize", self.http.get(self._authorize_url(state, nonce, challenge)))
        expect(auth.status_code in (302, 303), f"authorize {auth.status_code}: {auth.text[:200]}")
        code = self._callback_params(auth, state)["code"][0]
        tokens = await self._exchange_code(rec, code, verifier)
        claims = b64url_json(tokens["id_token"].split(".")[1])
        expect(claims.get("nonce") == nonce, "ID token nonce does not match")
        expect(claims.get("aud") in (self.target.client_id, [self.target.client_id]), "ID token aud is not the client")
        info = await timed(rec, "userinfo", self.http.get(
            self.target.endpoint("userinfo_endpoint"),
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        ))
        expect(info.status_code == 200, f"userinfo {info.status_code}: {info.text[:200]}")
        expect(info.json().get("sub") == claims["sub"], "userinfo sub differs from the ID token's")
        self.sub = claims["sub"]
        if tokens.get("refresh_token"):
            self.refresh_token = tokens["refresh_token"]
        tokens["_nonce"] = nonce
        return tokens

    async def _exchange_code(self, rec: Recorder, code: str, verifier: str) -> dict:
        response = await timed(rec, "token (code)", self.http.post(
            self.target.endpoint("token_endpoint"), auth=self.auth,
            data={"grant_type": "authorization_code", "code": code,
                  "redirect_uri": self.target.redirect_uri, "code_verifier": verifier},
        ))
        expect(response.status_code == 200, f"token {response.status_code}: {response.text[:200]}")
        tokens = response.json()
        expect("id_token" in tokens and "access_token" in tokens, "token response lacks id_token/access_token")
        return tokens

    async def refresh(self, rec: Recorder) -> None:
        expect(self.refresh_token is not None, "no refresh token was issued")
        response = await timed(rec, "token (refresh)", self.http.post(
            self.target.endpoint("token_endpoint"), auth=self.auth,
            data={"grant_type": "refresh_token", "refresh_token": self.refresh_token},
        ))
        expect(response.status_code == 200, f"refresh {response.status_code}: {response.text[:200]}")
        tokens = response.json()
        expect("access_token" in tokens, "refresh response lacks access_token")
        new = tokens.get("refresh_token")
        expect(new is not None and new != self.refresh_token, "refresh token was not rotated")
        self.refresh_token = new

    async def discovery(self, rec: Recorder) -> None:
        d = await timed(rec, "discovery", self.http.get(f"{self.target.base_url}/.well-known/openid-configuration"))
        expect(d.status_code == 200 and "jwks_uri" in d.json(), f"discovery {d.status_code}")
        j = await timed(rec, "jwks", self.http.get(d.json()["jwks_uri"]))
        expect(j.status_code == 200 and j.json().get("keys"), f"jwks {j.status_code}")

    async def password_login(self, rec: Recorder) -> None:
        """A full sign-in on a fresh browser: the login page, then the form POST."""
        self.http.cookies.clear()
        await self.sign_in(rec)


def verify_id_token(target: Target, id_token: str, nonce: str) -> dict:
    """Once per run: the ID token's signature against the published JWKS, and its claims."""
    from joserfc import jwt
    from joserfc.jwk import KeySet

    jwks = httpx.get(target.discovery["jwks_uri"], timeout=10).json()
    token = jwt.decode(id_token, KeySet.import_key_set(jwks), algorithms=["RS256", "ES256", "PS256", "EdDSA"])
    jwt.JWTClaimsRegistry(
        leeway=120,
        iss={"essential": True, "value": target.discovery["issuer"]},
        aud={"essential": True, "value": target.client_id},
        nonce={"essential": True, "value": nonce},
        sub={"essential": True},
        exp={"essential": True},
    ).validate(token.claims)
    return {"alg": token.header.get("alg"), "kid": token.header.get("kid"), "verified": True}


async def _run_workload(name: str, users: list[VirtualUser], duration: float) -> tuple[Recorder, float]:
    rec = Recorder()
    deadline = time.perf_counter() + duration
    action = {"sso": VirtualUser.sso_flow, "refresh": VirtualUser.refresh,
              "discovery": VirtualUser.discovery, "login": VirtualUser.password_login}[name]

    async def loop(user: VirtualUser) -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                await action(user, rec)
            except (CheckFailed, httpx.HTTPError, ValueError, KeyError) as failure:
                rec.error(f"{type(failure).__name__}: {failure}")
                if name == "refresh":
                    # A lost rotation leaves this user without a usable token: fetch a fresh one.
                    try:
                        await user.sso_flow(Recorder())
                    except Exception:  # noqa: BLE001 - counted above already
                        await asyncio.sleep(0.05)
                continue
            rec.latencies.append(time.perf_counter() - start)

    started = time.perf_counter()
    await asyncio.gather(*(loop(u) for u in users))
    return rec, time.perf_counter() - started


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_tree_cpu(root_pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and every live descendant (Linux /proc).

    Unlike latency, this does not grow when the machine is shared: it is the work each request costs."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        # utime + stime, plus cutime + cstime: the CPU of children it has reaped (ended gunicorn
        # workers, closed PostgreSQL backends), which would otherwise vanish from the total.
        times[int(entry)] = sum(int(x) for x in fields[11:15]) / tick
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return sum(times.get(pid, 0.0) for pid in tree)


class Bench:
    """One target's virtual users: signed in once, then any workload run for a fixed time."""

    def __init__(self, target: Target, concurrency: int, log=print, cpu_probes: dict | None = None):
        self.target, self.concurrency, self.log = target, concurrency, log
        #: name -> callable returning CPU seconds used so far (the server, its database).
        self.cpu_probes = cpu_probes or {}
        self.users: list[VirtualUser] = []
        self.results: dict = {"target": target.name, "concurrency": concurrency, "workloads": {}}

    async def prepare(self, workloads=WORKLOADS) -> None:
        target = self.target
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(f"{target.base_url}/.well-known/openid-configuration")
            target.discovery = response.json() if response.status_code == 200 else {}
        self.users = [VirtualUser(target, *target.users[i % len(target.users)]) for i in range(self.concurrency)]
        setup = Recorder()
        await asyncio.gather(*(u.sign_in(setup) for u in self.users))
        if {"sso", "refresh"} & set(workloads):
            # One SSO flow each: proves the flow works and gives every user its first refresh token.
            first = await asyncio.gather(*(u.sso_flow(setup) for u in self.users))
            self.results["id_token_check"] = verify_id_token(target, first[0]["id_token"], first[0]["_nonce"])

    async def run(self, name: str, duration: float) -> dict:
        self.log(f"  {self.target.name}: {WORKLOAD_TITLES[name]} for {duration:g}s at concurrency {self.concurrency}...")
        cpu_before = _cpu_seconds()
        probes_before = {k: probe() for k, probe in self.cpu_probes.items()}
        load_before = os.getloadavg()[0]
        rec, wall = await _run_workload(name, self.users, duration)
        cpu = _cpu_seconds() - cpu_before
        iterations = max(len(rec.latencies), 1)
        cpu_per_iteration = {k: round(1000 * (probe() - probes_before[k]) / iterations, 2)
                             for k, probe in self.cpu_probes.items()}
        cpu_per_iteration["loadgen"] = round(1000 * cpu / iterations, 2)
        service_ms = sum(v for k, v in cpu_per_iteration.items() if k != "loadgen")
        result = {
            "title": WORKLOAD_TITLES[name],
            "iterations": len(rec.latencies),
            "throughput_per_s": round(len(rec.latencies) / wall, 1),
            **{k: v for k, v in summarise(rec.latencies).items() if k != "count"},
            "errors": rec.errors,
            "error_samples": rec.error_samples,
            "steps": {step: summarise(values) for step, values in rec.steps.items()},
            "sql_per_request": {
                step: {"mean": round(statistics.fmean(v), 2), "max": max(v)} for step, v in rec.sql.items()
            },
            "loadgen_cpu_percent": round(100 * cpu / wall, 1),
            "cpu_ms_per_iteration": cpu_per_iteration,
            # What 2 dedicated cores could serve if CPU were the only limit (server + database CPU only).
            "cpu_bound_capacity_per_s_2_cores": round(2000 / service_ms, 1) if service_ms else None,
            # The machine may be shared: the 1-minute load average says how busy it was besides us.
            "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        }
        self.results["workloads"][name] = result
        return result

    async def close(self) -> None:
        await asyncio.gather(*(u.close() for u in self.users))


async def run_all(target: Target, *, concurrency: int, duration: float, workloads=WORKLOADS,
                  log=print, cpu_probes: dict | None = None) -> dict:
    """Sign every virtual user in, then run each workload for `duration` seconds."""
    bench = Bench(target, concurrency, log, cpu_probes)
    try:
        await bench.prepare(workloads)
        for name in workloads:
            await bench.run(name, duration)
    finally:
        await bench.close()
    bench.results["duration_s"] = duration
    return bench.results


async def run_interleaved(benches: list[Bench], *, duration: float, workloads=WORKLOADS) -> list[dict]:
    """Several targets, workload by workload (A sso, B sso, A refresh, ...): on a shared machine both
    see the same background load, which a whole run of A then a whole run of B would not."""
    try:
        for bench in benches:
            await bench.prepare(workloads)
        for name in workloads:
            for bench in benches:
                await bench.run(name, duration)
    finally:
        for bench in benches:
            await bench.close()
    for bench in benches:
        bench.results["duration_s"] = duration
    return [bench.results for bench in benches]


def argon2_hash_time(time_cost: int = 2, memory_kib: int = 19456, parallelism: int = 1, rounds: int = 10) -> dict:
    """The argon2id verification alone, in this process, with the IdP's parameters."""
    from argon2 import PasswordHasher, Type

    hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID)
    stored = hasher.hash("Correct-Horse-42!")
    times, cpu = [], []
    for _ in range(rounds):
        start, cpu_start = time.perf_counter(), time.process_time()
        hasher.verify(stored, "Correct-Horse-42!")
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    return {"params": {"t": time_cost, "m_kib": memory_kib, "p": parallelism},
            "p50_ms": round(percentile(times, 50) * 1000, 2), "min_ms": round(min(times) * 1000, 2),
            # CPU time does not grow when the machine is shared; wall time does.
            "cpu_p50_ms": round(percentile(cpu, 50) * 1000, 2)}


def format_table(results: dict, markdown: bool = False) -> str:
    rows = [("workload", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "SQL/request", "CPU ms/iteration",
             "loadgen CPU")]
    for name, w in results["workloads"].items():
        sql = ", ".join(f"{step} {v['mean']:g}" for step, v in w["sql_per_request"].items()) or "-"
        cpu = ", ".join(f"{k} {v:g}" for k, v in w.get("cpu_ms_per_iteration", {}).items())
        rows.append((w["title"], f"{w['throughput_per_s']:.1f}", f"{w['p50_ms']:.1f}", f"{w['p95_ms']:.1f}",
                     f"{w['p99_ms']:.1f}", str(w["errors"]), sql, cpu, f"{w['loadgen_cpu_percent']:.0f}%"))
    return render_rows(rows, markdown)


def render_rows(rows: list[tuple], markdown: bool = False) -> str:
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        lines.insert(1, "|" + "|".join("---" for _ in rows[0]) + "|")
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
