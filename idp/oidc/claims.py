"""The claims an account has in a tenant: for ID tokens, userinfo and introspection.

`sub`, `tenant` and `roles` always; `name` with the `profile` scope; `email` and
`email_verified` with the `email` scope (OIDC Core 5.4)."""

from __future__ import annotations

from authlib.oauth2.rfc6749.util import scope_to_list
from authlib.oidc.core import UserInfo

from ..accounts import directory


def amr_values(amr) -> list[str]:
    """RFC 8176 values: `pwd`, plus `otp`, plus `mfa` once more than one factor was used."""
    values = list(dict.fromkeys(amr or ()))
    if "otp" in values and "pwd" in values and "mfa" not in values:
        values.append("mfa")
    return values


def tenant_claims(account, tenant) -> dict:
    """`tenant` is the slug of the client's tenant; `roles` the account's roles there."""
    membership = directory.active_membership(account, tenant)
    return {"tenant": tenant.slug, "roles": list(membership.roles) if membership else []}


def profile_claims(account, scope: str) -> UserInfo:
    scopes = set(scope_to_list(scope) or [])
    info = UserInfo(sub=account.sub)
    if "profile" in scopes:
        info["name"] = account.name
    if "email" in scopes:
        info["email"] = account.email
        # True only once the person used a link mailed to this address; a change by anyone else
        # makes it false again (accounts.lifecycle).
        info["email_verified"] = account.email_verified
    return info


def user_info(account, tenant, scope: str) -> UserInfo:
    info = profile_claims(account, scope)
    info.update(tenant_claims(account, tenant))
    return info
