"""Links expire at midnight at the end of the day they were sent, in the school's timezone."""

from datetime import datetime, timedelta, timezone

import pytest

from tests.conftest import join_directly
from sqlalchemy import select

from idp import audit
from idp.extensions import db
from idp.models import AuditEvent, ResetLink
from idp.reset import links
from idp.tenants import create_tenant

UTC = timezone.utc


def request_link(browser, slug, email, provider="identity"):
    return browser.submit(f"/t/{slug}/forgot-password?provider={provider}", {"email": email, "provider": provider})


def only_link():
    return db.session.scalars(select(ResetLink)).one()


@pytest.mark.parametrize(
    "tz, sent_utc, expires_utc",
    [
        # London in winter (GMT): local midnight is 00:00 UTC.
        ("Europe/London", datetime(2026, 1, 15, 10, 0, tzinfo=UTC), datetime(2026, 1, 16, 0, 0, tzinfo=UTC)),
        # London in summer (BST): local midnight is 23:00 UTC.
        ("Europe/London", datetime(2026, 7, 15, 10, 0, tzinfo=UTC), datetime(2026, 7, 15, 23, 0, tzinfo=UTC)),
        # 29 March 2026, clocks go forward at 01:00: a 23-hour day sent at 00:30 GMT ends at 23:00 UTC.
        ("Europe/London", datetime(2026, 3, 29, 0, 30, tzinfo=UTC), datetime(2026, 3, 29, 23, 0, tzinfo=UTC)),
        # 25 October 2026, clocks go back at 02:00 BST: a 25-hour day sent at 01:30 BST ends at 00:00 UTC.
        ("Europe/London", datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 26, 0, 0, tzinfo=UTC)),
        # Dubai (UTC+4, no DST): sent 23:30 local, expires 30 minutes later.
        ("Asia/Dubai", datetime(2026, 3, 2, 19, 30, tzinfo=UTC), datetime(2026, 3, 2, 20, 0, tzinfo=UTC)),
        # New York: 23:00 EST on 1 March is 04:00 UTC on 2 March; midnight is 05:00 UTC.
        ("America/New_York", datetime(2026, 3, 2, 4, 0, tzinfo=UTC), datetime(2026, 3, 2, 5, 0, tzinfo=UTC)),
    ],
)
def test_reset_link_expires_at_midnight_in_tenant_timezone(browser, world, frozen_clock, tz, sent_utc, expires_utc):
    world.beech.timezone = tz
    db.session.commit()
    frozen_clock.freeze(sent_utc)
    request_link(browser, "beech", "pat.lee@example.org")
    assert only_link().expires_at == expires_utc


def test_link_sent_at_2359_expires_a_minute_later(browser, world, frozen_clock, outbox):
    frozen_clock.freeze(datetime(2026, 3, 2, 23, 59, tzinfo=UTC))  # 23:59 GMT on Monday 2 March
    html = request_link(browser, "beech", "pat.lee@example.org").get_data(as_text=True)
    assert "at midnight tonight (00:00 on Tuesday 3 March, UK time)" in html
    url = outbox.last_link()
    frozen_clock.advance(timedelta(seconds=59))
    assert "Reset your password" in browser.get(url).get_data(as_text=True)
    frozen_clock.advance(timedelta(seconds=1))
    expired = browser.get(url)
    assert expired.status_code == 410
    assert "This link has expired" in expired.get_data(as_text=True)


def test_link_sent_in_the_summer_evening_expires_at_bst_midnight(browser, world, frozen_clock, outbox):
    frozen_clock.freeze(datetime(2026, 7, 15, 22, 30, tzinfo=UTC))  # 23:30 BST
    request_link(browser, "beech", "pat.lee@example.org")
    url = outbox.last_link()
    frozen_clock.advance(timedelta(minutes=29))
    assert browser.get(url).status_code == 200
    frozen_clock.advance(timedelta(minutes=1))
    assert browser.get(url).status_code == 410


def test_sso_link_uses_the_timezone_of_the_school_whose_page_it_came_from(browser, world, frozen_clock):
    dubai = create_tenant(slug="dubai-british", name="British School Dubai", timezone="Asia/Dubai")
    join_directly(world.sso_user, dubai)
    db.session.commit()
    frozen_clock.freeze(datetime(2026, 3, 2, 19, 0, tzinfo=UTC))  # 23:00 in Dubai, 19:00 in London
    request_link(browser, "dubai-british", "sam.jones@example.org", provider="sso")
    request_link(browser, "oakwood", "sam.jones@example.org", provider="sso")
    by_tenant = {link.tenant_id: link for link in db.session.scalars(select(ResetLink))}
    assert by_tenant[dubai.id].expires_at == datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
    assert by_tenant[world.oakwood.id].expires_at == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)


def test_mail_says_when_the_link_expires_in_local_time(browser, world, frozen_clock, outbox):
    # The frozen clock starts on Monday 2 March 2026, 09:00 UTC.
    request_link(browser, "beech", "pat.lee@example.org")
    message = outbox.last()
    assert "at midnight tonight (00:00 on Tuesday 3 March, UK time)" in outbox.text(message)


def test_non_london_school_mail_names_its_zone(browser, world, frozen_clock, outbox):
    world.beech.timezone = "America/New_York"
    db.session.commit()
    request_link(browser, "beech", "pat.lee@example.org")  # 04:00 EST on Monday 2 March
    assert "at midnight tonight (00:00 on Tuesday 3 March, New York time)" in outbox.text(outbox.last())


def test_opening_an_expired_link_is_audited(browser, world, frozen_clock, outbox):
    request_link(browser, "beech", "pat.lee@example.org")
    frozen_clock.advance(timedelta(days=1))
    browser.get(outbox.last_link())
    (event,) = db.session.scalars(select(AuditEvent).where(AuditEvent.event == audit.RESET_EXPIRED)).all()
    assert event.detail["reason"] == "expired" and event.subject_account_id == world.beech_identity.id


def test_describe_expiry_after_the_sending_day(app, world, frozen_clock):
    expires = datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
    frozen_clock.freeze(datetime(2026, 3, 4, 9, 0, tzinfo=UTC))
    assert links.describe_expiry(expires, "Europe/London") == (
        "at midnight at the end of Monday 2 March (00:00 on Tuesday 3 March, UK time)"
    )
