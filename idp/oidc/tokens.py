"""Authorization codes and tokens at rest: stored as SHA-256 hashes, consumed
(never deleted) and revoked by family.

Consuming a code or rotating a refresh token is one conditional UPDATE
(`... WHERE consumed_at IS NULL`) whose row count decides the winner, so two
concurrent redemptions get exactly one success on SQLite and PostgreSQL alike."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import timedelta

from authlib.oauth2.rfc6749.util import scope_to_list
from sqlalchemy import Integer, and_, bindparam, insert, or_, select, update
from sqlalchemy.orm import joinedload

from .. import audit, clock
from ..extensions import db
from ..accounts import mfa, sessions
from ..models import Account, AuthorizationCode, BrowserSession, Membership, Tenant, Token
from ..models.base import hash_secret
from ..transactions import commit_now
from . import rows


# Statements on the hot paths (authorize, token, refresh, userinfo) are built once, here and in
# rows.py, with bound parameters: building a select with its joins per request cost more CPU than
# running it. Writes go to the session's connection as Core statements (no unit of work, no identity
# map); the code and access token are read as plain rows (rows.py) with their account and its
# membership of their school, in one statement each.
_CODES = AuthorizationCode.__table__
_TOKENS = Token.__table__


def _with_account(entity):
    return select(entity).options(joinedload(entity.account).joinedload(Account.memberships))


def _tokens(*where):
    return _with_account(Token).where(*where)


def _execute(statement, parameters: dict):
    """A Core statement on the session's connection, in its transaction."""
    return db.session.connection().execute(statement, parameters)


# --- authorization codes ---------------------------------------------------------------

#: What authorize supplies for a code; the rest comes from the browser sign-in's row.
_CODE_VALUES = ("code_hash", "client_id", "tenant_id", "redirect_uri", "scope", "nonce", "code_challenge",
                "code_challenge_method", "created_at", "expires_at")
_FROM_SIGN_IN = ("account_id", "sid", "auth_time", "amr", "acr")


@functools.cache
def _store_code(criteria_for: tuple | None):
    """INSERT ... SELECT of a code from a live sign-in of a usable member of the client's school.
    `criteria_for` None: no further criteria (the caller has judged the sign-in); `(level,)`: also
    mfa's "nothing more needed" for the requested acr level (None: none requested)."""
    criteria = [] if criteria_for is None else mfa.nothing_more_needed_criteria(*criteria_for)
    live_member = (
        select(*(getattr(BrowserSession, name) for name in _FROM_SIGN_IN),
               *(bindparam(name, type_=_CODES.c[name].type) for name in _CODE_VALUES))
        .join(Account, Account.id == BrowserSession.account_id)
        .join(Membership, and_(Membership.account_id == Account.id,
                               Membership.tenant_id == bindparam("member_of", type_=Integer)))
        .join(Tenant, Tenant.id == Membership.tenant_id)
        .where(
            BrowserSession.token_hash == bindparam("token_hash"),
            BrowserSession.expires_at > bindparam("now", type_=_CODES.c.created_at.type),
            sessions.live_criteria(bindparam("now_timestamp", type_=Integer)),
            Account.retired.is_(False),
            Membership.usable(),
            *criteria,
        )
    )
    return insert(_CODES).from_select([*_FROM_SIGN_IN, *_CODE_VALUES], live_member).returning(_CODES.c.id)


_CONSUME_CODE = (update(_CODES).where(_CODES.c.id == bindparam("row_id"), _CODES.c.consumed_at.is_(None))
                 .values(consumed_at=bindparam("now")))


def save_code(code: str, *, client, token_hash: str, criteria_for: tuple | None, redirect_uri: str | None, scope: str,
              nonce: str | None, code_challenge: str | None, code_challenge_method: str | None,
              ttl: int) -> bool:
    """Store the code, in one INSERT ... SELECT that writes it only if the browser sign-in whose
    cookie reference hashes to `token_hash` is live by the client's school's rules (lifetime, idle
    timeout, not ended there), its account an active member of that school, and (`criteria_for`
    not None) nothing more is needed first (mfa.nothing_more_needed_criteria). The code takes the
    sign-in's sid, auth_time, amr and acr. False when nothing was written: the sign-in ended, or
    more is needed first."""
    now = clock.now()
    parameters = {
        "code_hash": hash_secret(code),
        "client_id": client.client_id,
        "tenant_id": client.tenant_id,
        "member_of": client.tenant_id,
        "redirect_uri": redirect_uri or "",
        "scope": scope or "",
        "nonce": nonce,
        "code_challenge": code_challenge,
        "code_challenge_method": (code_challenge_method or "S256") if code_challenge else None,
        "created_at": now,
        "expires_at": now + timedelta(seconds=ttl),
        "token_hash": token_hash,
        "now": now,
        "now_timestamp": clock.timestamp(),
    }
    return _execute(_store_code(criteria_for), parameters).scalar() is not None


def find_code(code: str, client, *, ip: str | None) -> rows.CodeRow | None:
    """The unexpired, unconsumed code issued to `client`, or None.

    A code presented again revokes every token issued from it (RFC 6749 4.1.2)."""
    row = rows.code(_execute(rows.CODE_BY_HASH, {"code_hash": hash_secret(code)}).first())
    if row is None or row.client_id != client.client_id:
        return None
    if row.consumed_at is not None:
        code_reused(row, ip=ip)
        return None
    if row.is_expired():
        return None
    return row


def consume_code(row: rows.CodeRow) -> bool:
    """Mark the code used; False when another request consumed it first."""
    return _execute(_CONSUME_CODE, {"row_id": row.id, "now": clock.now()}).rowcount == 1


def code_reused(row: rows.CodeRow, *, ip: str | None) -> None:
    revoked = revoke(code_id=row.id)
    audit.record(audit.CODE_REUSED, tenant=row.tenant_id, subject=row.account_id, outcome="refused", ip=ip,
                 client_id=row.client_id, tokens_revoked=revoked)
    # The refusal answers 400, which rolls the request back: the revocation must not go with it.
    commit_now(because="a reused code's revocation outlives the refusal")


# --- tokens ----------------------------------------------------------------------------


_INSERT_TOKEN = insert(_TOKENS)


def save_token(token: dict, *, client, account, settings, code: rows.CodeRow | None = None,
               parent: rows.RefreshTokenRow | None = None) -> None:
    """Store a token response's secrets as hashes (one INSERT). A rotation (`parent`) keeps the
    family, the code it came from and the original authentication (auth_time, amr, acr)."""
    now = clock.now()
    origin = parent or code
    refresh = token.get("refresh_token")
    _execute(_INSERT_TOKEN, {
        "client_id": client.client_id,
        "account_id": account.id,
        "tenant_id": client.tenant_id,
        "access_token_hash": hash_secret(token["access_token"]),
        "refresh_token_hash": hash_secret(refresh) if refresh else None,
        "family_id": parent.family_id if parent else uuid.uuid4().hex,
        "authorization_code_id": parent.authorization_code_id if parent else (code.id if code else None),
        "scope": token.get("scope", ""),
        "sid": origin.sid,
        # What the family was granted, not this (possibly narrowed) access token: a rotation keeps it.
        "offline": parent.offline if parent else "offline_access" in scope_to_list(origin.scope or ""),
        "auth_time": origin.auth_time,
        "amr": list(origin.amr or []),
        "acr": origin.acr,
        "issued_at": now,
        "access_expires_at": now + timedelta(seconds=int(token.get("expires_in") or settings.access_token_ttl)),
        "refresh_expires_at": now + timedelta(seconds=settings.refresh_token_ttl) if refresh else None,
        "refresh_used_at": None,
        "revoked_at": None,
    })


_ROTATE_REFRESH = (update(_TOKENS)
                   .where(_TOKENS.c.id == bindparam("row_id"), _TOKENS.c.refresh_used_at.is_(None),
                          _TOKENS.c.revoked_at.is_(None))
                   .values(refresh_used_at=bindparam("now")))


def find_by_refresh_token(refresh_token: str, *, ip: str | None) -> rows.RefreshTokenRow | None:
    """The usable token row of a refresh token, or None; `row.granted_scope` is the scope
    the family was granted (its access tokens may have been narrowed).

    Presenting a refresh token that was already rotated means it leaked (or the
    client is broken): the whole family is revoked (RFC 9700 4.14.2)."""
    row = rows.refresh_token(_execute(rows.REFRESH_TOKEN_BY_HASH, {"token_hash": hash_secret(refresh_token),
                                                                  "now": clock.timestamp()}).first())
    if row is None or row.revoked_at is not None:
        return None
    if row.refresh_used_at is not None:
        refresh_reused(row, ip=ip)
        return None
    if row.refresh_expires_at is None or clock.now() >= row.refresh_expires_at:
        return None
    return row


def consume_refresh_token(row: rows.RefreshTokenRow) -> bool:
    """Mark the refresh token rotated; False when another request rotated it first."""
    return _execute(_ROTATE_REFRESH, {"row_id": row.id, "now": clock.now()}).rowcount == 1


def revoke(*, account=None, tenant=None, client_id: str | None = None, family_id: str | None = None,
           code_id: int | None = None, token_id: int | None = None, sid: str | None = None,
           offline: bool | None = None, except_sid: str | None = None, access_only: bool = False) -> int:
    """The one way tokens end: every live token matching all the given filters (at least one).

    `access_only` ends just the access token of the matching rows (RFC 7009 2.1: revoking an access
    token need not end its refresh token); otherwise the row is revoked, refresh token and all.
    Returns how many rows it ended."""
    filters = (
        (Token.account_id, getattr(account, "id", account)),
        (Token.tenant_id, getattr(tenant, "id", tenant)),
        (Token.client_id, client_id),
        (Token.family_id, family_id),
        (Token.authorization_code_id, code_id),
        (Token.id, token_id),
        (Token.sid, sid),
        (Token.offline, offline),
    )
    conditions = [column == value for column, value in filters if value is not None]
    if not conditions:
        raise ValueError("revoke() needs at least one filter")
    if except_sid is not None:
        # Tokens of the sign-in the person is using stay (a password changed from Account settings).
        conditions.append(or_(Token.sid.is_(None), Token.sid != except_sid))
    now = clock.now()
    if access_only:
        statement = update(Token).where(*conditions, Token.access_expires_at > now).values(access_expires_at=now)
    else:
        statement = update(Token).where(*conditions, Token.revoked_at.is_(None)).values(revoked_at=now)
    return db.session.execute(statement.execution_options(synchronize_session=False)).rowcount or 0


def refresh_reused(row: rows.RefreshTokenRow, *, ip: str | None) -> None:
    revoked = revoke(family_id=row.family_id)
    audit.record(audit.REFRESH_REUSED, tenant=row.tenant_id, subject=row.account_id, outcome="refused", ip=ip,
                 client_id=row.client_id, tokens_revoked=revoked)
    commit_now(because="a reused refresh token's revocation outlives the refusal")


def find_access_token(access_token: str) -> rows.AccessTokenRow | None:
    """The access token's row with its account and that account's membership of the token's school
    (userinfo's one statement), as plain rows."""
    return rows.access_token(_execute(rows.ACCESS_TOKEN_BY_HASH, {"token_hash": hash_secret(access_token)}).first())


@dataclass
class PresentedToken:
    """A token string found in the store, and whether it was the access or the refresh token
    of its row (revocation and introspection accept either, RFC 7009 2.1, RFC 7662 2.1)."""

    row: Token
    kind: str  # "access_token" or "refresh_token"

    def check_client(self, client) -> bool:
        return self.row.check_client(client)

    def is_expired(self) -> bool:
        if self.kind == "refresh_token":
            expires = self.row.refresh_expires_at
            return expires is None or clock.now() >= expires
        return self.row.is_expired()

    def is_revoked(self) -> bool:
        if self.kind == "refresh_token":
            return self.row.revoked_at is not None or self.row.refresh_used_at is not None
        return self.row.is_revoked()

    @property
    def expires_at(self):
        return self.row.refresh_expires_at if self.kind == "refresh_token" else self.row.access_expires_at


def find_presented_token(value: str) -> PresentedToken | None:
    """Look the string up as an access token and as a refresh token in one statement
    (a token_type_hint only speeds the search up, RFC 7009 2.1, so it is not needed)."""
    digest = hash_secret(value)
    row = db.session.scalars(
        _tokens(or_(Token.access_token_hash == digest, Token.refresh_token_hash == digest))
    ).unique().first()
    if row is None:
        return None
    return PresentedToken(row, "access_token" if row.access_token_hash == digest else "refresh_token")


def revoke_presented_token(presented: PresentedToken, *, ip: str | None) -> None:
    """Revoking a refresh token ends its family (every access token from the same grant, RFC 7009 2.1);
    revoking an access token ends only that access token."""
    row = presented.row
    if presented.kind == "refresh_token":
        revoke(family_id=row.family_id)
    else:
        revoke(token_id=row.id, access_only=True)
    audit.record(audit.TOKEN_REVOKED, tenant=row.tenant_id, subject=row.account_id, ip=ip,
                 client_id=row.client_id, token_type=presented.kind)
