"""A sign-in is a row the server keeps: the cookie holds only a reference, ending the row ends the
sign-in everywhere its cookie was copied, and each school's lifetime and idle rules apply."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from idp.accounts import sessions
from idp.extensions import db
from idp.models import BrowserSession
from idp.models.base import hash_secret
from tests.conftest import PASSWORD, Browser, csrf_token_from
from tests.mfa.conftest import enrol, session_of, sign_in_of
from tests.oidc.conftest import RelyingParty, oakwood_rp, query_of, staffsafe_rp  # noqa: F401  (fixtures)

CHROME_ON_WINDOWS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                     "Chrome/131.0.0.0 Safari/537.36")


def signed_in_at(browser, slug: str) -> bool:
    return browser.get(f"/t/{slug}/").status_code == 200


def copy_of(app, browser) -> Browser:
    """Another browser holding a copy of this one's cookie (a stolen or shared cookie)."""
    thief = Browser(app.test_client())
    with browser.client.session_transaction() as original, thief.client.session_transaction() as copy:
        copy.update(dict(original))
    return thief


def test_the_cookie_holds_only_a_reference_whose_hash_the_server_keeps(browser, world):
    browser.client.environ_base["HTTP_USER_AGENT"] = CHROME_ON_WINDOWS
    browser.login("beech", "pat.lee@example.org")
    cookie = session_of(browser.client)
    assert set(cookie) <= {"sid", "seen", "csrf_token", "_flashes"}
    row = db.session.scalars(select(BrowserSession)).one()
    assert row.token_hash == hash_secret(cookie["sid"]) and cookie["sid"] not in (row.token_hash, row.sid)
    assert (row.account_id, row.tenant_id, row.provider) == (world.beech_identity.id, world.beech.id, "identity")
    assert row.amr == ["pwd"] and row.acr == "urn:cpoms:acr:password" and row.auth_time > 0
    assert row.device == "Chrome on Windows" and row.ip == "127.0.0.1"


def test_a_copied_cookie_dies_the_moment_its_sign_in_ends(app, browser, world):
    browser.login("beech", "pat.lee@example.org")
    thief = copy_of(app, browser)
    assert signed_in_at(thief, "beech")
    token = csrf_token_from(browser.get("/t/beech/").get_data(as_text=True))
    browser.client.post("/logout", data={"csrf_token": token, "tenant": "beech"})
    assert not signed_in_at(thief, "beech")
    assert db.session.scalars(select(BrowserSession)).first() is None


def test_a_school_lifetime_ends_the_sign_in_there_however_busy_it_is(browser, world, frozen_clock):
    world.beech.session_max_age = 3600
    db.session.commit()
    browser.login("beech", "pat.lee@example.org")
    for _ in range(6):
        frozen_clock.advance(timedelta(minutes=10))
        assert signed_in_at(browser, "beech")
    frozen_clock.advance(timedelta(minutes=1))
    response = browser.get("/t/beech/")
    assert response.status_code == 302 and urlsplit(response.headers["Location"]).path == "/t/beech/login"


def test_an_unused_sign_in_ends_after_the_schools_idle_timeout(browser, world, frozen_clock):
    browser.login("beech", "pat.lee@example.org")
    frozen_clock.advance(timedelta(minutes=29))
    assert signed_in_at(browser, "beech")  # used again: the idle clock starts over
    frozen_clock.advance(timedelta(minutes=29))
    assert signed_in_at(browser, "beech")
    frozen_clock.advance(timedelta(minutes=32))
    assert not signed_in_at(browser, "beech")


def test_an_sso_sign_in_meets_the_strictest_rule_of_the_school_being_signed_into(
        browser, world, frozen_clock, staffsafe_rp, oakwood_rp):
    world.oakwood.session_max_age = 3600  # Oakwood is strict; StaffSafe keeps the 8-hour default
    db.session.commit()
    browser.login("oakwood", "sam.jones@example.org", provider="sso")
    for _ in range(7):  # used every 10 minutes, so never idle
        frozen_clock.advance(timedelta(minutes=10))
        browser.get("/account/sessions")
    assert staffsafe_rp.code()  # StaffSafe's rule still allows this sign-in
    location = oakwood_rp.authorize().headers["Location"]
    assert urlsplit(location).path == "/t/oakwood/login" and "code" not in query_of(location)


def test_a_session_row_is_marked_seen_at_most_once_a_minute(browser, world, frozen_clock):
    browser.login("beech", "pat.lee@example.org")
    first = sign_in_of(browser.client).last_seen
    frozen_clock.advance(timedelta(seconds=20))
    browser.get("/t/beech/")
    assert sign_in_of(browser.client).last_seen == first
    frozen_clock.advance(timedelta(seconds=50))
    browser.get("/t/beech/")
    assert sign_in_of(browser.client).last_seen == first + 70


def test_signing_in_again_as_the_same_person_keeps_the_sign_in_and_renews_its_reference(browser, world,
                                                                                       frozen_clock):
    browser.login("beech", "pat.lee@example.org")
    before = sign_in_of(browser.client)
    sid, auth_time, reference = before.sid, before.auth_time, session_of(browser.client)["sid"]
    frozen_clock.advance(timedelta(minutes=5))
    browser.login("beech", "pat.lee@example.org")
    after = sign_in_of(browser.client)
    assert after.sid == sid and after.auth_time == auth_time + 300
    assert session_of(browser.client)["sid"] != reference  # no fixation: a new reference


def test_someone_else_signing_in_on_this_browser_ends_the_previous_sign_in(app, browser, world):
    browser.login("beech", "pat.lee@example.org")
    thief = copy_of(app, browser)
    browser.login("oakwood", "head@oakwood.example.org")
    assert sign_in_of(browser.client).account_id == world.oakwood_admin.id
    assert not signed_in_at(thief, "beech")  # Pat's sign-in is gone, not just hidden


def test_a_half_done_sign_in_leaves_the_current_one_until_the_code_is_right(app, browser, world, frozen_clock):
    enrolment = enrol(world.oakwood_admin)
    browser.login("beech", "pat.lee@example.org")
    browser.login("oakwood", "head@oakwood.example.org")  # the password is right; the code is to come
    assert signed_in_at(browser, "beech")  # still Pat's browser
    browser.submit("/t/oakwood/login/verify", {"code": enrolment.code()})
    assert sign_in_of(browser.client).account_id == world.oakwood_admin.id
    assert not signed_in_at(browser, "beech")


# --- Where you're signed in -----------------------------------------------------------------------------------


@pytest.fixture
def two_browsers(app, world):
    home = Browser(app.test_client())
    home.client.environ_base.update(HTTP_USER_AGENT=CHROME_ON_WINDOWS, REMOTE_ADDR="198.51.100.20")
    staffroom = Browser(app.test_client())
    staffroom.client.environ_base.update(
        HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        REMOTE_ADDR="203.0.113.5")
    for browser in (home, staffroom):
        browser.login("oakwood", "sam.jones@example.org", provider="sso")
    return home, staffroom


def test_the_person_sees_where_they_are_signed_in(two_browsers):
    home, _ = two_browsers
    page = home.get("/account/sessions?tenant=oakwood").get_data(as_text=True)
    assert "Chrome on Windows" in page and "Firefox on Linux" in page
    assert "203.0.113.5" in page and "This browser" in page
    assert "Oakwood Primary School" in page


def test_signing_out_one_browser_ends_only_that_one(two_browsers, world):
    home, staffroom = two_browsers
    other = next(r for r in sessions.of_account(world.sso_user) if r.device == "Firefox on Linux")
    home.submit("/account/sessions", {}, post_url=f"/account/sessions/{other.id}/end")
    assert signed_in_at(home, "oakwood") and not signed_in_at(staffroom, "oakwood")


def test_sign_out_everywhere_else_keeps_only_this_browser(two_browsers, world):
    home, staffroom = two_browsers
    response = home.submit("/account/sessions", {}, post_url="/account/sessions/end-others")
    assert response.status_code == 302
    assert signed_in_at(home, "oakwood") and not signed_in_at(staffroom, "oakwood")
    assert len(sessions.of_account(world.sso_user)) == 1


def test_another_persons_sign_in_cannot_be_ended_from_my_page(app, two_browsers, world):
    pat = Browser(app.test_client())
    pat.login("beech", "pat.lee@example.org")
    sams = sessions.of_account(world.sso_user)[0]
    response = pat.submit("/account/sessions", {}, post_url=f"/account/sessions/{sams.id}/end")
    assert response.status_code == 404
    assert len(sessions.of_account(world.sso_user)) == 2


# --- ended by others ---------------------------------------------------------------------------------------------


def test_a_school_admin_ends_an_identity_members_sign_ins_without_deactivating_them(app, world, oakwood_rp):
    from tests.admin.conftest import membership_of

    teacher = Browser(app.test_client())
    teacher.login("oakwood", "sam.jones@example.org", password="Different-Pass-77!")
    tokens = RelyingParty(teacher.client, world.oakwood_app, world.oakwood_app_secret).tokens()
    admin = Browser(app.test_client())
    admin.login("oakwood", "head@oakwood.example.org")
    member = membership_of(world.oakwood_identity, world.oakwood)
    admin.submit(f"/t/oakwood/admin/users/{member.id}", {}, post_url=f"/t/oakwood/admin/users/{member.id}/end-sign-ins")
    assert not signed_in_at(teacher, "oakwood")
    assert membership_of(world.oakwood_identity, world.oakwood).active  # still a member
    introspection = oakwood_rp.post("/introspect", {"token": tokens["access_token"]})
    assert introspection.get_json() == {"active": False}


def test_a_school_ends_a_shared_sso_members_sign_ins_at_its_apps_only(app, world, staffsafe_rp, oakwood_rp,
                                                                     frozen_clock):
    from idp.admin import service
    from tests.admin.conftest import membership_of

    sam = Browser(app.test_client())
    sam.login("oakwood", "sam.jones@example.org", provider="sso")
    staffsafe = RelyingParty(sam.client, world.staffsafe_app, world.staffsafe_app_secret)
    oakwood = RelyingParty(sam.client, world.oakwood_app, world.oakwood_app_secret)
    kept, ended = staffsafe.tokens(), oakwood.tokens()
    service.end_member_sign_ins(world.oakwood, membership_of(world.sso_user, world.oakwood).id,
                                actor=world.oakwood_admin)
    db.session.commit()
    # Oakwood's applications need a new sign-in; StaffSafe's carry on.
    location = oakwood.authorize().headers["Location"]
    assert urlsplit(location).path == "/t/oakwood/login"
    assert staffsafe.code()
    assert oakwood_rp.post("/introspect", {"token": ended["access_token"]}).get_json() == {"active": False}
    assert staffsafe_rp.post("/introspect", {"token": kept["access_token"]}).get_json()["active"] is True
    # Signing in again at Oakwood opens its applications again.
    frozen_clock.advance(timedelta(seconds=5))
    sam.login("oakwood", "sam.jones@example.org", provider="sso")
    assert oakwood.code()


def test_an_operator_ends_every_sign_in_of_a_person(app, world, frozen_clock):
    from idp.accounts.directory import create_account

    ops = create_account(provider="sso", email="ops@cpoms.example", tenants=[world.staffsafe], password=PASSWORD,
                         is_operator=True)
    enrolment = enrol(ops)
    operator = Browser(app.test_client())
    verify = operator.login("oakwood-staffsafe", "ops@cpoms.example", provider="sso").headers["Location"]
    operator.submit(verify, {"code": enrolment.code()})
    sam = Browser(app.test_client())
    sam.login("oakwood", "sam.jones@example.org", provider="sso")
    page = operator.get("/admin/people?email=sam.jones@example.org").get_data(as_text=True)
    assert "End every sign-in of sam.jones@example.org" in page
    response = operator.submit("/admin/people?email=sam.jones@example.org", {},
                               post_url=f"/admin/people/{world.sso_user.id}/end-sign-ins")
    assert response.status_code == 302
    assert not signed_in_at(sam, "oakwood") and not sessions.of_account(world.sso_user)
