"""The browser's sign-in: who is signed in, since when (auth_time) and how (amr).

Kept in Flask's signed session cookie through Flask-Login, so any worker can
read it. The account's `session_epoch` is part of the login id: bumping it
(password change, deactivation) ends every other browser's sign-in."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app, session
from flask_login import current_user, login_user, logout_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload, undefer

from .. import clock
from ..extensions import db, login_manager
from ..models import Account

AMR_KEY = "amr"
AUTH_TIME_KEY = "auth_time"
#: When this sign-in last gave a second factor (the step-up freshness operators' changes need).
SECOND_FACTOR_AT_KEY = "second_factor_at"


@dataclass(frozen=True)
class SignIn:
    account: Account
    auth_time: int
    amr: tuple[str, ...]
    second_factor_at: int | None = None

    @property
    def has_second_factor(self) -> bool:
        return "otp" in self.amr

    def second_factor_within(self, seconds: int) -> bool:
        """Whether a second factor was given in the last `seconds` (a fresh confirmation)."""
        return self.second_factor_at is not None and clock.timestamp() - self.second_factor_at <= seconds

    @property
    def account_id(self) -> int:
        return self.account.id

    @property
    def epoch(self) -> int:
        return self.account.session_epoch


@dataclass(frozen=True)
class ClaimedSignIn:
    """What this browser's signed cookie says about its sign-in, not yet checked against the
    database: the account may since have been retired, deactivated or signed out everywhere.
    Whoever acts on it must make that check part of its own statement (see tokens.save_code)."""

    account_id: int
    epoch: int
    auth_time: int
    amr: tuple[str, ...]


def _parse_login_id(login_id) -> tuple[int, int] | None:
    try:
        account_id, epoch = (int(part) for part in str(login_id).split(".", 1))
    except ValueError:
        return None
    return account_id, epoch


@login_manager.user_loader
def _load_account(login_id: str) -> Account | None:
    parsed = _parse_login_id(login_id)
    if parsed is None:
        return None
    account_id, epoch = parsed
    # One statement: the account with its memberships (and their tenants), which authorize needs next.
    account = (
        db.session.scalars(
            select(Account)
            .where(Account.id == account_id)
            .options(joinedload(Account.memberships), undefer(Account.mfa_enrolled))
        )
        .unique()
        .first()
    )
    if account is None or account.session_epoch != epoch or account.retired:
        return None
    return account


def sign_in(account: Account, amr: list[str]) -> SignIn:
    """Start a fresh sign-in. The old session's contents are dropped (no fixation)."""
    session.clear()
    login_user(account, fresh=True)
    session.permanent = True
    session[AUTH_TIME_KEY] = clock.timestamp()
    session[AMR_KEY] = list(dict.fromkeys(amr))
    if "otp" in amr:
        session[SECOND_FACTOR_AT_KEY] = clock.timestamp()
    return current_sign_in()


def add_factors(amr: list[str]) -> None:
    """Step-up: record extra factors without moving auth_time (OIDC Core 2: auth_time is the original)."""
    session[AMR_KEY] = list(dict.fromkeys(list(session.get(AMR_KEY, [])) + amr))
    session[SECOND_FACTOR_AT_KEY] = clock.timestamp()


def current_sign_in() -> SignIn | None:
    """The live sign-in of this browser, or None (signed out, expired, or ended elsewhere)."""
    if not current_user.is_authenticated:
        return None
    auth_time = session.get(AUTH_TIME_KEY)
    if auth_time is None:
        return None
    if _expired(auth_time):
        sign_out()
        return None
    return SignIn(account=current_user._get_current_object(), auth_time=auth_time, amr=tuple(session.get(AMR_KEY, [])),
                  second_factor_at=session.get(SECOND_FACTOR_AT_KEY))


def claimed_sign_in() -> ClaimedSignIn | None:
    """The cookie's sign-in without a database round trip, or None where it is absent or expired."""
    parsed = _parse_login_id(session.get("_user_id", ""))
    auth_time = session.get(AUTH_TIME_KEY)
    if parsed is None or not isinstance(auth_time, int) or _expired(auth_time):
        return None
    return ClaimedSignIn(account_id=parsed[0], epoch=parsed[1], auth_time=auth_time,
                         amr=tuple(session.get(AMR_KEY, [])))


def _expired(auth_time: int) -> bool:
    """A sign-in lasts session_ttl from auth_time, however busy it has been."""
    return clock.timestamp() - auth_time > current_app.config["SETTINGS"].session_ttl


def sign_out() -> None:
    logout_user()
    session.clear()
