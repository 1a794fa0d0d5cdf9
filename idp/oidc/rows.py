"""Plain rows for the protocol's hot reads (the token endpoint's code, userinfo's access token): one
Core SELECT of the code or token, its account, and the account's membership of its school with that
school, into frozen dataclasses instead of ORM objects (no identity map, no relationship loading).

Each class borrows its behaviour from the model it stands for (`Token.is_expired`,
`Membership.is_usable`, `Account.membership_in`, ...), so the rules stay written once; only
the attributes those rules and the claims read are carried."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Integer, and_, bindparam, func, select

from ..accounts.sessions import live_criteria
from ..models import Account, AuthorizationCode, BrowserSession, Membership, Tenant, Token

_CODES, _TOKENS, _ACCOUNTS, _MEMBERS, _TENANTS = (
    model.__table__ for model in (AuthorizationCode, Token, Account, Membership, Tenant))


@dataclass(frozen=True)
class SchoolRow:
    id: int
    slug: str


@dataclass(frozen=True)
class MembershipRow:
    tenant_id: int
    role: str
    active: bool
    accepted_at: datetime | None
    tenant: SchoolRow

    roles = Membership.roles
    is_usable = Membership.is_usable


@dataclass(frozen=True)
class AccountRow:
    """The account, with (at most) its membership of the school the statement asked about."""

    id: int
    sub: str
    name: str
    email: str
    email_verified_at: datetime | None
    retired: bool
    memberships: list[MembershipRow] = field(default_factory=list)

    email_verified = Account.email_verified
    membership_in = Account.membership_in


@dataclass(frozen=True)
class AccessTokenRow:
    client_id: str
    tenant_id: int
    scope: str
    issued_at: datetime
    access_expires_at: datetime
    revoked_at: datetime | None
    account: AccountRow

    check_client = Token.check_client
    get_scope = Token.get_scope
    get_expires_in = Token.get_expires_in
    is_expired = Token.is_expired
    is_revoked = Token.is_revoked
    get_user = Token.get_user


@dataclass(frozen=True)
class CodeRow:
    id: int
    client_id: str
    tenant_id: int
    account_id: int
    redirect_uri: str
    scope: str
    nonce: str | None
    auth_time: int
    amr: list | None
    acr: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    sid: str | None
    expires_at: datetime
    consumed_at: datetime | None
    account: AccountRow

    get_redirect_uri = AuthorizationCode.get_redirect_uri
    get_scope = AuthorizationCode.get_scope
    get_nonce = AuthorizationCode.get_nonce
    get_auth_time = AuthorizationCode.get_auth_time
    get_acr = AuthorizationCode.get_acr
    get_amr = AuthorizationCode.get_amr
    is_expired = AuthorizationCode.is_expired


@dataclass(frozen=True)
class RefreshTokenRow:
    """A refresh token's row; `granted_scope` is what its family was granted with the code (its
    access tokens may have been narrowed since, RFC 6749 6)."""

    id: int
    client_id: str
    tenant_id: int
    account_id: int
    family_id: str
    authorization_code_id: int | None
    scope: str
    sid: str | None
    offline: bool
    auth_time: int
    amr: list | None
    acr: str | None
    issued_at: datetime
    access_expires_at: datetime
    refresh_expires_at: datetime | None
    refresh_used_at: datetime | None
    revoked_at: datetime | None
    granted_scope: str
    #: When the browser sign-in the token was issued in was last used, if that sign-in still holds
    #: by the token's school's rules (None: it has ended, or the token came from none).
    session_seen: int | None
    account: AccountRow

    check_client = Token.check_client
    get_scope = Token.get_scope
    get_user = Token.get_user


_ACCOUNT_COLUMNS = (_ACCOUNTS.c.id, _ACCOUNTS.c.sub, _ACCOUNTS.c.name, _ACCOUNTS.c.email,
                    _ACCOUNTS.c.email_verified_at, _ACCOUNTS.c.retired)
_MEMBERSHIP_COLUMNS = (_MEMBERS.c.tenant_id, _MEMBERS.c.role, _MEMBERS.c.active, _MEMBERS.c.accepted_at)
_TOKEN_COLUMNS = (_TOKENS.c.client_id, _TOKENS.c.tenant_id, _TOKENS.c.scope, _TOKENS.c.issued_at,
                  _TOKENS.c.access_expires_at, _TOKENS.c.revoked_at)


_CODE_COLUMNS = tuple(_CODES.c[name] for name in CodeRow.__dataclass_fields__ if name != "account")


def _with_member(table, columns):
    """SELECT `columns` of `table` (a code or token), then its account, the account's membership of
    the row's school (if any) and that school."""
    return (
        select(*columns, *_ACCOUNT_COLUMNS, *_MEMBERSHIP_COLUMNS, _TENANTS.c.id, _TENANTS.c.slug)
        .select_from(table)
        .join(_ACCOUNTS, _ACCOUNTS.c.id == table.c.account_id)
        .outerjoin(_MEMBERS, and_(_MEMBERS.c.account_id == _ACCOUNTS.c.id, _MEMBERS.c.tenant_id == table.c.tenant_id))
        .outerjoin(_TENANTS, _TENANTS.c.id == _MEMBERS.c.tenant_id)
    )


# RFC 6749 6: a narrowed refresh narrows only its access token; the family keeps the scope granted
# with the code, read in the same statement (the token's own scope when it came from no code).
_GRANTED_SCOPE = func.coalesce(
    select(_CODES.c.scope).where(_CODES.c.id == _TOKENS.c.authorization_code_id).scalar_subquery(),
    _TOKENS.c.scope,
)
# The sign-in behind a token without offline_access, judged as /authorize judges it (the school
# and membership are the outer statement's); a refresh is that sign-in in use.
_SESSION_SEEN = (
    select(BrowserSession.last_seen)
    .where(BrowserSession.sid == _TOKENS.c.sid, live_criteria(bindparam("now", type_=Integer)))
    .scalar_subquery()
)
_REFRESH_COLUMNS = (*(_TOKENS.c[name] for name in RefreshTokenRow.__dataclass_fields__
                      if name not in ("granted_scope", "session_seen", "account")), _GRANTED_SCOPE, _SESSION_SEEN)

REFRESH_TOKEN_BY_HASH = _with_member(_TOKENS, _REFRESH_COLUMNS).where(
    _TOKENS.c.refresh_token_hash == bindparam("token_hash"))
ACCESS_TOKEN_BY_HASH = _with_member(_TOKENS, _TOKEN_COLUMNS).where(_TOKENS.c.access_token_hash == bindparam("token_hash"))
CODE_BY_HASH = _with_member(_CODES, _CODE_COLUMNS).where(_CODES.c.code_hash == bindparam("code_hash"))


def _account(values: tuple) -> AccountRow:
    """AccountRow from the account, membership and school columns, in _with_member's order."""
    account, member, school = values[:6], values[6:10], values[10:12]
    memberships = [MembershipRow(*member, tenant=SchoolRow(*school))] if member[0] is not None else []
    return AccountRow(*account, memberships=memberships)


def access_token(row) -> AccessTokenRow | None:
    """An AccessTokenRow from a row of ACCESS_TOKEN_BY_HASH, or None."""
    if row is None:
        return None
    count = len(_TOKEN_COLUMNS)
    return AccessTokenRow(*row[:count], account=_account(tuple(row[count:])))


def code(row) -> CodeRow | None:
    """A CodeRow from a row of CODE_BY_HASH, or None."""
    if row is None:
        return None
    count = len(_CODE_COLUMNS)
    return CodeRow(*row[:count], account=_account(tuple(row[count:])))


def refresh_token(row) -> RefreshTokenRow | None:
    """A RefreshTokenRow from a row of REFRESH_TOKEN_BY_HASH, or None."""
    if row is None:
        return None
    count = len(_REFRESH_COLUMNS)
    return RefreshTokenRow(*row[:count], account=_account(tuple(row[count:])))
