"""Recording security events in the append-only audit log, and the one vocabulary that says
them in words (pages and the CSV download read it).

Callers pass the IP (services never read the request); the event joins the
caller's transaction and is committed with it (idp.transactions)."""

from __future__ import annotations

from .extensions import db
from .models import AuditEvent

# The vocabulary of events, so filters and tests name them the same way.
LOGIN_SUCCEEDED = "login.succeeded"
LOGIN_FAILED = "login.failed"
LOGIN_THROTTLED = "login.throttled"
LOGOUT = "logout"
SIGN_INS_ENDED = "account.sign_ins_ended"
SESSION_ENDED = "session.ended"
MFA_SUCCEEDED = "mfa.succeeded"
MFA_FAILED = "mfa.failed"
MFA_ENROLLED = "mfa.enrolled"
MFA_REMOVED = "mfa.removed"
MFA_RESET = "mfa.reset"
MFA_RENAMED = "mfa.renamed"
KEY_ADDED = "security_key.added"
KEY_REMOVED = "security_key.removed"
KEY_RENAMED = "security_key.renamed"
KEY_USED = "security_key.used"
KEY_REFUSED = "security_key.refused"
#: A key's signature counter went backwards: two authenticators may hold the same key.
KEY_CLONE_SUSPECTED = "security_key.clone_suspected"
RESET_REQUESTED = "reset.requested"
RESET_USED = "reset.used"
RESET_EXPIRED = "reset.expired"
PASSWORD_CHANGED = "password.changed"
MEMBER_ADDED = "member.added"
MEMBER_ACCEPTED = "member.accepted"
MEMBER_REMOVED = "member.removed"
MEMBER_CHANGED = "member.changed"
MEMBER_DEACTIVATED = "member.deactivated"
LINKS_RESENT = "members.links_resent"
EMAIL_CHANGED = "account.email_changed"
PROVIDER_REASSIGNED = "member.provider_reassigned"
CLIENT_REGISTERED = "client.registered"
CLIENT_CHANGED = "client.changed"
CLIENT_DELETED = "client.deleted"
INITIAL_ACCESS_TOKEN_CREATED = "client.initial_access_token_created"
TOKEN_REVOKED = "token.revoked"
LOGOUT_NOTICE_FAILED = "logout_notice.failed"
CODE_REUSED = "code.reused"
REFRESH_REUSED = "refresh.reused"
TENANT_CREATED = "tenant.created"
TENANT_CHANGED = "tenant.changed"

#: Each event as a person says it (the audit page, its filter and the CSV download).
DESCRIPTIONS = {
    LOGIN_SUCCEEDED: "Logged in",
    LOGIN_FAILED: "Login failed",
    LOGIN_THROTTLED: "Login blocked after too many attempts",
    LOGOUT: "Signed out",
    SIGN_INS_ENDED: "Sign-ins ended",
    SESSION_ENDED: "Sign-in ended",
    MFA_SUCCEEDED: "Security code accepted",
    MFA_FAILED: "Security code refused",
    MFA_ENROLLED: "Authenticator app set up",
    MFA_REMOVED: "Authenticator app removed",
    MFA_RESET: "Two-step verification reset",
    MFA_RENAMED: "Authenticator app renamed",
    KEY_ADDED: "Security key or passkey added",
    KEY_REMOVED: "Security key or passkey removed",
    KEY_RENAMED: "Security key or passkey renamed",
    KEY_USED: "Security key or passkey used",
    KEY_REFUSED: "Security key or passkey refused",
    KEY_CLONE_SUSPECTED: "Security key may be copied (its counter went backwards)",
    RESET_REQUESTED: "Password link sent",
    RESET_USED: "Password link used",
    RESET_EXPIRED: "Dead password link opened",
    PASSWORD_CHANGED: "Password changed",
    MEMBER_ADDED: "User added",
    MEMBER_ACCEPTED: "User accepted the school",
    MEMBER_REMOVED: "User removed",
    MEMBER_CHANGED: "User's details changed",
    MEMBER_DEACTIVATED: "User deactivated",
    LINKS_RESENT: "Links sent again to the filtered users",
    EMAIL_CHANGED: "Email address changed",
    PROVIDER_REASSIGNED: "Authentication provider changed",
    CLIENT_REGISTERED: "Application registered",
    CLIENT_CHANGED: "Application changed",
    CLIENT_DELETED: "Application deleted",
    INITIAL_ACCESS_TOKEN_CREATED: "Initial access token created",
    TOKEN_REVOKED: "Token revoked",
    LOGOUT_NOTICE_FAILED: "Sign-out notice to an application failed",
    CODE_REUSED: "Authorisation code used twice (tokens revoked)",
    REFRESH_REUSED: "Refresh token used twice (tokens revoked)",
    TENANT_CREATED: "Tenant created",
    TENANT_CHANGED: "Tenant settings changed",
}

OUTCOMES = {"success": "Succeeded", "refused": "Refused", "failed": "Failed", "failure": "Failed", "throttled": "Blocked (too many attempts)",
            "accepted": "Accepted", "unknown_email": "Unknown email address", "inactive": "User deactivated",
            "delivery_failed": "Email could not be sent"}

#: Detail fields by the label a person reads; a key not here is shown with its underscores as spaces.
DETAIL_LABELS = {"amr": "Methods", "provider": "Account type", "to_provider": "New account type",
                 "from_provider": "Old account type", "purpose": "Link", "reason": "Reason",
                 "client_id": "Application", "email": "Email address", "tokens_revoked": "Tokens revoked",
                 "via": "How", "device": "Authenticator app", "devices": "Authenticator apps", "key": "Security key", "keys": "Security keys", "passkey": "Passkey",
                 "changes": "Changes", "changed": "Changed", "was": "Old name", "hidden": "Unknown addresses hidden",
                 "by_admin": "Sent by an administrator", "link_id": "Link number", "role": "Role",
                 "attempts": "Attempts", "sent": "Sent", "failed": "Could not be sent",
                 "skipped_recent": "Skipped (sent a link in the last 10 minutes)", "left": "Left for another press",
                 "filters": "Filters", "search": "Search", "link": "Link state", "token_type": "Token type", "method": "Method", "slug": "Tenant"}

#: Values that are codes, in words (sign-in methods, link purposes, provider keys...).
VALUE_WORDS = {"pwd": "password", "otp": "authenticator app code", "mfa": "two-step verification",
               "hwk": "security key", "swk": "passkey", "user": "fingerprint, face or PIN", "pin": "PIN", "reset": "password reset", "invite": "first-time password",
               "join": "accept the school", "identity": "CPOMS Identity", "sso": "CPOMS SSO",
               "reset_link": "password link", "account_settings": "Account settings", "admin": "Administrator",
               "staff": "Staff"}

#: Internal references that say nothing to a reader (the link's row number).
_HIDDEN_DETAILS = {"link_id"}


def _words(code: str) -> str:
    text = code.replace(".", " ").replace("_", " ").strip()
    return text[:1].upper() + text[1:] if text else "–"


def describe(event: str) -> str:
    """'login.succeeded' -> 'Logged in'; an event this list does not know yet -> 'Some thing happened'."""
    return DESCRIPTIONS.get(event) or _words(event or "")


def describe_outcome(outcome: str | None) -> str:
    return OUTCOMES.get(outcome or "", None) or _words(outcome or "")


def _value(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple, set)):
        return ", ".join(_value(item) for item in value) or "none"
    if isinstance(value, dict):
        return "; ".join(f"{_label(key)}: {_value(item)}" for key, item in value.items())
    if isinstance(value, str):
        return VALUE_WORDS.get(value, value)
    return str(value)


def _label(key: str) -> str:
    return DETAIL_LABELS.get(key) or _words(key)


def describe_detail(detail: dict | None) -> list[tuple[str, str]]:
    """An event's detail as (label, text) pairs: {'amr': ['pwd']} -> [('Methods', 'password')]."""
    return [(_label(key), _value(value)) for key, value in (detail or {}).items()
            if value is not None and key not in _HIDDEN_DETAILS]


def record(
    event: str,
    *,
    tenant=None,
    actor=None,
    subject=None,
    outcome: str = "success",
    ip: str | None = None,
    **detail,
) -> AuditEvent:
    entry = AuditEvent(
        event=event,
        outcome=outcome,
        tenant_id=getattr(tenant, "id", tenant),
        actor_account_id=getattr(actor, "id", actor),
        subject_account_id=getattr(subject, "id", subject),
        ip=ip,
        detail={k: v for k, v in detail.items() if v is not None},
    )
    db.session.add(entry)
    return entry
