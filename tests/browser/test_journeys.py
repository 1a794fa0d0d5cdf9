"""The journeys people take, in a real browser, with an axe-core check on
every page they see (no serious or critical accessibility violations)."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pyotp
import pytest
import requests
from playwright.sync_api import expect

from idp import clock

from tests.browser.conftest import ALEX, PAT, SAM

pytestmark = pytest.mark.browser

NEW_PASSWORD = "Blue-Kettle-Orbit-93!"


def header(page):
    return page.locator(".site-header")


def sign_in_at_idp(page, email: str, password: str) -> None:
    page.locator("#email").fill(email)
    page.locator("#password").fill(password)
    page.get_by_role("button", name="Login").click()


def expect_error_summary(page, *messages: str, javascript: bool = True) -> None:
    """GOV.UK's error summary: above the heading, focused (with JavaScript), each message a link to its field."""
    summary = page.locator(".error-summary")
    expect(summary).to_be_visible()
    if javascript:
        expect(summary).to_be_focused()
    expect(summary.locator("h2")).to_have_text("There is a problem")
    expect(page).to_have_title(re.compile(r"^Error: "))
    for message in messages:
        expect(summary).to_contain_text(message)
    assert page.evaluate("""() => {
        const summary = document.querySelector('.error-summary'), h1 = document.querySelector('main h1');
        return !!(summary.compareDocumentPosition(h1) & Node.DOCUMENT_POSITION_FOLLOWING);
    }"""), "the error summary must come before the page heading"
    links = summary.locator("a")
    assert links.count() > 0, "the error summary must link to the fields"
    for href in links.evaluate_all("(links) => links.map((a) => a.getAttribute('href'))"):
        assert href.startswith("#") and page.locator(href).count() == 1, f"{href} leads to no field"
        group = page.locator(".form-group--error", has=page.locator(href))
        expect(group.locator(".error-message").first).to_be_visible()


def expect_signed_in_at_app(page, app_home: str, name: str, tenant: str) -> None:
    expect(page).to_have_url(app_home)
    expect(page.locator("h1")).to_have_text(f"Signed in as {name}")
    expect(page.locator("#claim-tenant")).to_have_text(tenant)


def test_one_sso_sign_in_opens_a_second_school_and_staffsafe_without_a_password(page, demo, axe_check):
    page.goto(f"{demo.school}/oakwood/")
    axe_check(page)
    page.locator("#sign-in").click()

    expect(page).to_have_url(re.compile(re.escape(f"{demo.idp}/t/oakwood/login")))
    expect(header(page)).to_contain_text("Oakwood Primary School")
    expect(header(page)).to_contain_text("CPOMS")
    expect(page).to_have_title("Log in – Oakwood Primary School – CPOMS")
    axe_check(page)
    page.get_by_role("link", name="Login using your CPOMS SSO account").click()
    expect(page.locator("h1")).to_contain_text("with your CPOMS SSO account")
    axe_check(page)
    sign_in_at_idp(page, SAM, demo.password)
    expect_signed_in_at_app(page, f"{demo.school}/oakwood/", "Sam Jones", "oakwood")
    axe_check(page)

    page.goto(f"{demo.school}/elmfield/")
    page.locator("#sign-in").click()
    expect_signed_in_at_app(page, f"{demo.school}/elmfield/", "Sam Jones", "elmfield")

    page.goto(f"{demo.staffsafe}/oakwood-trust/")
    page.locator("#sign-in").click()
    expect_signed_in_at_app(page, f"{demo.staffsafe}/oakwood-trust/", "Sam Jones", "oakwood-trust")
    axe_check(page)


def test_identity_login_at_the_school_without_sso_users_shows_no_provider_switch(page, demo, axe_check):
    page.goto(f"{demo.school}/riverside/")
    page.locator("#sign-in").click()
    expect(page.locator("h1")).to_have_text("Log in to CPOMS")
    expect(header(page)).to_contain_text("Riverside Academy")
    expect(page.locator("#switch-provider")).to_have_count(0)
    expect(page.get_by_text("Login using your CPOMS SSO account")).to_have_count(0)
    axe_check(page)

    # A wrong password: GOV.UK error summary at the top, its link leading to the field.
    sign_in_at_idp(page, PAT, "Not-The-Password-1!")
    expect_error_summary(page, "Your email address or password was incorrect")
    axe_check(page)
    page.locator(".error-summary a").first.click()
    expect(page.locator("#email")).to_be_focused()

    page.locator("#password").fill(demo.password)
    page.get_by_role("button", name="Login").click()
    expect_signed_in_at_app(page, f"{demo.school}/riverside/", "Pat Lee", "riverside")


def test_forgotten_password_link_from_the_outbox_sets_a_password_that_meets_the_policy(
        page, demo, axe_check, frozen_clock):
    # The clock is frozen at 09:00 in London: a link sent just before midnight must not expire mid-test.
    page.goto(f"{demo.idp}/t/riverside/login")
    page.get_by_role("link", name=re.compile("Forgotten your password")).click()
    expect(page.locator("h1")).to_contain_text("Forgotten your password")
    expect(header(page)).to_contain_text("Riverside Academy")
    axe_check(page)
    page.get_by_role("button", name="Reset Password").click()
    expect_error_summary(page)
    axe_check(page)

    page.get_by_label("Email address").fill(PAT)
    page.get_by_role("button", name="Reset Password").click()
    axe_check(page)

    page.goto(f"{demo.idp}/dev/outbox")
    axe_check(page)
    page.locator("a[href*='/reset/']").first.click()
    expect(page.locator("h1")).to_have_text("Reset your password")
    expect(header(page)).to_contain_text("Riverside Academy")
    axe_check(page)

    page.locator("#password").fill("password")
    page.locator("#confirm").fill("password")
    page.get_by_role("button", name="Save password").click()
    expect_error_summary(page, "capital letter", "special character")
    expect(page.locator("#password-rules li[data-rule=capital]")).not_to_have_class(re.compile(r"\bmet\b"))
    axe_check(page)

    page.locator("#password").fill(NEW_PASSWORD)
    page.locator("#confirm").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save password").click()
    expect(page).to_have_url(re.compile(re.escape(f"{demo.idp}/t/riverside/login")))
    axe_check(page)
    sign_in_at_idp(page, PAT, NEW_PASSWORD)
    expect(page.locator("h1")).to_have_text("You are signed in")
    axe_check(page)


def test_two_factor_enrolment_then_login_with_a_code(page, demo, axe_check):
    page.goto(f"{demo.idp}/t/riverside/login")
    sign_in_at_idp(page, PAT, demo.password)
    page.get_by_role("link", name="Account settings > Security keys").click()
    expect(page.locator("h1")).to_have_text("Security keys")
    axe_check(page)

    page.get_by_label("Name").fill("My phone")
    page.get_by_role("button", name="Set up authenticator app").click()
    secret = page.locator("#secret").inner_text().replace(" ", "")
    axe_check(page)
    totp = pyotp.TOTP(secret)
    page.locator("#code").fill("000000" if totp.at(clock.timestamp()) != "000000" else "111111")
    page.get_by_role("button", name="Confirm authenticator app").click()
    expect_error_summary(page)
    axe_check(page)
    page.locator("#code").fill(totp.at(clock.timestamp()))
    page.get_by_role("button", name="Confirm authenticator app").click()
    expect(page.locator("h1")).to_have_text("Your recovery codes")
    expect(page.locator("#recovery-codes li")).not_to_have_count(0)
    axe_check(page)

    page.goto(f"{demo.idp}/t/riverside/")
    page.get_by_role("button", name="Sign out").click()

    page.goto(f"{demo.school}/riverside/")
    page.locator("#sign-in").click()
    sign_in_at_idp(page, PAT, demo.password)
    expect(page.locator("h1")).to_have_text("Enter your security code")
    expect(header(page)).to_contain_text("Riverside Academy")
    axe_check(page)
    # The enrolment used this time step's code; a code is good for one use, so the phone's next one.
    page.locator("#code").fill(totp.at(clock.timestamp() + 30))
    page.get_by_role("button", name="Continue").click()
    expect_signed_in_at_app(page, f"{demo.school}/riverside/", "Pat Lee", "riverside")
    expect(page.locator("#claim-amr")).to_contain_text("otp")


def test_admin_adds_a_user_and_assigns_a_provider(page, demo, axe_check):
    page.goto(f"{demo.idp}/t/oakwood/login?provider=identity")
    sign_in_at_idp(page, ALEX, demo.password)
    page.get_by_role("link", name="Admin > Users").click()
    expect(page.locator("h1")).to_have_text("Users")
    expect(header(page)).to_contain_text("Oakwood Primary School")
    axe_check(page)

    page.get_by_role("link", name="Add a user").click()
    axe_check(page)
    page.get_by_role("button", name="Add user").click()
    expect_error_summary(page, "Enter the user's email address", "Enter the user's name")
    axe_check(page)

    page.get_by_label("Email address").fill("jo.brown@oakwood.example.org")
    page.get_by_label("Name").fill("Jo Brown")
    page.get_by_label("Staff", exact=True).check()
    page.get_by_label("CPOMS Identity", exact=True).check()
    page.get_by_role("button", name="Add user").click()
    expect(page.locator("h1")).to_have_text("jo.brown@oakwood.example.org was added")
    axe_check(page)
    assert "/reset/" in demo.link_in_last_mail_to("jo.brown@oakwood.example.org")

    page.get_by_role("link", name="Open Jo Brown's profile").click()
    expect(page.locator("h1")).to_have_text("Jo Brown")
    axe_check(page)
    provider_form = page.locator("form", has=page.get_by_role("button", name="Change provider"))
    # A browser cannot clear a radio group by hand; a form sent without a choice must still be explained.
    provider_form.locator("input[type=radio]").evaluate_all("(radios) => radios.forEach((r) => { r.checked = false; })")
    page.get_by_role("button", name="Change provider").click()
    expect_error_summary(page, "Choose an authentication provider")
    axe_check(page)
    page.locator(".error-summary").get_by_role("link", name="Choose an authentication provider").click()
    expect(provider_form.get_by_label("CPOMS Identity", exact=True)).to_be_focused()
    provider_form.get_by_label("CPOMS SSO", exact=True).check()
    page.get_by_role("button", name="Change provider").click()
    expect(page.locator(".notification--success")).to_contain_text("authentication provider was changed")
    expect(page.locator("p.hint").first).to_contain_text("CPOMS SSO")
    axe_check(page)

    page.get_by_role("link", name="Users", exact=True).click()
    expect(page.get_by_role("row", name=re.compile("Jo Brown"))).to_contain_text("CPOMS SSO")


def test_sign_out_everywhere_makes_every_app_ask_for_the_password_again(page, demo, axe_check):
    page.goto(f"{demo.staffsafe}/oakwood-trust/")
    page.locator("#sign-in").click()
    expect(page.locator("h1")).to_have_text("Log in to CPOMS StaffSafe with your CPOMS SSO account")
    expect(header(page)).to_contain_text("Oakwood Trust StaffSafe")
    expect(page).to_have_title("Log in – Oakwood Trust StaffSafe – CPOMS StaffSafe")
    axe_check(page)
    # Every member of the StaffSafe tenant uses SSO, so its login page opens on SSO.
    expect(page.locator("#switch-provider")).to_have_text("Login using your CPOMS Identity account")
    sign_in_at_idp(page, SAM, demo.password)
    expect_signed_in_at_app(page, f"{demo.staffsafe}/oakwood-trust/", "Sam Jones", "oakwood-trust")

    page.goto(f"{demo.school}/oakwood/")
    page.locator("#sign-in").click()
    expect_signed_in_at_app(page, f"{demo.school}/oakwood/", "Sam Jones", "oakwood")

    # Account settings > Where you're signed in: this browser, with where the sign-in began.
    page.goto(f"{demo.idp}/account/sessions?tenant=oakwood-trust")
    expect(page.locator("h1")).to_have_text("Where you're signed in")
    expect(page.locator("#sessions .this-device")).to_contain_text("This browser")
    expect(page.locator("#sessions .this-device")).to_contain_text("Oakwood Trust StaffSafe")
    axe_check(page)
    page.goto(f"{demo.school}/oakwood/")

    page.get_by_role("button", name="Sign out everywhere").click()
    if page.url.startswith(demo.idp):  # the IdP may ask to confirm
        axe_check(page)
        page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{demo.school}/oakwood/")
    expect(page.get_by_text("You have signed out everywhere")).to_be_visible()
    axe_check(page)

    # The StaffSafe app was told by back-channel logout (the worker delivers within moments): its own
    # session is gone too, without anyone visiting it.
    deadline = time.monotonic() + 10
    while True:
        page.goto(f"{demo.staffsafe}/oakwood-trust/")
        if page.locator("#sign-in").count() or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    expect(page.locator("#sign-in")).to_be_visible()
    for app_home in (f"{demo.staffsafe}/oakwood-trust/", f"{demo.school}/elmfield/"):
        page.goto(app_home)
        page.locator("#sign-in").click()
        expect(page).to_have_url(re.compile(re.escape(demo.idp) + r"/t/[a-z-]+/login"))
        expect(page.locator("#password")).to_be_visible()


def test_error_pages_are_accessible(page, demo, axe_check):
    response = page.goto(f"{demo.idp}/t/no-such-school/login")
    assert response.status == 404
    expect(page.locator("h1")).to_be_visible()
    axe_check(page)

    response = page.goto(f"{demo.idp}/authorize?client_id=nobody&response_type=code&scope=openid"
                         "&redirect_uri=http://127.0.0.1:1/cb")
    assert response.status == 400
    expect(page.locator("h1")).to_be_visible()
    axe_check(page)

    response = page.goto(f"{demo.idp}/reset/not-a-real-link")
    assert response.status in (200, 404, 410)
    expect(page.locator("h1")).to_be_visible()
    axe_check(page)


def test_a_link_opened_after_midnight_has_expired_and_offers_a_new_one(page, demo, axe_check, frozen_clock):
    page.goto(f"{demo.idp}/t/riverside/forgot-password")
    page.get_by_label("Email address").fill(PAT)
    page.get_by_role("button", name="Reset Password").click()
    link = demo.link_in_last_mail_to(PAT)

    frozen_clock.advance(timedelta(days=1))
    page.goto(link)
    expect(page.locator("h1")).to_have_text("This link has expired")
    expect(header(page)).to_contain_text("Riverside Academy")
    axe_check(page)
    page.get_by_role("button", name="Send a new link").click()
    axe_check(page)
    assert demo.link_in_last_mail_to(PAT) != link


def test_login_and_password_reset_work_without_javascript(page_without_js, demo, frozen_clock):
    # frozen_clock: 09:00 in London, far from the reset link's midnight expiry.
    page = page_without_js
    page.goto(f"{demo.idp}/t/oakwood/login")
    expect(header(page)).to_contain_text("Oakwood Primary School")
    page.get_by_role("link", name="Login using your CPOMS SSO account").click()
    sign_in_at_idp(page, SAM, "wrong-password")
    expect_error_summary(page, "Your email address or password was incorrect", javascript=False)

    page.get_by_role("link", name=re.compile("Forgotten your password")).click()
    page.get_by_label("Email address").fill(SAM)
    page.get_by_label("CPOMS SSO", exact=True).check()
    page.get_by_role("button", name="Reset Password").click()

    page.goto(demo.link_in_last_mail_to(SAM))
    expect(page.locator("h1")).to_have_text("Reset your password")
    page.locator("#password").fill("short")
    page.locator("#confirm").fill("short")
    page.get_by_role("button", name="Save password").click()
    expect_error_summary(page, "at least 8 characters", javascript=False)
    page.locator("#password").fill(NEW_PASSWORD)
    page.locator("#confirm").fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save password").click()

    expect(page).to_have_url(re.compile(re.escape(f"{demo.idp}/t/oakwood/login")))
    sign_in_at_idp(page, SAM, NEW_PASSWORD)
    expect(page.locator("h1")).to_have_text("You are signed in")
    expect(page.locator("main")).to_contain_text("CPOMS SSO")


def test_the_accessibility_check_catches_an_unlabelled_field(page, demo, axe_check):
    # The check itself must bite: a page of ours with its label taken away fails it.
    page.goto(f"{demo.idp}/t/riverside/login")
    page.evaluate("() => document.querySelector('label[for=email]').remove()")
    try:
        axe_check(page)
    except AssertionError as failure:
        assert '"id": "label"' in str(failure)
    else:
        raise AssertionError("axe-core did not notice an input without a label")


def check_blank_form_and_its_errors(page, url, axe_check):
    """The form as it opens, then sent empty: both pages pass axe, the second with its error summary."""
    page.goto(url)
    axe_check(page)
    page.locator("main form").get_by_role("button").last.click()
    expect_error_summary(page)
    axe_check(page)


def test_admin_account_and_operator_pages_are_accessible(page, demo, axe_check):
    page.goto(f"{demo.idp}/t/oakwood/login?provider=identity")
    sign_in_at_idp(page, ALEX, demo.password)
    for path in ("/t/oakwood/admin/applications", "/t/oakwood/admin/audit", "/t/oakwood/admin/users/import",
                 "/account/security?tenant=oakwood"):
        page.goto(demo.idp + path)
        expect(page.locator("h1")).to_be_visible()
        axe_check(page)
    check_blank_form_and_its_errors(page, f"{demo.idp}/t/oakwood/admin/applications/new", axe_check)

    page.goto(f"{demo.idp}/t/oakwood/")
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("h1")).to_be_visible()
    axe_check(page)

    # A relying party's logout request without an ID token: the IdP asks before signing out.
    page.goto(f"{demo.idp}/t/oakwood-trust/login?provider=sso")
    sign_in_at_idp(page, "ops@cpoms.example.org", demo.password)
    page.goto(f"{demo.idp}/admin")
    # An operator's first visit: a second factor first (operators see every school).
    expect(page.locator("#enrolment-required")).to_contain_text("platform operators must use two-step verification")
    axe_check(page)
    page.get_by_label("Name").fill("My phone")
    page.get_by_role("button", name="Set up authenticator app").click()
    totp = pyotp.TOTP(page.locator("#secret").inner_text().replace(" ", ""))
    page.locator("#code").fill(totp.at(clock.timestamp()))
    page.get_by_role("button", name="Confirm authenticator app").click()
    expect(page.locator("h1")).to_have_text("Your recovery codes")
    page.goto(f"{demo.idp}/admin")
    expect(page.locator("h1")).to_be_visible()
    axe_check(page)
    check_blank_form_and_its_errors(page, f"{demo.idp}/admin/tenants/new", axe_check)
    end_session = requests.get(f"{demo.idp}/.well-known/openid-configuration", timeout=10).json()[
        "end_session_endpoint"]
    page.goto(end_session)
    expect(page.locator("h1")).to_have_text("Do you want to sign out of CPOMS?")
    axe_check(page)
