"""Changing an account's password, and everything a change must end.

A new password voids every outstanding password link of the account and ends its sign-ins
(browser sessions and OAuth tokens), so whoever knew the old password or held an old link is
locked out."""

from __future__ import annotations

from .. import audit
from ..models import Account
from . import directory, lifecycle, passwords


def change_password(
    account: Account,
    new_password: str,
    *,
    confirmation: str | None = None,
    tenant=None,
    actor=None,
    ip: str | None = None,
    check_policy: bool = True,
    keep=None,
    **detail,
) -> None:
    """Set `new_password` (PolicyViolation lists every broken rule) and end what it replaces:
    every sign-in but `keep` (the person's own, when they change it from Account settings).

    `check_policy=False` is for callers that have already checked it (the reset flow checks
    before it consumes its link)."""
    from ..reset import links

    if check_policy:
        extra = (tenant.name,) if tenant is not None else ()
        passwords.check_policy(
            new_password, account=account, email=account.email, name=account.name or "",
            confirmation=confirmation, extra_words=extra,
        )
    directory.set_password_hash(account, passwords.hash_password(new_password))
    links.void_links(account, purposes=links.PASSWORD_PURPOSES)
    lifecycle.end_sign_ins(account, reason="password changed",
                           authority=lifecycle.Authority(actor=actor or account, ip=ip), keep=keep)
    audit.record(
        audit.PASSWORD_CHANGED, tenant=tenant, actor=actor or account, subject=account, ip=ip, **detail
    )


CURRENT_PASSWORD_WRONG = "Your current password is incorrect"


def change_own_password(account: Account, current: str, new_password: str, confirmation: str, *, tenant,
                        ip: str | None, keep) -> None:
    """The signed-in person changes their password (Account settings): their current password first
    (throttled like the login form, so the page is no way round its limits), then the same policy
    and history as a reset; every other sign-in ends, this one stays."""
    from ..auth import service as sign_in
    from ..errors import PolicyViolation

    try:
        sign_in.check_current_password(account, tenant, current, ip=ip)
    except sign_in.LoginFailed:
        raise PolicyViolation([CURRENT_PASSWORD_WRONG]) from None
    change_password(account, new_password, confirmation=confirmation, tenant=tenant, ip=ip, keep=keep,
                    via="account settings")
