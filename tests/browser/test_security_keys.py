"""Security keys and passkeys in a real browser, with Chromium's virtual authenticator (DevTools
protocol): register a key, use it as the second step, sign in with a passkey alone, and meet the
demo school app's phishing-resistant step-up. WebAuthn needs the RP id to be a host name, so the
identity provider is served here as http://localhost:<port>."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PAT, LocalServer
from tests.browser.test_journeys import sign_in_at_idp

pytestmark = pytest.mark.browser

PHR = "urn:cpoms:acr:phr"


@pytest.fixture
def idp_server():
    server = LocalServer()
    server.url = server.url.replace("127.0.0.1", "localhost")
    return server


def virtual_authenticator(page, cdp=None):
    """A USB key plugged in (Chromium's virtual authenticator): (the DevTools session, its id)."""
    cdp = cdp or page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "usb", "hasResidentKey": True, "hasUserVerification": True,
        "isUserVerified": True, "automaticPresenceSimulation": True}})
    return cdp, added["authenticatorId"]


def sign_in_at_riverside(page, demo):
    page.goto(f"{demo.school}/riverside/")
    page.locator("#sign-in").click()
    sign_in_at_idp(page, PAT, demo.password)
    expect(page.locator("h1")).to_have_text("Signed in as Pat Lee")


def add_key(page, demo, axe_check, *, name: str, passkey: bool = False):
    page.goto(f"{demo.idp}/account/security?tenant=riverside")
    expect(page.locator("form[data-webauthn=create]")).to_be_visible()
    axe_check(page)
    page.locator("#key-name").fill(name)
    if passkey:
        page.locator("#kind-passkey").check()
    # Keyboard only: the button takes focus and Enter presses it.
    page.get_by_role("button", name="Add security key or passkey").focus()
    page.keyboard.press("Enter")


def sign_out_everywhere(page, demo):
    page.goto(f"{demo.school}/riverside/")
    page.locator("#sign-out-everywhere").click()
    expect(page.locator("#sign-in")).to_be_visible()


def test_a_security_key_is_the_second_step_and_meets_the_schools_step_up(page, demo, axe_check):
    virtual_authenticator(page)
    sign_in_at_riverside(page, demo)
    add_key(page, demo, axe_check, name="Blue USB key")
    expect(page.locator("h1")).to_have_text("Your recovery codes")
    page.goto(f"{demo.idp}/account/security?tenant=riverside")
    expect(page.locator("#keys")).to_contain_text("Blue USB key")
    axe_check(page)

    # The demo app asks for the phishing-resistant level (acr_values).
    page.goto(f"{demo.school}/riverside/")
    page.locator("#sensitive-records").click()
    expect(page.locator("h1")).to_have_text("Use your security key")
    axe_check(page)
    page.get_by_role("button", name="Use security key").click()
    expect(page.locator("#claim-acr")).to_have_text(PHR)
    expect(page.locator("#claim-amr")).to_contain_text("hwk")

    sign_out_everywhere(page, demo)
    page.locator("#sign-in").click()
    sign_in_at_idp(page, PAT, demo.password)
    expect(page.locator("h1")).to_have_text("Enter your security code")
    axe_check(page)
    page.get_by_role("button", name="Use security key").click()
    expect(page.locator("h1")).to_have_text("Signed in as Pat Lee")
    expect(page.locator("#claim-amr")).to_contain_text("pwd, hwk, mfa")


def test_a_passkey_signs_in_alone(page, demo, axe_check):
    virtual_authenticator(page)
    sign_in_at_riverside(page, demo)
    add_key(page, demo, axe_check, name="My laptop", passkey=True)
    expect(page.locator("h1")).to_have_text("Your recovery codes")
    sign_out_everywhere(page, demo)

    page.locator("#sign-in").click()
    expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_visible()
    axe_check(page)
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.locator("h1")).to_have_text("Signed in as Pat Lee")
    expect(page.locator("#claim-amr")).to_have_text("hwk, user, mfa")
    expect(page.locator("#claim-acr")).to_have_text(PHR)


def test_without_webauthn_the_page_says_so_and_offers_the_password(page, demo):
    page.add_init_script("delete window.PublicKeyCredential")
    page.goto(f"{demo.idp}/t/riverside/login")
    expect(page.get_by_text(re.compile("Your browser cannot use passkeys here"))).to_be_visible()
    expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_hidden()
    expect(page.get_by_role("button", name="Login")).to_be_visible()


def test_a_second_key_is_added_after_touching_the_first(page, demo, axe_check):
    """Adding a key to an account that has one asks for one of its keys first (a relayed code
    must not add a thief's key): the page says so, and the person confirms and comes back."""
    cdp, first = virtual_authenticator(page)
    sign_in_at_riverside(page, demo)
    add_key(page, demo, axe_check, name="Blue USB key")
    expect(page.locator("h1")).to_have_text("Your recovery codes")

    page.goto(f"{demo.idp}/account/security?tenant=riverside")
    expect(page.locator("#confirm-first")).to_contain_text("first confirm it is you")
    axe_check(page)
    page.locator("#confirm-to-add-key").focus()
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Confirm it is you")
    axe_check(page)
    page.get_by_role("button", name="Use security key").click()
    expect(page.locator("h1")).to_have_text("Security keys")
    # The spare key is another key: unplug the first, plug in the second.
    cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": first})
    virtual_authenticator(page, cdp)
    add_key(page, demo, axe_check, name="Spare key")
    expect(page.locator("#keys")).to_contain_text("Spare key")
    expect(page.locator("#keys")).to_contain_text("Blue USB key")
