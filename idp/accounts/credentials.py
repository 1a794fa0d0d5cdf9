"""Changing an account's password, and everything a change must end.

A new password voids every outstanding reset link of the account, signs out
its other browser sessions (session_epoch) and revokes its OAuth tokens, so
whoever knew the old password or held an old link is locked out."""

from __future__ import annotations

from sqlalchemy import update

from .. import audit, clock
from ..extensions import db
from ..models import Account, ResetLink, Token
from . import directory, passwords


def change_password(
    account: Account,
    new_password: str,
    *,
    confirmation: str | None = None,
    tenant=None,
    actor=None,
    ip: str | None = None,
    check_policy: bool = True,
    commit: bool = True,
    **detail,
) -> None:
    """Set `new_password` (PolicyViolation lists every broken rule) and end what it replaces.

    `check_policy=False` is for callers that have already checked it (the reset
    flow checks before it consumes its link). With `commit=False` the change joins
    the caller's transaction."""
    if check_policy:
        extra = (tenant.name,) if tenant is not None else ()
        passwords.check_policy(
            new_password, account=account, email=account.email, name=account.name or "",
            confirmation=confirmation, extra_words=extra,
        )
    now = clock.now()
    directory.set_password_hash(account, passwords.hash_password(new_password))
    void_reset_links(account, at=now)
    db.session.execute(
        update(Token)
        .where(Token.account_id == account.id, Token.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    account.session_epoch = (account.session_epoch or 0) + 1
    audit.record(
        audit.PASSWORD_CHANGED, tenant=tenant, actor=actor or account, subject=account, ip=ip, **detail
    )
    if commit:
        db.session.commit()


def void_reset_links(account: Account, *, at) -> None:
    """End every outstanding reset link of `account`: its password changed, or the account was retired."""
    db.session.execute(
        update(ResetLink)
        .where(ResetLink.account_id == account.id, ResetLink.used_at.is_(None), ResetLink.invalidated_at.is_(None))
        .values(invalidated_at=at)
        .execution_options(synchronize_session=False)
    )
