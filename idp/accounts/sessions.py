"""Browser sign-ins as the server keeps them: start, look up, keep alive, list and end.

A sign-in is a `BrowserSession` row; the browser's cookie holds only a random reference whose
SHA-256 is the row's `token_hash`. How long a sign-in may open a school's applications is that
school's rule (Tenant.session_max_age after the person authenticated, session_idle_timeout unused);
an SSO sign-in meets each school's rule as it reaches that school's applications.

Ending sign-ins has one way, `end()`: every client that received tokens in them and registered a
back-channel logout URI gets a logout notice, their tokens without offline_access end (OpenID
Connect Back-Channel Logout 1.0, 2.7), and the rows go, so a copied cookie dies at once. Nothing here
reads the request; idp.auth.session keeps the cookie."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import joinedload, undefer

from .. import audit, clock
from ..extensions import db
from ..models import Account, BrowserSession, Membership, Tenant
from ..models.base import hash_secret
from ..models.tenants import DEFAULT_SESSION_IDLE_TIMEOUT, DEFAULT_SESSION_MAX_AGE
from . import mfa

#: How long a correct password waits for its second step.
PENDING_SECONDS = 10 * 60
#: `last_seen` is written at most this often (the idle timeout counts in these steps), so an
#: ordinary authorize stays one statement (see idp.auth.session.keep_alive).
SEEN_EVERY = 60


def _settings():
    return current_app.config["SETTINGS"]


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class Lifetime:
    """A school's rule for sign-ins (seconds)."""

    max_age: int
    idle_timeout: int

    @classmethod
    def of(cls, tenant: Tenant | None) -> "Lifetime":
        if tenant is None:
            return cls(DEFAULT_SESSION_MAX_AGE, DEFAULT_SESSION_IDLE_TIMEOUT)
        return cls(tenant.session_max_age or DEFAULT_SESSION_MAX_AGE,
                   tenant.session_idle_timeout or DEFAULT_SESSION_IDLE_TIMEOUT)

    def allows(self, row: BrowserSession, now: int) -> bool:
        return now - row.auth_time <= self.max_age and now - row.last_seen <= self.idle_timeout


def live_criteria(now: int):
    """SQL true for a finished sign-in that every rule of the Tenant it is checked against (joined
    by the caller) still allows: for statements that decide without loading the row (authorize)."""
    return and_(
        BrowserSession.pending_until.is_(None),
        BrowserSession.auth_time + Tenant.session_max_age >= now,
        BrowserSession.last_seen + Tenant.session_idle_timeout >= now,
        or_(Membership.sign_ins_ended.is_(None), BrowserSession.auth_time > Membership.sign_ins_ended),
    )


# --------------------------------------------------------------------------- starting


def new_reference() -> tuple[str, str]:
    """(the cookie's reference, the hash the row keeps)."""
    token = secrets.token_urlsafe(32)
    return token, hash_secret(token)


def start(account: Account, *, tenant: Tenant | None, provider: str, amr: list[str], acr: str,
          second_factor: bool, device: str, ip: str | None, pending: bool = False,
          next_url: str | None = None) -> tuple[BrowserSession, str]:
    """A new sign-in (or, `pending`, one waiting for its second step). Returns the row and the
    cookie's reference (shown once: only its hash is kept)."""
    now = clock.timestamp()
    token, token_hash = new_reference()
    row = BrowserSession(
        sid=secrets.token_urlsafe(32),
        token_hash=token_hash,
        account_id=account.id,
        tenant_id=tenant.id if tenant is not None else None,
        provider=provider,
        amr=list(amr),
        acr=acr,
        second_factor=second_factor,
        auth_time=now,
        second_factor_at=now if second_factor else None,
        key_at=now if mfa.is_phishing_resistant(amr) else None,
        last_seen=now,
        pending_until=now + PENDING_SECONDS if pending else None,
        next_url=next_url,
        expires_at=clock.now() + timedelta(seconds=_settings().session_ttl),
        created_at=clock.now(),
        device=(device or "")[:100],
        ip=(ip or None) and ip[:64],
    )
    db.session.add(row)
    db.session.flush()
    return row, token


def authenticated_again(row: BrowserSession, *, amr: list[str], acr: str, second_factor: bool) -> str:
    """The same person authenticated again in this browser (prompt=login, max_age, a new password
    or code): the sign-in keeps its `sid` (the applications it opened stay with it) with a new
    auth_time and a new cookie reference (no fixation). Returns the new reference."""
    now = clock.timestamp()
    token, token_hash = new_reference()
    row.token_hash = token_hash
    row.amr, row.acr, row.second_factor = list(amr), acr, second_factor
    row.auth_time = row.last_seen = now
    if second_factor:
        row.second_factor_at = now
    if mfa.is_phishing_resistant(amr):
        row.key_at = now
    row.expires_at = clock.now() + timedelta(seconds=_settings().session_ttl)
    db.session.flush()
    return token


def add_factors(row: BrowserSession, *, amr: list[str], acr: str) -> None:
    """Step-up: a second factor (`amr`, the methods just used) given within the sign-in, which
    reaches `acr`. auth_time stays (OIDC Core 2)."""
    now = clock.timestamp()
    row.amr = list(dict.fromkeys([*row.amr, *amr]))
    row.acr = acr
    row.second_factor = True
    row.second_factor_at = now
    if mfa.is_phishing_resistant(amr):
        row.key_at = now
    db.session.flush()


def finish_second_step(pending: BrowserSession, *, amr: list[str], acr: str) -> str:
    """The second factor was right: the half-done sign-in becomes a sign-in. Returns its new reference."""
    pending.pending_until = None
    pending.next_url = None
    return authenticated_again(pending, amr=amr, acr=acr, second_factor=True)


# --------------------------------------------------------------------------- finding


def _by_reference(token: str | None):
    if not token or not isinstance(token, str) or len(token) > 100:
        return None
    return (
        select(BrowserSession)
        .where(BrowserSession.token_hash == hash_secret(token), BrowserSession.expires_at > clock.now())
        .options(joinedload(BrowserSession.account).joinedload(Account.memberships),
                 joinedload(BrowserSession.account).undefer(Account.mfa_enrolled)
                 .undefer(Account.has_security_key))
    )


def find(token: str | None) -> BrowserSession | None:
    """The finished sign-in a cookie's reference names, with its account (one statement), else None."""
    query = _by_reference(token)
    if query is None:
        return None
    row = db.session.scalars(query.where(BrowserSession.pending_until.is_(None))).unique().first()
    if row is None or row.account.retired:
        return None
    return row


def find_pending(token: str | None) -> BrowserSession | None:
    """The half-done sign-in a cookie's reference names, still within its time, else None."""
    query = _by_reference(token)
    if query is None:
        return None
    row = db.session.scalars(
        query.where(BrowserSession.pending_until >= clock.timestamp())
    ).unique().first()
    if row is None or row.account.retired:
        return None
    return row


def allowed_at(row: BrowserSession, tenant: Tenant | None) -> bool:
    """Whether `tenant`'s rules (or, for the platform's pages, the rules of the school the sign-in
    began at) still let this sign-in in, and the school has not ended the member's sign-ins."""
    now = clock.timestamp()
    rules_of = tenant if tenant is not None else row.tenant
    if not Lifetime.of(rules_of).allows(row, now):
        return False
    if tenant is not None:
        membership = row.account.membership_in(tenant.id)
        if membership is not None and membership.sign_ins_ended is not None:
            return row.auth_time > membership.sign_ins_ended
    return True


def mark_seen(token_hash: str) -> None:
    """The sign-in was used just now (written at most every SEEN_EVERY seconds)."""
    now = clock.timestamp()
    db.session.execute(
        update(BrowserSession)
        .where(BrowserSession.token_hash == token_hash, BrowserSession.last_seen < now)
        .values(last_seen=now)
        .execution_options(synchronize_session=False)
    )


def seen_by_refresh(sid: str, last_seen: int) -> None:
    """An application refreshed tokens of this sign-in: the person is still at work in it, so its
    idle time starts again (at most one write a minute, as for the browser's own requests)."""
    now = clock.timestamp()
    if now - last_seen < SEEN_EVERY:
        return
    db.session.execute(
        update(BrowserSession)
        .where(BrowserSession.sid == sid, BrowserSession.last_seen < now)
        .values(last_seen=now)
        .execution_options(synchronize_session=False)
    )


def of_account(account: Account) -> list[BrowserSession]:
    """The account's sign-ins, most recently used first (Account settings > Where you're signed in)."""
    return list(db.session.scalars(
        select(BrowserSession)
        .where(BrowserSession.account_id == account.id, BrowserSession.pending_until.is_(None),
               BrowserSession.expires_at > clock.now())
        .options(joinedload(BrowserSession.tenant))
        .order_by(BrowserSession.last_seen.desc(), BrowserSession.id.desc())
    ))


# --------------------------------------------------------------------------- ending


def end(rows: list[BrowserSession], *, reason: str) -> list:
    """End these sign-ins: logout notices to the clients that received tokens in them, their tokens
    without offline_access revoked, and the rows deleted. Returns the clients told."""
    from ..oidc import backchannel, tokens

    if not rows:
        return []
    queued = backchannel.queue_logout_notices(rows)
    for row in rows:
        tokens.revoke(sid=row.sid, offline=False)
    db.session.execute(delete(BrowserSession).where(BrowserSession.id.in_([row.id for row in rows]))
                       .execution_options(synchronize_session=False))
    for row in rows:
        if row in db.session:
            db.session.expunge(row)
    db.session.flush()
    return queued


def end_of_account(account: Account, *, reason: str, keep: BrowserSession | None = None) -> list:
    """End every sign-in of the account (half-done ones too), or every one but `keep`."""
    query = select(BrowserSession).where(BrowserSession.account_id == account.id)
    if keep is not None:
        query = query.where(BrowserSession.id != keep.id)
    return end(list(db.session.scalars(query)), reason=reason)


def end_one(account: Account, session_id, *, ip: str | None) -> BrowserSession | None:
    """The person signs one of their own browsers out ("Where you're signed in"); another
    account's sign-in is simply not found."""
    row = db.session.scalars(
        select(BrowserSession).where(BrowserSession.id == session_id, BrowserSession.account_id == account.id)
    ).first()
    if row is None:
        return None
    audit.record(audit.SESSION_ENDED, tenant=row.tenant_id, actor=account, subject=account, ip=ip,
                 device=row.device, which="one")
    sid = row.sid
    end([row], reason="signed out by the person")
    return _Ended(sid)


@dataclass(frozen=True)
class _Ended:
    sid: str


def end_at_tenant(account: Account, tenant: Tenant, *, reason: str) -> list:
    """A school ends a member's sign-ins at its applications, leaving their other schools' alone:
    logout notices to its clients, and the member's browser sign-ins from before now no longer open
    its applications (the person signs in again there). The caller revokes the tokens."""
    from ..oidc import backchannel

    membership = account.membership_in(tenant.id)
    if membership is not None:
        membership.sign_ins_ended = clock.timestamp()
    rows = list(db.session.scalars(
        select(BrowserSession).where(BrowserSession.account_id == account.id,
                                     BrowserSession.pending_until.is_(None))
    ))
    queued = backchannel.queue_logout_notices(rows, tenant=tenant)
    db.session.flush()
    return queued


def clear_expired() -> int:
    """Rows past their longest life, and half-done sign-ins past their time (the worker's chore)."""
    now = clock.now()
    result = db.session.execute(
        delete(BrowserSession)
        .where(or_(BrowserSession.expires_at <= now, BrowserSession.pending_until < clock.timestamp()))
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def record_sign_out(row: BrowserSession, *, ip: str | None, initiated_by: str, client_id: str | None = None,
                    tenant: Tenant | None = None) -> None:
    """The audit event of a sign-out, in the signed-out person's own school: `tenant` when they are a
    member there, else the school the sign-in began at."""
    account = row.account
    where = tenant if tenant is not None and account.membership_in(tenant.id) is not None else row.tenant_id
    audit.record(audit.LOGOUT, tenant=where, actor=account, subject=account, ip=ip, initiated_by=initiated_by,
                 client_id=client_id)
