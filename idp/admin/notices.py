"""Mail the admin area sends on its own: "use this login from now on" after a provider change.

Built like the messages in `idp.mail.messages` (plain text + HTML from templates) but kept with the
admin area's templates, and handed to `idp.mail.send`."""

from __future__ import annotations

import logging
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import parseaddr
from urllib.parse import urlencode

from flask import current_app, render_template

from .. import mail
from ..errors import DeliveryFailed
from ..models.accounts import PROVIDER_NAMES

log = logging.getLogger(__name__)


def login_url(tenant, provider: str) -> str:
    issuer = current_app.config["SETTINGS"].issuer.rstrip("/")
    return f"{issuer}/t/{tenant.slug}/login?{urlencode({'provider': provider})}"


def provider_changed(account, tenant, provider: str) -> EmailMessage:
    settings = current_app.config["SETTINGS"]
    context = dict(
        name=account.name if account.name and account.name != account.email else "",
        email=account.email,
        school=tenant.name,
        product=tenant.product_name,
        provider=provider,
        provider_name=PROVIDER_NAMES[provider],
        login_url=login_url(tenant, provider),
        has_password=account.has_password,
        mail_from=settings.mail_from,
    )
    message = EmailMessage()
    message["Subject"] = " ".join(render_template("admin/mail/provider_changed/subject.txt", **context).split())
    # IDP_MAIL_FROM may be "Name <address>" (as for reset mails): a bare Address() of that would raise.
    display_name, address = parseaddr(settings.mail_from)
    message["From"] = Address(display_name=display_name or "CPOMS", addr_spec=address or settings.mail_from)
    message["To"] = account.email
    message["X-IDP-Kind"] = "provider_changed"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(render_template("admin/mail/provider_changed/body.txt", **context))
    message.add_alternative(render_template("admin/mail/provider_changed/body.html", **context), subtype="html")
    return message


def send_provider_changed(account, tenant, provider: str) -> bool:
    """Tell the person which login to use from now on. A mail failure does not undo the change."""
    try:
        mail.send(provider_changed(account, tenant, provider))
    except DeliveryFailed:
        log.warning("provider change notice for account %s in %s not sent", account.id, tenant.slug)
        return False
    return True
