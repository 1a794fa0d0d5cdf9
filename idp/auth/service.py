"""Password sign-in against a tenant for a chosen provider: one code path for both."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from flask import current_app

from .. import audit
from ..accounts import directory, passwords
from ..errors import DomainError, RateLimited
from ..models import Account, Tenant, normalise_email
from ..ratelimits import (LOGIN_PACE, LOGIN_PER_ACCOUNT, LOGIN_PER_ACCOUNT_IP, LOGIN_PER_IP, LOGIN_PER_KNOWN_BROWSER,
                          LOGIN_REFUSAL_RECORDED)
from ..transactions import commit_now

#: The product's documented message (help page): shown verbatim for every failure.
LOGIN_FAILED_MESSAGE = "Your email address or password was incorrect"
LOGIN_THROTTLED_MESSAGE = (
    "Too many unsuccessful sign-in attempts. Please wait a few minutes and try again, "
    "or use 'Forgotten your password or using CPOMS for the first time?' to set a new password."
)
LOGIN_PACED_MESSAGE = (
    "There have been many unsuccessful attempts to sign in with this email address, so each attempt "
    "must now wait a minute. Please wait a minute and try again."
)
NOT_A_MEMBER_MESSAGE = (
    "You are signed in as {email}, which does not have access to {tenant}. "
    "Sign in with the account this school gave you."
)
NOT_ACCEPTED_MESSAGE = (
    "{tenant} has added your account, but you have not accepted yet. Open the link in the email we sent "
    "to {email} (check your junk, clutter and 'Other' folders too), or ask your school's CPOMS "
    "Administrator to send it again."
)


class LoginFailed(DomainError):
    status_code = 401

    def __init__(self):
        super().__init__(LOGIN_FAILED_MESSAGE)


class NotAccepted(DomainError):
    """The password was right, but the person has not accepted this school's membership yet."""

    status_code = 403

    def __init__(self, account: Account, tenant: Tenant):
        super().__init__(NOT_ACCEPTED_MESSAGE.format(tenant=tenant.name, email=account.email))


@dataclass(frozen=True)
class KnownBrowser:
    """A browser that has signed in before (auth.known_browsers reads its cookie): its random id, and
    the account_mark of each account it signed in to."""

    id: str
    marks: tuple[str, ...]


def account_mark(tenant: Tenant | None, provider: str, email: str) -> str:
    """What a browser keeps to show it signed in to this account: keyed, so the cookie names no one."""
    key = "\0".join(_throttle_key(tenant, provider, normalise_email(email))).encode()
    return hmac.new(current_app.secret_key.encode(), key, hashlib.sha256).hexdigest()[:32]


def authenticate(tenant: Tenant | None, provider: str, email: str, password: str, *, ip: str | None,
                 browser: KnownBrowser | None = None) -> Account:
    """The account signing in, or LoginFailed / RateLimited / NotAccepted.

    Unknown accounts, wrong passwords, invited accounts with no password yet and
    deactivated members all fail alike, after the same argon2 work."""
    email = normalise_email(email)
    account_key = _throttle_key(tenant, provider, email)
    address = ip or "unknown"
    if LOGIN_PER_ACCOUNT_IP.is_blocked(*account_key, address) or LOGIN_PER_IP.is_blocked(address):
        _refused(audit.LOGIN_THROTTLED, tenant, provider, email, ip, reason="locked for this address")
        raise RateLimited(LOGIN_THROTTLED_MESSAGE)
    # The owner's own browser (it signed in to this account before) does not queue behind the
    # guessers; it has a budget of its own, so a copied cookie is no way round the ceiling.
    known = _vouched(browser, tenant, provider, email)
    if known is None and LOGIN_PER_ACCOUNT.is_blocked(*account_key):
        # Past the account's ceiling every other attempt, from any address, waits its turn.
        if LOGIN_PACE.is_blocked(*account_key):
            LOGIN_PER_IP.hit(address)  # waiting in a loop costs the waiter's address
            _refused(audit.LOGIN_THROTTLED, tenant, provider, email, ip, reason="slowed: many failures")
            raise RateLimited(LOGIN_PACED_MESSAGE)
        LOGIN_PACE.hit(*account_key)

    account = directory.find_account(tenant, provider, email)
    password_ok = passwords.verify_password(account.password_hash if account else None, password)
    membership = account.membership_in(tenant.id) if account is not None and tenant is not None else None
    member = directory.may_sign_in(account, tenant)

    if not (account and password_ok and member):
        if account and password_ok and membership is not None and membership.active and membership.is_pending:
            _refused(audit.LOGIN_FAILED, tenant, provider, email, ip, subject=account, reason="not accepted yet")
            raise NotAccepted(account, tenant)
        LOGIN_PER_ACCOUNT_IP.hit(*account_key, address)
        LOGIN_PER_IP.hit(address)
        LOGIN_PER_ACCOUNT.hit(*account_key)
        if known is not None:
            LOGIN_PER_KNOWN_BROWSER.hit(*known)
        reason = "unknown account" if account is None else ("deactivated" if password_ok else "bad password")
        _refused(audit.LOGIN_FAILED, tenant, provider, email, ip, subject=account, reason=reason)
        raise LoginFailed()

    if passwords.needs_rehash(account.password_hash):
        directory.set_password_hash(account, passwords.hash_password(password))
    forget_failed_logins(account, tenant, ip=ip)
    return account


def check_current_password(account: Account, tenant: Tenant | None, password: str, *, ip: str | None) -> None:
    """A signed-in person confirms their password (to change it): the login's throttles apply, so
    this is no way round them. LoginFailed or RateLimited."""
    # An Identity account's failures count at its own school, wherever the page was opened from.
    key = _throttle_key(account.tenant if account.provider == "identity" else tenant, account.provider, account.email)
    address = ip or "unknown"
    if LOGIN_PER_ACCOUNT_IP.is_blocked(*key, address):
        raise RateLimited(LOGIN_THROTTLED_MESSAGE)
    if passwords.verify_password(account.password_hash, password):
        return
    LOGIN_PER_ACCOUNT_IP.hit(*key, address)
    LOGIN_PER_ACCOUNT.hit(*key)
    _refused(audit.LOGIN_FAILED, tenant, account.provider, account.email, ip, subject=account,
             reason="wrong current password")
    raise LoginFailed()


def _vouched(browser: KnownBrowser | None, tenant: Tenant | None, provider: str, email: str) -> tuple | None:
    """The known-browser throttle key when `browser` signed in to this account before and has not
    used up its own budget of failures; else None."""
    if browser is None:
        return None
    mark = account_mark(tenant, provider, email)
    if mark not in browser.marks or LOGIN_PER_KNOWN_BROWSER.is_blocked(browser.id, mark):
        return None
    return (browser.id, mark)


def _refused(event: str, tenant: Tenant | None, provider: str, email: str, ip: str | None, *, subject=None,
             reason: str) -> None:
    if event == audit.LOGIN_THROTTLED:
        # A refusal repeated in a loop is recorded once a minute per account and address, so
        # polling neither buries the log nor loads the database.
        key = (*_throttle_key(tenant, provider, email), ip or "unknown")
        if LOGIN_REFUSAL_RECORDED.is_blocked(*key):
            return
        LOGIN_REFUSAL_RECORDED.hit(*key)
    audit.record(event, tenant=tenant, subject=subject, outcome="refused" if event == audit.LOGIN_THROTTLED
                 else "failure", ip=ip, provider=provider, email=email, reason=reason)
    commit_now(because="a refused sign-in is recorded though the page refuses it")


def _throttle_key(tenant: Tenant | None, provider: str, email: str) -> tuple[str, ...]:
    # One SSO account signs in at each of its schools (and on the platform's page): counted per
    # page, a guesser would get a fresh allowance at every one of them. Identity accounts belong to
    # one school anyway. `email` is already normalised (authenticate, or the stored account email).
    return ("sso", email) if provider == "sso" else (tenant.slug, provider, email)


def forget_failed_logins(account: Account, tenant: Tenant | None, *, ip: str | None = None) -> None:
    """A correct password, or a password set through a link (the locked-out message sends people
    there): the account's failures are forgotten (from `ip`'s address too, when given)."""
    key = _throttle_key(tenant, account.provider, account.email)
    LOGIN_PER_ACCOUNT.clear(*key)
    LOGIN_PACE.clear(*key)
    if ip is not None:
        LOGIN_PER_ACCOUNT_IP.clear(*key, ip)


def record_sign_in(account: Account, tenant: Tenant | None, provider: str, amr: list[str], *, ip: str | None) -> None:
    """A sign-in completed. (Its record also voids the account's outstanding reset links:
    reset.links refuses a reset link older than the person's last sign-in.)"""
    audit.record(audit.LOGIN_SUCCEEDED, tenant=tenant, actor=account, subject=account, ip=ip, provider=provider, amr=amr)
