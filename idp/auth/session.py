"""The browser's side of a sign-in, and the one gate every page passes.

The sign-in itself is a row the server keeps (idp.accounts.sessions); Flask's signed cookie holds
only random references to it (`sid`, and `pending` while a second step is awaited) and a hint of
when the row was last marked seen. This module owns that cookie: starting, refreshing, stepping up
and ending this browser's sign-in, the half-done sign-in between a correct password and its code,
`guard()` (who is signed in, at which school, and where to send them when they are not), and
`where_to_meet()` (the page that meets a second-factor requirement)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import abort, g, redirect, request, session, url_for

from .. import clock
from ..accounts import directory, mfa, sessions
from ..extensions import login_manager
from ..models import Account, BrowserSession, Tenant
from ..models.base import hash_secret, new_secret
from ..web import client_ip

REFERENCE_KEY = "sid"
PENDING_KEY = "pending"
#: A random secret of this browser's cookie: WebAuthn challenges are bound to its hash.
WEBAUTHN_KEY = "wa"
#: When this browser last had its row marked seen (a hint only: the row's own value decides).
SEEN_KEY = "seen"


@dataclass(frozen=True)
class SignIn:
    """This browser's live sign-in: its row (with the account and memberships loaded)."""

    row: BrowserSession

    @property
    def account(self) -> Account:
        return self.row.account

    @property
    def sid(self) -> str:
        return self.row.sid

    @property
    def token_hash(self) -> str:
        return self.row.token_hash

    @property
    def auth_time(self) -> int:
        return self.row.auth_time

    @property
    def amr(self) -> tuple[str, ...]:
        return tuple(self.row.amr or ())

    @property
    def has_second_factor(self) -> bool:
        return bool(self.row.second_factor)

    def confirmed_within(self, requirement: str, seconds: int) -> bool:
        """Whether this sign-in met `requirement` ("verify": any second factor, "verify_key": a
        security key or passkey) in the last `seconds` (a fresh confirmation)."""
        given = self.row.key_at if requirement == "verify_key" else self.row.second_factor_at
        return given is not None and clock.timestamp() - given <= seconds


@dataclass(frozen=True)
class ClaimedSignIn:
    """What this browser's cookie claims, unchecked: the statement that acts on it joins the row and
    checks it there (see oidc.tokens.save_code)."""

    token_hash: str


def claimed_sign_in() -> ClaimedSignIn | None:
    """The cookie's reference, without a database round trip, or None."""
    token = session.get(REFERENCE_KEY)
    if not isinstance(token, str) or not token or len(token) > 100:
        return None
    return ClaimedSignIn(hash_secret(token))


def keep_alive(claimed: ClaimedSignIn) -> None:
    """Mark the sign-in seen, at most every SEEN_EVERY seconds (the idle timeout counts in those
    steps): most requests need no statement for it."""
    now = clock.timestamp()
    seen = session.get(SEEN_KEY)
    if isinstance(seen, int) and 0 <= now - seen < sessions.SEEN_EVERY:
        return
    sessions.mark_seen(claimed.token_hash)
    session[SEEN_KEY] = now


def browser_sign_in() -> SignIn | None:
    """This browser's sign-in whatever its age (to end it, not to use it)."""
    row = sessions.find(session.get(REFERENCE_KEY))
    return SignIn(row) if row is not None else None


def current_sign_in(tenant: Tenant | None = None) -> SignIn | None:
    """This browser's live sign-in, as `tenant`'s rules see it (lifetime, idle timeout, a school's
    "end sign-ins"), or None. One statement, remembered for the rest of the request."""
    cache = g.setdefault("idp_sign_ins", {})
    key = tenant.id if tenant is not None else None
    if key not in cache:
        row = sessions.find(session.get(REFERENCE_KEY))
        if row is not None and sessions.allowed_at(row, tenant):
            keep_alive(ClaimedSignIn(row.token_hash))
            cache[key] = SignIn(row)
        else:
            cache[key] = None
    return cache[key]


@login_manager.request_loader
def _current_account(_request) -> Account | None:
    """Flask-Login's `current_user`: the account of this browser's live sign-in."""
    signed_in = current_sign_in()
    return signed_in.account if signed_in is not None else None


def _describe_device() -> str:
    return describe_device(request.headers.get("User-Agent", ""))


def describe_device(user_agent: str) -> str:
    """A person's words for a browser: "Edge on Windows", "Safari on iPhone"."""
    ua = user_agent or ""
    browser = next((name for token, name in (
        ("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
        ("Chromium/", "Chromium"), ("Safari/", "Safari"),
    ) if token in ua), "A browser")
    system = next((name for token, name in (
        ("iPhone", "iPhone"), ("iPad", "iPad"), ("Android", "Android"), ("CrOS", "ChromeOS"),
        ("Windows", "Windows"), ("Mac OS X", "macOS"), ("Linux", "Linux"),
    ) if token in ua), None)
    return f"{browser} on {system}" if system else browser


def _remember(token: str, *, key: str = REFERENCE_KEY) -> None:
    session[key] = token
    session[SEEN_KEY] = clock.timestamp()
    g.pop("idp_sign_ins", None)


def _fresh_cookie() -> None:
    """A new sign-in starts a new cookie: nothing a previous visitor left in it (fixation), and a new
    CSRF token."""
    flashes = session.get("_flashes")
    session.clear()
    if flashes:
        session["_flashes"] = flashes


def sign_in(account: Account, *, tenant: Tenant | None, provider: str, amr: list[str]) -> SignIn:
    """A successful authentication in this browser. The same person authenticating again keeps
    their sign-in (its sid, so the applications they use stay with it) with a new auth_time; anyone
    else's sign-in in this browser ends first."""
    amr = list(dict.fromkeys(amr))
    acr, second_factor = mfa.acr_for(amr), mfa.is_second_factor(amr)
    previous = sessions.find(session.get(REFERENCE_KEY))
    if previous is not None and previous.account_id == account.id:
        token = sessions.authenticated_again(previous, amr=amr, acr=acr, second_factor=second_factor)
        _fresh_cookie()
        _remember(token)
        return SignIn(previous)
    _end_this_browser(initiated_by="another sign-in in this browser")
    row, token = sessions.start(account, tenant=tenant, provider=provider, amr=amr, acr=acr,
                                second_factor=second_factor, device=_describe_device(), ip=client_ip())
    _fresh_cookie()
    _remember(token)
    return SignIn(row)


def add_factors(signed_in: SignIn, amr: list[str]) -> None:
    """Step-up within the sign-in: auth_time stays (OIDC Core 2)."""
    merged = list(dict.fromkeys([*signed_in.amr, *amr]))
    sessions.add_factors(signed_in.row, amr=amr, acr=mfa.acr_for(merged))


# --------------------------------------------------------------------------- the second step


def begin_second_step(account: Account, *, tenant: Tenant | None, provider: str, next_url: str | None) -> None:
    """The password was right and a code must follow: a half-done sign-in that signs nobody in.
    Whoever is signed in on this browser stays so until the code is right."""
    _drop_pending()
    row, token = sessions.start(account, tenant=tenant, provider=provider, amr=["pwd"], acr=mfa.ACR_PASSWORD,
                                second_factor=False, device=_describe_device(), ip=client_ip(), pending=True,
                                next_url=next_url)
    session[PENDING_KEY] = token


def pending_second_step(tenant: Tenant | None) -> BrowserSession | None:
    """The half-done sign-in waiting for its code at `tenant` (None: the platform's sign-in), or None
    (none, expired, begun elsewhere, or the account has since lost its place there)."""
    row = sessions.find_pending(session.get(PENDING_KEY))
    if row is None or row.tenant_id != (tenant.id if tenant is not None else None):
        return None
    if tenant is not None and directory.active_membership(row.account, tenant) is None:
        return None
    if tenant is None and not directory.may_sign_in(row.account, None):
        return None
    return row


def finish_second_step(pending: BrowserSession, amr: list[str]) -> SignIn:
    """The code was right: the half-done sign-in becomes this browser's sign-in (replacing another
    person's; the same person's earlier sign-in is kept and refreshed instead)."""
    amr = list(dict.fromkeys(["pwd", *amr]))
    session.pop(PENDING_KEY, None)
    previous = sessions.find(session.get(REFERENCE_KEY))
    if previous is not None and previous.account_id == pending.account_id:
        sessions.end([pending], reason="merged into the live sign-in")
        token = sessions.authenticated_again(previous, amr=amr, acr=mfa.acr_for(amr), second_factor=True)
        row = previous
    else:
        _end_this_browser(initiated_by="another sign-in in this browser")
        token = sessions.finish_second_step(pending, amr=amr, acr=mfa.acr_for(amr))
        row = pending
    _fresh_cookie()
    _remember(token)
    return SignIn(row)


def _drop_pending() -> None:
    pending = sessions.find_pending(session.pop(PENDING_KEY, None))
    if pending is not None:
        sessions.end([pending], reason="abandoned second step")


# --------------------------------------------------------------------------- ending


def _end_this_browser(*, initiated_by: str, client=None) -> BrowserSession | None:
    row = sessions.find(session.get(REFERENCE_KEY))
    if row is None:
        return None
    sessions.record_sign_out(row, ip=client_ip(), initiated_by=initiated_by,
                             client_id=client.client_id if client is not None else None,
                             tenant=client.tenant if client is not None else None)
    account, tenant_id = row.account, row.tenant_id
    notified = sessions.end([row], reason=initiated_by)
    g.pop("idp_sign_ins", None)
    return Ended(account=account, tenant_id=tenant_id, notified=notified)


@dataclass(frozen=True)
class Ended:
    """A sign-out: whose, where it began, and the applications told (back-channel logout)."""

    account: Account
    tenant_id: int | None
    notified: list


def sign_out(*, initiated_by: str = "the person", client=None) -> Ended | None:
    """End this browser's sign-in (and any half-done one): the server forgets it, so a copy of the
    cookie is worth nothing, and every application it opened is told (back-channel logout)."""
    _drop_pending()
    ended = _end_this_browser(initiated_by=initiated_by, client=client)
    flashes = session.get("_flashes")
    session.clear()
    if flashes:
        session["_flashes"] = flashes
    return ended


# --------------------------------------------------------------------------- the gate


def login_url(tenant: Tenant | None, next_url: str | None, **extra) -> str:
    """The login page to send someone to: their school's, or the platform's sign-in."""
    if tenant is not None:
        return url_for("auth.login", slug=tenant.slug, next=next_url, **extra)
    return url_for("auth.platform_login", next=next_url, **extra)


def webauthn_binding() -> str:
    """This browser's binding secret for WebAuthn challenges (made on first use): a challenge
    handed to one browser cannot be answered from another."""
    binding = session.get(WEBAUTHN_KEY)
    if not isinstance(binding, str) or len(binding) != 43:
        binding = new_secret()
        session[WEBAUTHN_KEY] = binding
    return binding


def where_to_meet(requirement: str, tenant: Tenant | None, next_url: str | None, *, again: bool = False) -> str:
    """The page that meets a second-factor requirement ("verify": the code page, "enrol": set one
    up; "verify_key" / "enrol_key": the same for a security key or passkey, the phishing-resistant
    level). `again` asks for a code even where this sign-in already gave one (a fresh confirmation)."""
    key = 1 if requirement in ("verify_key", "enrol_key") else None
    if requirement in ("verify", "verify_key"):
        if tenant is None:
            return url_for("auth.platform_second_factor", next=next_url, again=1 if again else None, key=key)
        return url_for("auth.second_factor", slug=tenant.slug, next=next_url, again=1 if again else None, key=key)
    return url_for("account_settings.security", tenant=tenant.slug if tenant is not None else None, next=next_url,
                   key=key)


def here() -> str:
    """This page, to come back to after signing in (a GET's path and query)."""
    return request.full_path.rstrip("?")


def guard(tenant: Tenant | None = None, *, member: bool = True, second_factor_policy: bool = False) -> SignIn:
    """The one gate every signed-in page passes: the live sign-in (by `tenant`'s rules), or the
    request ends with a redirect to the page that fixes it:

    - nobody signed in (or the sign-in expired, was ended or idled out): the login page, then back;
    - `member`: signed in, but not a usable member of `tenant`: its login page, explaining why;
    - `second_factor_policy`: the school asks for a second factor this sign-in has not given: the
      code page, or enrolment."""
    signed_in = current_sign_in(tenant)
    if signed_in is None:
        abort(redirect(login_url(tenant, here() if request.method == "GET" else None)))
    if tenant is not None and member:
        membership = directory.active_membership(signed_in.account, tenant)
        if membership is None:
            abort(redirect(login_url(tenant, None, reason="not_member")))
        if second_factor_policy:
            requirement = mfa.sign_in_requirement(signed_in.account, membership, signed_in.amr)
            if requirement is not None:
                abort(redirect(where_to_meet(requirement, tenant, here())))
    return signed_in
