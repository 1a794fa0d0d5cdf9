"""The authentication providers: the one list that forms, templates, mails and the CLI read.

Both providers share one login flow and one reset flow; a provider is a value
(its key), and this module says what it is called and how the help page describes
it. Which account an email means for each provider is `directory`'s business."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Provider:
    #: The value in forms, URLs (?provider=), the database and the CLI.
    key: str
    #: Its product name, as the help page writes it.
    name: str
    #: The short word the help page uses for the account type ("an 'Identity' user").
    short: str
    #: Who has this kind of account (the help page's wording).
    who: str
    #: What the account is, for an administrator choosing it.
    admin_hint: str

    @property
    def switch_text(self) -> str:
        """The help page's link beneath the Login button: 'Login using your CPOMS SSO account'."""
        return f"Login using your {self.name} account"

    @property
    def heading(self) -> str:
        return f"Log in with {self.name}"


IDENTITY = Provider(
    key="identity",
    name="CPOMS Identity",
    short="Identity",
    who="If you have access to one school or CPOMS system",
    admin_hint="An account for this school only, with its own password.",
)
SSO = Provider(
    key="sso",
    name="CPOMS SSO",
    short="SSO",
    who="If you have access to more than one CPOMS system (including CPOMS StaffSafe)",
    admin_hint="One account, with the same email address and password, for every CPOMS system the person "
               "uses.",
)

#: Every provider, in the order pages list them.
ALL = (IDENTITY, SSO)
BY_KEY = {provider.key: provider for provider in ALL}
KEYS = tuple(BY_KEY)


def get(key: str | None) -> Provider | None:
    return BY_KEY.get(key or "")


def name(key: str) -> str:
    """'CPOMS SSO' for 'sso'; an unknown key is shown as it is."""
    provider = BY_KEY.get(key)
    return provider.name if provider else key


def other(key: str) -> Provider:
    """The provider the login page's switch leads to."""
    return SSO if key == IDENTITY.key else IDENTITY
