"""Admin > Users by where people's invitations and links stand, and "send the link again" to
everyone the filter shows: one button, the school's own members only, not twice in ten minutes."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from idp import audit, clock
from idp.admin import service
from idp.errors import RateLimited
from idp.extensions import db
from idp.models import AuditEvent, ResetLink
from idp.reset import links
from tests.conftest import csrf_token_from

from .conftest import membership_of


def _names(page) -> list[str]:
    return [member.account.name for member in page.items]


def test_users_can_be_filtered_by_link_state(world, frozen_clock, outbox, monkeypatch):
    links.issue_reset_link(world.oakwood_identity, world.oakwood)  # sent, still usable
    links.issue_reset_link(world.invited, world.oakwood)  # a first-time link...
    frozen_clock.advance(timedelta(days=1))  # ...that expired overnight
    from idp.mail import delivery

    def refuse(message):
        raise delivery.MailNotSent()

    monkeypatch.setattr(links, "send", refuse)
    try:
        links.issue_reset_link(world.oakwood_admin, world.oakwood)
    except delivery.MailNotSent:
        pass
    db.session.commit()
    assert _names(service.list_members(world.oakwood, link_state="invited")) == ["New Teacher"]
    assert _names(service.list_members(world.oakwood, link_state="sent")) == []  # it expired at midnight too
    assert _names(service.list_members(world.oakwood, link_state="expired")) == ["New Teacher", "Sam Jones (local)"]
    assert _names(service.list_members(world.oakwood, link_state="not_sent")) == ["Alex Head"]
    assert service.list_members(world.oakwood, link_state="nonsense").total == 4  # ignored


def test_the_list_shows_each_persons_link_state_and_ignores_unknown_filters(world, oakwood_browser, outbox):
    links.issue_reset_link(world.invited, world.oakwood)
    db.session.commit()
    page = oakwood_browser.get("/t/oakwood/admin/users?link=sent")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "1 user found" in html and "New Teacher" in html
    assert 'class="hint link-state link-state--pending">Link sent<' in html
    assert '<option selected value="sent">Link sent, not used yet</option>' in html
    assert oakwood_browser.get("/t/oakwood/admin/users?link=%00x&page=x").status_code in (200, 400)
    assert oakwood_browser.get("/t/oakwood/admin/users?link=everything").status_code == 200


def test_resend_to_everyone_filtered_sends_each_a_new_link_and_says_how_many(world, oakwood_browser, outbox,
                                                                             frozen_clock):
    links.issue_reset_link(world.invited, world.oakwood)
    first = outbox.last_link()
    frozen_clock.advance(timedelta(days=1))
    db.session.commit()
    listing = oakwood_browser.get("/t/oakwood/admin/users?link=expired").get_data(as_text=True)
    assert "Send the link again to this user" in listing
    response = oakwood_browser.client.post("/t/oakwood/admin/users/resend-links", data={
        "csrf_token": csrf_token_from(listing), "link": "expired", "q": "", "provider": "", "role": ""})
    assert response.status_code == 302 and response.headers["Location"].endswith("/t/oakwood/admin/users?link=expired")
    after = oakwood_browser.get("/t/oakwood/admin/users?link=expired").get_data(as_text=True)
    assert "Links were sent again to 1 user." in after
    assert outbox.last_link() != first and oakwood_browser.get(first).status_code == 410
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.event == audit.LINKS_RESENT)).one()
    assert event.tenant_id == world.oakwood.id and event.actor_account_id == world.oakwood_admin.id
    assert event.detail["sent"] == 1 and event.detail["filters"] == {"link": "expired"}


def test_resend_skips_people_sent_a_link_in_the_last_ten_minutes(world, outbox, frozen_clock):
    links.issue_reset_link(world.invited, world.oakwood)
    db.session.commit()
    result = service.resend_links(world.oakwood, link_state="invited", actor=world.oakwood_admin)
    assert (result.sent, result.skipped_recent) == (0, 1)
    frozen_clock.advance(timedelta(minutes=11))
    assert service.resend_links(world.oakwood, link_state="invited", actor=world.oakwood_admin).sent == 1


def test_resend_is_throttled_per_school(world, outbox, frozen_clock):
    for _ in range(5):
        service.resend_links(world.oakwood, link_state="invited", actor=world.oakwood_admin)
    try:
        service.resend_links(world.oakwood, link_state="invited", actor=world.oakwood_admin)
    except RateLimited:
        pass
    else:
        raise AssertionError("a sixth press in ten minutes must be refused")
    # Another school's admin is not held up by this one.
    assert service.resend_links(world.beech, link_state="invited", actor=None).sent == 0


def test_resend_needs_the_csrf_token_and_reaches_only_the_schools_members(world, beech_browser, oakwood_browser,
                                                                         outbox):
    assert oakwood_browser.client.post("/t/oakwood/admin/users/resend-links", data={"link": "invited"}).status_code == 400
    listing = beech_browser.get("/t/beech/admin/users/new").get_data(as_text=True)
    forged = beech_browser.client.post("/t/oakwood/admin/users/resend-links",
                                       data={"csrf_token": csrf_token_from(listing), "link": "invited"})
    assert forged.status_code == 403
    assert db.session.scalar(select(ResetLink.id).where(ResetLink.account_id == world.invited.id)) is None
    # Beech's own press sends nothing to Oakwood's invited teacher.
    beech_browser.client.post("/t/beech/admin/users/resend-links",
                              data={"csrf_token": csrf_token_from(listing), "link": "invited"})
    assert db.session.scalar(select(ResetLink.id).where(ResetLink.account_id == world.invited.id)) is None
    assert membership_of(world.invited, world.oakwood).active
