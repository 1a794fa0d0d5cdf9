"""Second factors named plainly and the same everywhere ("authenticator app" for the app,
"two-step verification" for the whole), and recovery codes that can be copied, downloaded and
printed; on a phone, the setup page opens the authenticator app directly."""

from __future__ import annotations

import re
from pathlib import Path

import pyotp

from idp import clock
from idp.accounts import mfa

from .conftest import RECOVERY_RE
from .test_enrolment import confirm, start_enrolment

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
#: Words for the same things that the pages no longer use.
OTHER_NAMES = re.compile(r"\b(two-factor|2FA|TOTP|MFA|device|2FA app|authenticator device)\b", re.IGNORECASE)


def _visible_text(template: str) -> str:
    text = re.sub(r"{#.*?#}|{%.*?%}|{{.*?}}", " ", template, flags=re.DOTALL)
    text = re.sub(r"<script.*?</script>|<style.*?</style>", " ", text, flags=re.DOTALL)
    return re.sub(r"<[^>]+>", " ", text)


def test_pages_and_mails_use_one_name_for_each_second_factor():
    found = []
    for path in sorted(TEMPLATES.rglob("*")):
        if path.suffix in (".html", ".txt"):
            for match in OTHER_NAMES.finditer(_visible_text(path.read_text())):
                found.append(f"{path.relative_to(TEMPLATES)}: {match.group(0)}")
    assert not found, found


def test_messages_name_the_authenticator_app_and_two_step_verification():
    for name in ("LOCKED_MESSAGE", "RECOVERY_LOCKED_MESSAGE", "LAST_DEVICE_REQUIRED_MESSAGE",
                 "OPERATOR_LAST_DEVICE_MESSAGE"):
        message = getattr(mfa, name)
        assert not OTHER_NAMES.search(message) and "security key" not in message, name


def test_setup_page_offers_the_otpauth_link_beside_the_qr_code(browser, world, frozen_clock):
    browser.login("beech", "pat.lee@example.org")
    _, html, secret = start_enrolment(browser)
    link = re.search(r'<a href="(otpauth://[^"]+)" id="otpauth-link">Open in authenticator app</a>', html)
    assert link and f"secret={secret}" in link.group(1).replace("&amp;", "&")
    assert html.index('id="qr-code"') < html.index('id="otpauth-link"') < html.index('id="secret"')


def test_recovery_codes_can_be_copied_downloaded_and_printed(browser, world, frozen_clock):
    browser.login("beech", "pat.lee@example.org")
    confirm_url, _, secret = start_enrolment(browser)
    html = confirm(browser, confirm_url, pyotp.TOTP(secret).at(clock.timestamp())).get_data(as_text=True)
    assert len(RECOVERY_RE.findall(html)) == 10
    for action, label in (("copy", "Copy codes"), ("download", "Download as a text file"), ("print", "Print")):
        assert f'data-action="{action}">{label}</button>' in html
    assert 'data-filename="cpoms-recovery-codes.txt"' in html and "recovery-codes.js" in html
    assert "<script>" not in html  # the CSP allows our own files only


def test_the_print_stylesheet_leaves_only_the_content(app):
    css = (Path(app.static_folder) / "idp.css").read_text()
    assert re.search(r"@media print \{[^@]*\.site-header, \.site-footer[^}]*display: none", css)
    assert (Path(app.static_folder) / "recovery-codes.js").is_file()
