"""Second factors: TOTP devices and recovery codes (issue 4 fills this in).

`sign_in_requirement` is the one question the sign-in and OIDC code ask."""

from __future__ import annotations

#: acr values advertised in discovery; a client asks for 2FA with acr_values=ACR_2FA.
ACR_PASSWORD = "urn:cpoms:acr:password"
ACR_2FA = "urn:cpoms:acr:2fa"
ACR_VALUES_SUPPORTED = [ACR_PASSWORD, ACR_2FA]


def sign_in_requirement(account, membership, amr, acr_2fa_requested: bool = False) -> str | None:
    """What must happen before `account` may use `membership`'s tenant with a sign-in of `amr`:
    None (nothing), "verify" (enter a code from an enrolled device) or "enrol" (set up a device first)."""
    return None


def acr_for(amr) -> str:
    return ACR_2FA if "otp" in (amr or ()) else ACR_PASSWORD
