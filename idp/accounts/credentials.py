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
    **detail,
) -> None:
    """Set `new_password` (PolicyViolation lists every broken rule) and end what it replaces.

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
                           authority=lifecycle.Authority(actor=actor or account, ip=ip))
    audit.record(
        audit.PASSWORD_CHANGED, tenant=tenant, actor=actor or account, subject=account, ip=ip, **detail
    )
