"""Wrong passwords slow guessers down without letting a stranger lock the owner out.

Guesses from one address lock that address out of that account (5 a minute, 20 an hour); the
owner signing in from anywhere else is not affected. Every address together has a much higher
ceiling on one account, past which attempts are slowed to one a minute rather than refused
(NIST SP 800-63B 5.2.2). The per-address limits of the whole login page stay."""

from __future__ import annotations

from datetime import timedelta

import pytest

from idp import audit
from idp.auth.service import LOGIN_PACED_MESSAGE, LOGIN_THROTTLED_MESSAGE
from tests.conftest import PASSWORD

FAILED = "Your email address or password was incorrect"
THROTTLED = LOGIN_THROTTLED_MESSAGE.split(".")[0]
PACED = LOGIN_PACED_MESSAGE.split(",")[0]


@pytest.fixture
def throttle_clock(frozen_clock, monkeypatch):
    """The throttles' counting windows follow the frozen clock (the limits library reads time.time()),
    so a test moves past a window without sleeping."""
    import limits.storage.memory
    import limits.strategies

    class FrozenTime:
        def __getattr__(self, name):
            import time

            return getattr(time, name)

        @staticmethod
        def time() -> float:
            return frozen_clock.now().timestamp()

    monkeypatch.setattr(limits.storage.memory, "time", FrozenTime())
    monkeypatch.setattr(limits.strategies, "time", FrozenTime())
    return frozen_clock


def login_from(browser, address: str, email: str, password: str, slug: str = "beech", provider: str = "identity"):
    browser.client.environ_base["REMOTE_ADDR"] = address
    return browser.login(slug, email, password, provider=provider)


def text(response) -> str:
    return response.get_data(as_text=True)


def test_guesses_from_one_address_lock_only_that_address(browser, world):
    for _ in range(5):
        assert FAILED in text(login_from(browser, "203.0.113.66", "pat.lee@example.org", "wrong"))
    locked = login_from(browser, "203.0.113.66", "pat.lee@example.org", PASSWORD)
    assert locked.status_code == 429 and THROTTLED in text(locked)
    # The owner, at school, is not locked out by the stranger's guesses.
    assert login_from(browser, "198.51.100.7", "pat.lee@example.org", PASSWORD).status_code == 302


def test_the_address_lock_lifts_after_a_minute(browser, world, throttle_clock):
    for _ in range(5):
        login_from(browser, "203.0.113.66", "pat.lee@example.org", "wrong")
    assert login_from(browser, "203.0.113.66", "pat.lee@example.org", PASSWORD).status_code == 429
    throttle_clock.advance(timedelta(seconds=61))
    assert login_from(browser, "203.0.113.66", "pat.lee@example.org", PASSWORD).status_code == 302


@pytest.fixture
def low_ceiling(app):
    app.config["THROTTLE_RULES"] = {"login-account": "6 per hour"}


def test_guesses_spread_over_many_addresses_slow_every_attempt_but_never_lock_the_owner(
        browser, world, throttle_clock, low_ceiling):
    for n in range(6):  # six strangers' addresses, each well inside its own limit
        assert FAILED in text(login_from(browser, f"203.0.113.{n + 1}", "pat.lee@example.org", "wrong"))
    # Past the account's ceiling one attempt a minute goes through, from any address...
    assert FAILED in text(login_from(browser, "203.0.113.50", "pat.lee@example.org", "wrong"))
    slowed = login_from(browser, "198.51.100.7", "pat.lee@example.org", PASSWORD)
    assert slowed.status_code == 429 and PACED in text(slowed)
    # ...so the owner waits a minute at most, and is then let in with the right password.
    throttle_clock.advance(timedelta(seconds=61))
    assert login_from(browser, "198.51.100.7", "pat.lee@example.org", PASSWORD).status_code == 302


def test_the_slowing_says_nothing_about_whether_the_account_exists(browser, world, throttle_clock, low_ceiling):
    for email in ("pat.lee@example.org", "nobody@example.org"):
        for n in range(7):
            login_from(browser, f"203.0.113.{n + 1}", email, "wrong")
        slowed = login_from(browser, "198.51.100.7", email, "wrong")
        assert slowed.status_code == 429 and PACED in text(slowed)


def test_a_correct_password_clears_the_accounts_count(browser, world, low_ceiling):
    for n in range(5):
        login_from(browser, f"203.0.113.{n + 1}", "pat.lee@example.org", "wrong")
    assert login_from(browser, "198.51.100.7", "pat.lee@example.org", PASSWORD).status_code == 302
    for n in range(5):
        assert FAILED in text(login_from(browser, f"203.0.113.{n + 1}", "pat.lee@example.org", "wrong"))


def test_one_address_is_still_limited_across_accounts(app, browser, world):
    app.config["THROTTLE_RULES"] = {"login-ip": "4 per minute"}
    for n in range(4):
        login_from(browser, "203.0.113.9", f"someone{n}@example.org", "wrong")
    locked = login_from(browser, "203.0.113.9", "pat.lee@example.org", PASSWORD)
    assert locked.status_code == 429 and THROTTLED in text(locked)


def test_refusals_are_in_the_audit_log(browser, world):
    from sqlalchemy import select

    from idp.extensions import db
    from idp.models import AuditEvent

    for _ in range(6):
        login_from(browser, "203.0.113.66", "pat.lee@example.org", "wrong")
    events = [e.event for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert events.count(audit.LOGIN_FAILED) == 5 and events.count(audit.LOGIN_THROTTLED) == 1


def test_the_owners_own_browser_does_not_wait_behind_the_guessers(app, world, throttle_clock, low_ceiling):
    """Guessers past the account's ceiling take the one attempt a minute the moment it reopens; the
    browser the owner signed in from before is not in that queue."""
    from tests.conftest import Browser

    owner = Browser(app.test_client())
    assert login_from(owner, "198.51.100.7", "pat.lee@example.org", PASSWORD).status_code == 302
    owner.client.post("/logout")
    stranger = Browser(app.test_client())
    for n in range(6):
        login_from(stranger, f"203.0.113.{n + 1}", "pat.lee@example.org", "wrong")
    assert FAILED in text(login_from(stranger, "203.0.113.50", "pat.lee@example.org", "wrong"))  # takes the slot
    # Another browser (a new one, or one without the cookie) waits its turn...
    newcomer = Browser(app.test_client())
    paced = login_from(newcomer, "198.51.100.8", "pat.lee@example.org", PASSWORD)
    assert paced.status_code == 429 and PACED in text(paced)
    # ...but the owner's own browser is let in at once.
    assert login_from(owner, "198.51.100.7", "pat.lee@example.org", PASSWORD).status_code == 302


def test_a_known_browser_has_a_budget_of_its_own(app, world, throttle_clock, low_ceiling):
    """A copied cookie is no way round the ceiling: its own failures soon put it in the queue too."""
    from tests.conftest import Browser

    app.config["THROTTLE_RULES"] = {"login-account": "6 per hour", "login-known-browser": "3 per hour"}
    owner = Browser(app.test_client())
    assert login_from(owner, "198.51.100.7", "pat.lee@example.org", PASSWORD).status_code == 302
    for n in range(7):
        login_from(owner, f"203.0.113.{n + 1}", "pat.lee@example.org", "wrong")
    paced = login_from(owner, "198.51.100.9", "pat.lee@example.org", PASSWORD)
    assert paced.status_code == 429 and PACED in text(paced)


def test_a_forged_known_browser_cookie_is_ignored(app, world, throttle_clock, low_ceiling):
    from tests.conftest import Browser

    stranger = Browser(app.test_client())
    for n in range(7):
        login_from(stranger, f"203.0.113.{n + 1}", "pat.lee@example.org", "wrong")
    forger = Browser(app.test_client())
    forger.client.set_cookie("idp_known", "eyJiIjoieCIsImEiOltdfQ.forged.sig")
    paced = login_from(forger, "198.51.100.7", "pat.lee@example.org", PASSWORD)
    assert paced.status_code == 429 and PACED in text(paced)


def test_polling_while_slowed_is_recorded_once_a_minute(browser, world, throttle_clock, low_ceiling):
    from sqlalchemy import func, select

    from idp.extensions import db
    from idp.models import AuditEvent

    for n in range(7):
        login_from(browser, f"203.0.113.{n + 1}", "pat.lee@example.org", "wrong")
    for _ in range(20):
        assert login_from(browser, "203.0.113.99", "pat.lee@example.org", "wrong").status_code == 429
    throttled = db.session.scalar(select(func.count()).where(AuditEvent.event == audit.LOGIN_THROTTLED))
    assert throttled == 1
