"""Every page at a phone's width (390 px) and a desktop's (1280 px): a screenshot of each into
tests/artifacts/sweep/ (git-ignored), no sideways scroll, and no serious axe-core violation.
One browser context per width, signed in once as Oakwood's admin, keeps it quick."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import ALEX, ARTIFACTS, CHROMIUM  # noqa: F401

pytestmark = pytest.mark.browser

SHOTS = ARTIFACTS / "sweep"
WIDTHS = {"phone": (390, 844), "desktop": (1280, 800)}

SIGNED_OUT_PAGES = ["/t/oakwood/login", "/t/oakwood/login?provider=sso", "/t/oakwood/forgot-password",
                    "/reset/not-a-real-link", "/t/no-such-school/login", "/login"]
ADMIN_PAGES = ["/t/oakwood/", "/account/security?tenant=oakwood", "/account/password?tenant=oakwood",
               "/account/sessions?tenant=oakwood", "/t/oakwood/admin/users", "/t/oakwood/admin/users?link=invited",
               "/t/oakwood/admin/users/new", "/t/oakwood/admin/users/import", "/t/oakwood/admin/audit",
               "/t/oakwood/admin/applications", "/dev/outbox"]


def _check(page, axe_check, width_name: str, path: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9]+", "_", path).strip("_") or "root"
    page.screenshot(path=str(SHOTS / f"{width_name}-{name}.png"), full_page=True)
    wide = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    culprits = page.evaluate("""() => Array.from(document.querySelectorAll('body *'))
        .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 0.5)
        .slice(0, 5).map((el) => el.tagName + '.' + el.className + '#' + el.id)""") if wide[0] > wide[1] else []
    assert wide[0] <= wide[1], f"{path} scrolls sideways at {width_name}: {wide} {culprits}"
    axe_check(page)


@pytest.mark.parametrize("width_name", list(WIDTHS))
def test_every_page_fits_the_width_and_passes_axe(chromium, demo, axe_check, width_name):
    width, height = WIDTHS[width_name]
    context = chromium.new_context(locale="en-GB", viewport={"width": width, "height": height})
    context.set_default_timeout(15_000)
    page = context.new_page()
    try:
        for path in SIGNED_OUT_PAGES:
            page.goto(demo.idp + path)
            _check(page, axe_check, width_name, path)
        # Link sent, then the set-password page its mail leads to.
        page.goto(f"{demo.idp}/t/oakwood/forgot-password")
        page.get_by_label("Email address").fill(ALEX)
        page.get_by_role("button", name="Reset Password").click()
        _check(page, axe_check, width_name, "link-sent")
        page.goto(demo.link_in_last_mail_to(ALEX))
        _check(page, axe_check, width_name, "set-password")
        page.goto(f"{demo.idp}/t/oakwood/login")
        page.locator("#email").fill(ALEX)
        page.locator("#password").fill(demo.password)
        page.get_by_role("button", name="Login").click()
        for path in ADMIN_PAGES:
            page.goto(demo.idp + path)
            _check(page, axe_check, width_name, path)
        page.goto(f"{demo.idp}/t/oakwood/admin/users")
        page.locator("#members a").first.click()
        _check(page, axe_check, width_name, "member")
        page.locator("#signed-in button").click()
        _check(page, axe_check, width_name, "signed-out")
    finally:
        context.close()
