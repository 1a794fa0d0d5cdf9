"""The "use this login from now on" mail works with either documented form of IDP_MAIL_FROM."""

from dataclasses import replace

import pytest

from idp.mail import messages


@pytest.mark.parametrize("mail_from, expected", [
    ("notifications@cpoms.net", "CPOMS <notifications@cpoms.net>"),
    ("CPOMS Notifications <notifications@cpoms.net>", "CPOMS Notifications <notifications@cpoms.net>"),
])
def test_provider_change_notice_is_sent_from_a_named_sender_address(app, world, mail_from, expected):
    app.config["SETTINGS"] = replace(app.config["SETTINGS"], mail_from=mail_from)
    message = messages.provider_changed(account=world.oakwood_identity, tenant=world.oakwood, provider="sso")
    assert str(message["From"]) == expected
