"""Mail the admin area sends on its own: "use this login from now on" after a provider change
(the message itself is built in `idp.mail.messages`)."""

from __future__ import annotations

import logging

from .. import mail
from ..errors import DeliveryFailed
from ..mail import messages

log = logging.getLogger(__name__)


def send_provider_changed(account, tenant, provider: str) -> bool:
    """Tell the person which login to use from now on. A mail failure does not undo the change."""
    try:
        mail.send(messages.provider_changed(account=account, tenant=tenant, provider=provider))
    except DeliveryFailed:
        log.warning("provider change notice for account %s in %s not sent", account.id, tenant.slug)
        return False
    return True
