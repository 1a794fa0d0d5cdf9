"""Delivery backends chosen by Settings.mail_url.

- ``outbox`` (default): each message is written as an .eml file under
  ``<instance>/outbox/`` (development; the /dev/outbox page lists them).
- ``smtp://user:pass@host:port``: SMTP upgraded with STARTTLS. In production the upgrade is
  required: a server that does not offer it gets nothing (credentials and reset links never
  travel in the clear); in development it is used whenever offered. ``smtps://...``: TLS from
  the first byte.

Failures raise MailNotSent. Nothing here logs a message body: mails carry reset
links, and logs must never hold them."""

from __future__ import annotations

import logging
import smtplib
import ssl
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from urllib.parse import unquote, urlsplit

from flask import current_app, g

from .. import clock, outages
from ..errors import DeliveryFailed

log = logging.getLogger(__name__)

#: Seconds to wait for the mail server before telling the user to try again.
SMTP_TIMEOUT = 15
TEMPORARY_ERROR = (
    "Sorry, we could not send the email just now. No link has been sent. "
    "Please try again in a few minutes."
)


class MailNotSent(DeliveryFailed):
    """The mail server refused or could not be reached: a temporary error for the user."""

    def __init__(self, message: str = TEMPORARY_ERROR):
        super().__init__(message)


@dataclass(frozen=True)
class OutboxBackend:
    folder: Path

    def deliver(self, message: EmailMessage) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = clock.now().strftime("%Y%m%dT%H%M%S")
        path = self.folder / f"{stamp}-{uuid.uuid4().hex[:12]}.eml"
        path.write_bytes(bytes(message))


@dataclass(frozen=True)
class SmtpBackend:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    implicit_tls: bool = False
    #: Refuse to send (or log in) over a connection that could not be upgraded to TLS.
    require_tls: bool = False

    def open(self) -> smtplib.SMTP:
        """A connection ready to send: TLS (implicit, or STARTTLS when offered) and logged in."""
        context = ssl.create_default_context()
        if self.implicit_tls:
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=SMTP_TIMEOUT, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=SMTP_TIMEOUT)
        try:
            smtp.ehlo()
            if not self.implicit_tls and smtp.has_extn("starttls"):
                smtp.starttls(context=context)
                smtp.ehlo()
            elif not self.implicit_tls and self.require_tls:
                raise smtplib.SMTPNotSupportedError("the mail server does not offer STARTTLS; refusing to send in the clear")
            if self.username:
                smtp.login(self.username, self.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def deliver(self, message: EmailMessage) -> None:
        with self.open() as smtp:
            smtp.send_message(message)


class _SharedConnection:
    """One SMTP connection for the messages of a batch(), opened at the first of them."""

    def __init__(self):
        self.smtp: smtplib.SMTP | None = None

    def deliver(self, backend: SmtpBackend, message: EmailMessage) -> None:
        if self.smtp is not None:
            try:
                self.smtp.send_message(message)
                return
            except smtplib.SMTPServerDisconnected:
                self.close()  # dropped between two messages (idle timeout): connect again, once
        self.smtp = backend.open()
        self.smtp.send_message(message)

    def close(self) -> None:
        smtp, self.smtp = self.smtp, None
        if smtp is not None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()


_BATCH_KEY = "idp_mail_batch"


@contextmanager
def batch():
    """Messages sent inside share one SMTP connection (an import's invitations), instead of
    connecting, negotiating TLS and logging in again for each. Nested batches share the outer one."""
    if g.get(_BATCH_KEY) is not None:
        yield
        return
    shared = g.setdefault(_BATCH_KEY, _SharedConnection())
    try:
        yield
    finally:
        g.pop(_BATCH_KEY, None)
        shared.close()


def backend_from_url(url: str, outbox: Path, *, require_tls: bool = False):
    """The backend a mail URL names (ValueError for anything else)."""
    if not url or url == "outbox":
        return OutboxBackend(Path(outbox))
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("IDP_MAIL_URL must be 'outbox', smtp://user:pass@host:port or smtps://...")
    implicit_tls = parts.scheme == "smtps"
    return SmtpBackend(
        host=parts.hostname,
        port=parts.port or (465 if implicit_tls else 25),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        implicit_tls=implicit_tls,
        require_tls=require_tls,
    )


def current_backend():
    settings = current_app.config["SETTINGS"]
    return backend_from_url(settings.mail_url, settings.outbox_path, require_tls=settings.is_production)


def send(message: EmailMessage) -> None:
    """Hand `message` to the configured backend; MailNotSent when that fails."""
    settings = current_app.config["SETTINGS"]
    if "From" not in message:
        message["From"] = settings.mail_from
    if "Date" not in message:
        message["Date"] = format_datetime(clock.now())
    if "Message-ID" not in message:
        message["Message-ID"] = make_msgid(domain=parseaddr(settings.mail_from)[1].rpartition("@")[2] or None)
    try:
        backend = current_backend()
    except ValueError as error:
        log.error("mail %r to %s not sent: %s", message.get("X-IDP-Kind", "message"), message.get("To"), error)
        raise MailNotSent() from None
    outages.sent_outside()  # a request that mailed someone must not be run again (idp.outages)
    shared = g.get(_BATCH_KEY)
    try:
        if shared is not None and isinstance(backend, SmtpBackend):
            shared.deliver(backend, message)
        else:
            backend.deliver(message)
    except (smtplib.SMTPException, OSError) as error:
        # The class and SMTP code say what went wrong; the body (with its link) is never logged.
        log.error(
            "mail %r to %s not sent through %s: %s %s",
            message.get("X-IDP-Kind", "message"), message.get("To"), type(backend).__name__,
            type(error).__name__, getattr(error, "smtp_code", "") or getattr(error, "errno", "") or "",
        )
        raise MailNotSent() from None


def sent(send) -> bool:
    """Run `send`, a mail the change in hand does not depend on: False when it could not go (the
    reason is logged where it failed), and the change stands."""
    try:
        send()
    except DeliveryFailed:
        return False
    return True
