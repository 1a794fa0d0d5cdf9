"""Traffic for the fault and two-node tests: people signing in to their school's app and the app
redeeming the code, from several threads at once, with every answer recorded and every write
that got a success answer remembered, so the test can check afterwards that none was lost."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
from sqlalchemy import create_engine, select
from sqlalchemy.pool import NullPool

from tests.conftest import PASSWORD
from tests.infra.test_gunicorn import REDIRECT_URI, post_form

#: The endpoints relying parties call: their answers must be JSON, whatever happened.
PROTOCOL_STEPS = ("token", "userinfo")


@dataclass
class Answer:
    step: str
    #: None when no answer came (connection refused or cut, timeout).
    status: int | None
    retry_after: bool = False
    is_json: bool = False
    at: float = field(default_factory=time.monotonic)


class NoAnswer(Exception):
    """A step got no success answer: the journey stops there (a person would try again later)."""


@dataclass
class Acknowledged:
    """Writes that got a success answer: each must be in the database afterwards."""

    codes: list[str] = field(default_factory=list)  # the redirect with the code came back
    tokens: list[tuple[str, str]] = field(default_factory=list)  # (code, access token): 200 from /token


class Traffic:
    """`journey(site, record, acknowledged)` run over and over by `concurrency` threads until stopped."""

    def __init__(self, site, journey, concurrency: int = 8, **journey_args):
        self.site = site
        self.journey = journey
        self.journey_args = journey_args
        self.concurrency = concurrency
        self.answers: list[Answer] = []
        self.acknowledged = Acknowledged()
        self.completed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def record(self, step: str, response: requests.Response | None) -> requests.Response | None:
        if response is None:
            answer = Answer(step, None)
        else:
            answer = Answer(step, response.status_code, "Retry-After" in response.headers,
                            response.headers.get("Content-Type", "").startswith("application/json"))
        with self._lock:
            self.answers.append(answer)
        return response

    def acknowledge_code(self, code: str) -> None:
        with self._lock:
            self.acknowledged.codes.append(code)

    def acknowledge_token(self, code: str, access_token: str) -> None:
        with self._lock:
            self.acknowledged.tokens.append((code, access_token))

    def _run(self, number: int) -> None:
        while not self._stop.is_set():
            try:
                self.journey(self.site, self, number, **self.journey_args)
            except NoAnswer:
                time.sleep(0.05)  # a refused journey: a moment before the next person tries
                continue
            with self._lock:
                self.completed += 1

    def __enter__(self) -> "Traffic":
        for number in range(self.concurrency):
            thread = threading.Thread(target=self._run, args=(number,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def wait_for_journeys(self, count: int, timeout: float = 30.0) -> None:
        """Until `count` more journeys have completed (the load is really flowing)."""
        target = self.completed + count
        deadline = time.monotonic() + timeout
        while self.completed < target:
            if time.monotonic() > deadline:
                statuses = sorted({(a.step, a.status) for a in self.answers}, key=str)
                raise AssertionError(f"{self.completed} journeys completed in {timeout}s; answers seen: {statuses}")
            time.sleep(0.05)  # polling the load's progress

    def since(self, moment: float) -> list[Answer]:
        with self._lock:
            return [answer for answer in self.answers if answer.at >= moment]


def _send(traffic: Traffic, step: str, call, ok=(200, 302)) -> requests.Response:
    try:
        response = call()
    except requests.RequestException:
        traffic.record(step, None)
        raise NoAnswer(step) from None
    traffic.record(step, response)
    if response.status_code not in ok:
        raise NoAnswer(step)
    return response


def sign_in_journey(site, traffic: Traffic, number: int, *, seeded: dict, email: str = "teacher@oakwood.example",
                    http: requests.Session | None = None) -> dict:
    """A teacher opens the school's app, is sent to the login page, signs in, comes back with a
    code, and the app redeems it and asks for userinfo; the token response. Query strings carry
    PKCE and state, which no log line may show. With the `http` of a browser already signed in,
    the login page is skipped, as it is for that person."""
    http = http or site.session(str(number))
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {"response_type": "code", "client_id": seeded["client_id"], "redirect_uri": REDIRECT_URI,
              "scope": "openid email profile", "state": secrets.token_urlsafe(12), "nonce": secrets.token_urlsafe(12),
              "code_challenge": challenge, "code_challenge_method": "S256"}
    answer = _send(traffic, "authorize", lambda: http.get(site.url("/authorize"), params=params,
                                                          allow_redirects=False, timeout=10))
    if not answer.headers["Location"].startswith(REDIRECT_URI):
        page = _send(traffic, "login-page", lambda: http.get(urljoin(answer.url, answer.headers["Location"]),
                                                             timeout=10), ok=(200,))
        back = _send(traffic, "login", lambda: post_form(http, page, {"email": email, "password": PASSWORD},
                                                         timeout=10), ok=(302,))
        answer = _send(traffic, "authorize", lambda: http.get(urljoin(back.url, back.headers["Location"]),
                                                              allow_redirects=False, timeout=10), ok=(302,))
    location = answer.headers["Location"]
    if not location.startswith(REDIRECT_URI):
        raise NoAnswer("authorize")
    code = parse_qs(urlsplit(location).query)["code"][0]
    traffic.acknowledge_code(code)
    tokens = _send(traffic, "token", lambda: http.post(site.url("/token"), data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier,
    }, auth=(seeded["client_id"], seeded["client_secret"]), timeout=10), ok=(200,))
    access_token = tokens.json()["access_token"]
    traffic.acknowledge_token(code, access_token)
    _send(traffic, "userinfo", lambda: http.get(site.url("/userinfo"),
                                                headers={"Authorization": f"Bearer {access_token}"}, timeout=10),
          ok=(200,))
    return tokens.json()


def one_sign_in(site, seeded: dict, http: requests.Session | None = None) -> dict:
    """One sign_in_journey on its own: the token response, or AssertionError naming the step that failed."""
    recorder = Traffic(site, sign_in_journey)
    try:
        return sign_in_journey(site, recorder, 0, seeded=seeded, http=http)
    except NoAnswer as failed:
        raise AssertionError(f"the sign-in failed at {failed}: {recorder.answers}") from None


def lost_writes(database_url: str, acknowledged: Acknowledged) -> list[str]:
    """What got a success answer but is not in the database (empty when nothing was lost)."""
    from idp.models import AuthorizationCode, Token
    from idp.models.base import hash_secret

    engine = create_engine(database_url, poolclass=NullPool)
    lost = []
    try:
        with engine.connect() as conn:
            consumed = dict(conn.execute(select(AuthorizationCode.code_hash, AuthorizationCode.consumed_at)).all())
            tokens = set(conn.execute(select(Token.access_token_hash)).scalars())
    finally:
        engine.dispose()
    for code in acknowledged.codes:
        if hash_secret(code) not in consumed:
            lost.append("an issued code")
    for code, access_token in acknowledged.tokens:
        if hash_secret(access_token) not in tokens:
            lost.append("an issued token")
        if consumed.get(hash_secret(code)) is None:
            lost.append("a code's consumption")
    return lost
