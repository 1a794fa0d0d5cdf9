"""Recording security events in the append-only audit log.

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
RESET_REQUESTED = "reset.requested"
RESET_USED = "reset.used"
RESET_EXPIRED = "reset.expired"
PASSWORD_CHANGED = "password.changed"
MEMBER_ADDED = "member.added"
MEMBER_ACCEPTED = "member.accepted"
MEMBER_REMOVED = "member.removed"
MEMBER_CHANGED = "member.changed"
MEMBER_DEACTIVATED = "member.deactivated"
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
