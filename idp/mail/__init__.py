"""Outgoing mail: `send(message)` through the backend IDP_MAIL_URL names (the
outbox folder or an SMTP server), and one builder per message in `messages`."""

from .delivery import MailNotSent, send, sent  # noqa: F401
