"""Password sign-in against a tenant for a chosen provider: one code path for both."""

from __future__ import annotations

from .. import audit
from ..accounts import directory, passwords
from ..errors import DomainError, RateLimited
from ..extensions import db
from ..models import Account, Tenant, normalise_email
from ..ratelimits import LOGIN_PER_ACCOUNT, LOGIN_PER_IP

#: The product's documented message (help page): shown verbatim for every failure.
LOGIN_FAILED_MESSAGE = "Your email address or password was incorrect"
LOGIN_THROTTLED_MESSAGE = (
    "Too many unsuccessful sign-in attempts. Please wait a few minutes and try again, "
    "or use 'Forgotten your password or using CPOMS for the first time?' to set a new password."
)
NOT_A_MEMBER_MESSAGE = (
    "You are signed in as {email}, which does not have access to {tenant}. "
    "Sign in with the account this school gave you."
)


class LoginFailed(DomainError):
    status_code = 401

    def __init__(self):
        super().__init__(LOGIN_FAILED_MESSAGE)


def authenticate(tenant: Tenant, provider: str, email: str, password: str, *, ip: str | None) -> Account:
    """The account signing in, or LoginFailed / RateLimited.

    Unknown accounts, wrong passwords, invited accounts with no password yet and
    deactivated members all fail alike, after the same argon2 work."""
    email = normalise_email(email)
    account_key = _throttle_key(tenant, provider, email)
    if LOGIN_PER_ACCOUNT.is_blocked(*account_key) or LOGIN_PER_IP.is_blocked(ip or "unknown"):
        audit.record(audit.LOGIN_THROTTLED, tenant=tenant, outcome="refused", ip=ip, provider=provider, email=email)
        db.session.commit()
        raise RateLimited(LOGIN_THROTTLED_MESSAGE)

    account = directory.find_account(tenant, provider, email) if provider in ("identity", "sso") else None
    password_ok = passwords.verify_password(account.password_hash if account else None, password)
    member = directory.active_membership(account, tenant) if account is not None else None

    if not (account and password_ok and member):
        LOGIN_PER_ACCOUNT.hit(*account_key)
        LOGIN_PER_IP.hit(ip or "unknown")
        reason = "unknown account" if account is None else ("deactivated" if password_ok else "bad password")
        audit.record(
            audit.LOGIN_FAILED, tenant=tenant, subject=account, outcome="failure", ip=ip,
            provider=provider, email=email, reason=reason,
        )
        db.session.commit()
        raise LoginFailed()

    if passwords.needs_rehash(account.password_hash):
        directory.set_password_hash(account, passwords.hash_password(password))
    LOGIN_PER_ACCOUNT.clear(*account_key)
    return account


def _throttle_key(tenant: Tenant, provider: str, email: str) -> tuple[str, ...]:
    # One SSO account signs in at each of its schools: counted per school, a guesser would get
    # a fresh allowance at every one of them. Identity accounts belong to one school anyway.
    # `email` is already normalised (authenticate, or the stored account email).
    return ("sso", email) if provider == "sso" else (tenant.slug, provider, email)


def forget_failed_logins(account: Account, tenant: Tenant) -> None:
    """The locked-out message sends people to set a new password: once they have, let them in."""
    LOGIN_PER_ACCOUNT.clear(*_throttle_key(tenant, account.provider, account.email))


def record_sign_in(account: Account, tenant: Tenant, provider: str, amr: list[str], *, ip: str | None) -> None:
    audit.record(audit.LOGIN_SUCCEEDED, tenant=tenant, actor=account, subject=account, ip=ip, provider=provider, amr=amr)
    db.session.commit()
