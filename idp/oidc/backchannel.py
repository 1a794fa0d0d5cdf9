"""OpenID Connect Back-Channel Logout 1.0: telling relying parties that a sign-in ended.

When browser sign-ins end (accounts.sessions.end), `queue_logout_notices` writes one notice per
client that received tokens in them and registered a `backchannel_logout_uri`. A worker
(`idp worker`, any number of them on any nodes) takes due notices with `deliver_due`: each is
leased with a conditional UPDATE (PostgreSQL's FOR UPDATE SKIP LOCKED keeps workers off each
other's rows), a logout token is signed (section 2.4) and POSTed as a form (section 2.5) with a
short timeout and no redirects; a failure is retried with backoff until GIVE_UP_AFTER. The person
whose sign-in ended never waits for any of it."""

from __future__ import annotations

import ipaddress
import logging
import socket
import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from flask import current_app
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from joserfc import jwt
from sqlalchemy import and_, delete, func, or_, select, update

from .. import audit, clock
from ..extensions import db
from ..models import AuthorizationCode, Client, LogoutNotice, Tenant, Token
from . import keys

log = logging.getLogger(__name__)

EVENT = "http://schemas.openid.net/event/backchannel-logout"
#: Seconds: connecting, then waiting for the relying party's answer.
CONNECT_TIMEOUT, READ_TIMEOUT = 3, 5
#: A notice still undelivered this long after the sign-in ended is given up.
GIVE_UP_AFTER = timedelta(hours=1)
#: Waits between attempts: 10 s, 20 s, 40 s ... at most 10 minutes.
FIRST_RETRY, LONGEST_RETRY = 10, 600
#: A worker holds a notice it took this long before another may take it (a worker that died).
LEASE = timedelta(seconds=60)
#: How long a logout token is valid for the relying party (it checks iat/exp).
TOKEN_LIFETIME = 120


def queue_logout_notices(rows, *, tenant: Tenant | None = None) -> list[Client]:
    """Notices for the sign-ins `rows` are ending: one per client (of `tenant` only, when given)
    that received tokens in one of them and has a back-channel logout URI. Codes those sign-ins
    were given and not yet exchanged are discarded. Returns the clients told."""
    sids = {row.sid: row for row in rows}
    if not sids:
        return []
    code_filter = [AuthorizationCode.sid.in_(sids), AuthorizationCode.consumed_at.is_(None)]
    if tenant is not None:
        code_filter.append(AuthorizationCode.tenant_id == tenant.id)
    db.session.execute(delete(AuthorizationCode).where(*code_filter).execution_options(synchronize_session=False))
    pairs = (
        select(Token.sid, Token.client_id)
        .join(Client, Client.client_id == Token.client_id)
        .where(Token.sid.in_(sids), Client.backchannel_logout_uri.is_not(None))
        .distinct()
    )
    if tenant is not None:
        pairs = pairs.where(Client.tenant_id == tenant.id)
    pairs = db.session.execute(pairs).all()
    clients = {c.client_id: c for c in db.session.scalars(
        select(Client).where(Client.client_id.in_({client_id for _, client_id in pairs})))} if pairs else {}
    now = clock.now()
    told: dict[str, Client] = {}
    for sid, client_id in pairs:
        client = clients[client_id]
        db.session.add(LogoutNotice(client_id=client.client_id, tenant_id=client.tenant_id, sid=sid,
                                    sub=sids[sid].account.sub, created_at=now, next_attempt_at=now,
                                    give_up_at=now + GIVE_UP_AFTER, attempts=0))
        told[client.client_id] = client
    return sorted(told.values(), key=lambda c: c.name.lower())


def logout_token(notice: LogoutNotice) -> str:
    """The signed logout token (section 2.4): iss, aud, iat, exp, jti, events, sid and sub; never a
    nonce. `typ` logout+jwt (section 2.4, RFC 8725 3.11) keeps it from passing for an ID token."""
    kid, key = keys.current_signing_key()
    now = clock.timestamp()
    claims = {
        "iss": current_app.config["SETTINGS"].issuer,
        "aud": notice.client_id,
        "iat": now,
        "exp": now + TOKEN_LIFETIME,
        "jti": uuid.uuid4().hex,
        "sub": notice.sub,
        "sid": notice.sid,
        "events": {EVENT: {}},
    }
    return jwt.encode({"alg": keys.ALG, "typ": "logout+jwt", "kid": kid}, claims, key)


@dataclass
class Outcome:
    delivered: bool
    status: int | None = None
    error: str | None = None


class AddressRefused(Exception):
    """The URI's host is not on the public internet (in production a tenant's admin must not point
    the IdP at its own network)."""


def _public_address(uri: str) -> str | None:
    """In production, the one address the notice goes to: the URI's host resolved once, every
    address it has checked to be public, else AddressRefused. The connection is made to that
    address (`_pinned`), so a name that resolves differently a moment later (DNS rebinding)
    cannot send the request into the IdP's own network. None outside production."""
    if not current_app.config["SETTINGS"].is_production:
        return None
    host = urlsplit(uri).hostname or ""
    try:
        addresses = [info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)]
    except OSError as error:
        raise AddressRefused(f"cannot resolve {host}: {error.strerror or error}") from None
    if not addresses:
        raise AddressRefused(f"cannot resolve {host}")
    for address in addresses:
        if not _is_public(ipaddress.ip_address(address.split("%", 1)[0])):
            raise AddressRefused(f"{host} resolves to a non-public address")
    return addresses[0]


#: NAT64's well-known prefix (RFC 6052): the IPv4 address in its last 32 bits is what it reaches.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: IPv6 ranges that carry an IPv4 address a gateway may translate anywhere, even into a private
#: network: local-use NAT64 (RFC 8215), SIIT's translated form, the deprecated IPv4-compatible form.
_NEVER = [ipaddress.ip_network(n) for n in ("64:ff9b:1::/48", "::ffff:0:0:0/96", "::/96")]


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether `ip` is on the public internet, judging IPv6 forms that carry an IPv4 address
    (mapped, 6to4, NAT64) by the IPv4 address they reach."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour
        if inner is None and ip in _NAT64:
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None:
            return inner.is_global
        if any(ip in network for network in _NEVER):
            return False
    return ip.is_global


def _pinned(address: str) -> requests.Session:
    """A session whose connections all go to `address`, whatever the URI's host resolves to now;
    the Host header, TLS server name and certificate check still use the URI's host. No proxies
    from the environment (the address checked is the one connected to)."""

    def pin(connection_class):
        class Pinned(connection_class):
            def _new_conn(self):
                self._dns_host, host = address, self._dns_host
                try:
                    return super()._new_conn()
                finally:
                    self._dns_host = host

        return Pinned

    class Adapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {
                "http": type("PinnedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": pin(HTTPConnection)}),
                "https": type("PinnedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": pin(HTTPSConnection)}),
            }

    pinned = requests.Session()
    pinned.trust_env = False
    for scheme in ("http://", "https://"):
        pinned.mount(scheme, Adapter())
    return pinned


def post_logout_token(uri: str, token: str) -> Outcome:
    """POST the token (section 2.5). 200 (or 204, which frameworks send for an empty 200) is done."""
    try:
        address = _public_address(uri)
        with (_pinned(address) if address else requests.Session()) as http:
            response = http.post(uri, data={"logout_token": token}, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                                 allow_redirects=False, headers={"Cache-Control": "no-store"})
    except AddressRefused as refused:
        return Outcome(False, None, str(refused))
    except requests.RequestException as error:
        return Outcome(False, None, type(error).__name__)
    if response.status_code in (200, 204):
        return Outcome(True, response.status_code)
    return Outcome(False, response.status_code, f"HTTP {response.status_code}")


def _due(now, limit: int) -> list[int]:
    """Ids of notices to take now, locked against other workers where the database can."""
    query = (
        select(LogoutNotice.id)
        .where(LogoutNotice.delivered_at.is_(None), LogoutNotice.failed_at.is_(None),
               LogoutNotice.next_attempt_at <= now,
               or_(LogoutNotice.leased_until.is_(None), LogoutNotice.leased_until < now))
        .order_by(LogoutNotice.next_attempt_at, LogoutNotice.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(db.session.scalars(query))


def _take(limit: int) -> list[LogoutNotice]:
    """Lease up to `limit` due notices to this worker (its own short transaction)."""
    now = clock.now()
    ids = _due(now, limit)
    taken = []
    for notice_id in ids:
        won = db.session.execute(
            update(LogoutNotice)
            .where(LogoutNotice.id == notice_id, LogoutNotice.delivered_at.is_(None),
                   or_(LogoutNotice.leased_until.is_(None), LogoutNotice.leased_until < now))
            .values(leased_until=now + LEASE, attempts=LogoutNotice.attempts + 1)
            .execution_options(synchronize_session=False)
        ).rowcount
        if won:
            taken.append(notice_id)
    db.session.commit()
    return list(db.session.scalars(select(LogoutNotice).where(LogoutNotice.id.in_(taken)))) if taken else []


def deliver_due(limit: int = 20) -> int:
    """One round of the worker: take due notices, send them, record each outcome (a unit of work
    per notice). Returns how many were delivered."""
    delivered = 0
    for notice in _take(limit):
        client = db.session.scalars(select(Client).where(Client.client_id == notice.client_id)).first()
        now = clock.now()
        if client is None or not client.backchannel_logout_uri:
            notice.failed_at, notice.last_error = now, "the client or its back-channel logout URI is gone"
            db.session.commit()
            continue
        outcome = post_logout_token(client.backchannel_logout_uri, logout_token(notice))
        notice.last_status, notice.leased_until = outcome.status, None
        if outcome.delivered:
            notice.delivered_at, notice.last_error = clock.now(), None
            delivered += 1
        else:
            notice.last_error = (outcome.error or "failed")[:200]
            wait = min(FIRST_RETRY * 2 ** max(notice.attempts - 1, 0), LONGEST_RETRY)
            notice.next_attempt_at = clock.now() + timedelta(seconds=wait)
            if notice.next_attempt_at >= notice.give_up_at:
                notice.failed_at = clock.now()
                audit.record(audit.LOGOUT_NOTICE_FAILED, tenant=notice.tenant_id, outcome="failure",
                             client_id=notice.client_id, attempts=notice.attempts, error=notice.last_error)
                log.warning("back-channel logout to client %s given up after %d attempts: %s",
                            notice.client_id, notice.attempts, notice.last_error)
        db.session.commit()
    return delivered


@dataclass
class DeliveryStatus:
    """What a school's admin sees of one client's back-channel logout (Admin > Applications)."""

    last_delivered_at: object | None
    waiting: int
    failed_recently: int
    last_error: str | None


def delivery_status(tenant: Tenant) -> dict[str, DeliveryStatus]:
    """Per client of `tenant` with notices: last delivery, notices waiting, failures in the last 7 days
    and the last error (one statement)."""
    week_ago = clock.now() - timedelta(days=7)
    rows = db.session.execute(
        select(
            LogoutNotice.client_id,
            func.max(LogoutNotice.delivered_at),
            func.count().filter(and_(LogoutNotice.delivered_at.is_(None), LogoutNotice.failed_at.is_(None))),
            func.count().filter(LogoutNotice.failed_at >= week_ago),
        )
        .where(LogoutNotice.tenant_id == tenant.id)
        .group_by(LogoutNotice.client_id)
    ).all()
    errors = dict(db.session.execute(
        select(LogoutNotice.client_id, LogoutNotice.last_error)
        .where(LogoutNotice.tenant_id == tenant.id, LogoutNotice.last_error.is_not(None))
        .order_by(LogoutNotice.id)
    ).all())
    return {client_id: DeliveryStatus(last, waiting, failed, errors.get(client_id))
            for client_id, last, waiting, failed in rows}


def forget_delivered(older_than: timedelta = timedelta(days=30)) -> int:
    """Old delivered or given-up notices are of no more use (the worker's chore)."""
    cutoff = clock.now() - older_than
    return db.session.execute(
        delete(LogoutNotice).where(LogoutNotice.created_at < cutoff,
                                   or_(LogoutNotice.delivered_at.is_not(None), LogoutNotice.failed_at.is_not(None)))
    ).rowcount or 0
