"""RP-initiated logout: id_token_hint, registered post_logout_redirect_uri only, state echoed."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from idp import audit
from idp.extensions import db
from idp.models import AuditEvent
from tests.conftest import Browser, csrf_token_from

from .conftest import RelyingParty, query_of


def end_session(http, method="get", **params):
    if method == "post":
        return getattr(http, "client", http).post("/logout/end", data=params)
    return http.get("/logout/end?" + urlencode(params))


def is_signed_in(browser) -> bool:
    return browser.get("/t/oakwood/").status_code == 200


def test_logout_with_registered_uri_redirects_with_state_and_signs_out(
    browser, oakwood_rp, world, frozen_clock
):
    browser.login("oakwood", "head@oakwood.example.org")
    id_token = oakwood_rp.tokens()["id_token"]
    response = end_session(browser, id_token_hint=id_token,
                           post_logout_redirect_uri="https://oakwood.example/bye", state="bye-1")
    assert response.status_code == 302
    assert response.headers["Location"] == "https://oakwood.example/bye?state=bye-1"
    assert not is_signed_in(browser)
    assert db.session.query(AuditEvent).filter_by(event=audit.LOGOUT).count() == 1


def test_logout_by_post(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    id_token = oakwood_rp.tokens()["id_token"]
    response = end_session(browser, "post", id_token_hint=id_token,
                           post_logout_redirect_uri="https://oakwood.example/bye")
    assert response.headers["Location"] == "https://oakwood.example/bye"
    assert not is_signed_in(browser)


def test_unregistered_post_logout_uri_is_not_followed(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    id_token = oakwood_rp.tokens()["id_token"]
    response = end_session(browser, id_token_hint=id_token,
                           post_logout_redirect_uri="https://evil.example/bye", state="x")
    assert response.status_code == 200 and "Location" not in response.headers
    assert "You have signed out" in response.get_data(as_text=True)
    assert not is_signed_in(browser)


def test_another_clients_logout_uri_is_not_followed(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    id_token = oakwood_rp.tokens()["id_token"]
    response = end_session(browser, id_token_hint=id_token, post_logout_redirect_uri="https://staffsafe.example/bye")
    assert "Location" not in response.headers


def test_expired_id_token_hint_is_still_accepted(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    id_token = oakwood_rp.tokens()["id_token"]
    frozen_clock.advance(timedelta(hours=3))
    browser.login("oakwood", "head@oakwood.example.org")
    response = end_session(browser, id_token_hint=id_token, post_logout_redirect_uri="https://oakwood.example/bye")
    assert response.headers["Location"] == "https://oakwood.example/bye"


def test_forged_id_token_hint_is_an_error_page_without_redirect(browser, oakwood_rp, world, frozen_clock):
    from joserfc import jwt
    from joserfc.jwk import RSAKey

    browser.login("oakwood", "head@oakwood.example.org")
    oakwood_rp.tokens()
    key = RSAKey.generate_key(2048, private=True)
    forged = jwt.encode({"alg": "RS256", "kid": "x"}, {"iss": "http://127.0.0.1:5000", "aud": oakwood_rp.client_id,
                                                       "sub": "x"}, key)
    response = end_session(browser, id_token_hint=forged, post_logout_redirect_uri="https://oakwood.example/bye")
    assert response.status_code == 400 and "Location" not in response.headers
    assert is_signed_in(browser)
    # The person can still sign out on purpose.
    page = response.get_data(as_text=True)
    assert "We could not sign you out from that link" in page
    browser.client.post("/logout", data={"csrf_token": csrf_token_from(page)})
    assert not is_signed_in(browser)


def test_client_id_must_match_the_hints_audience(browser, oakwood_rp, staffsafe_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    id_token = oakwood_rp.tokens()["id_token"]
    response = end_session(browser, id_token_hint=id_token, client_id=staffsafe_rp.client_id,
                           post_logout_redirect_uri="https://staffsafe.example/bye")
    assert response.status_code == 400 and "Location" not in response.headers


def test_logout_without_hint_asks_the_person_first(browser, oakwood_rp, world, frozen_clock):
    browser.login("oakwood", "head@oakwood.example.org")
    response = end_session(browser, client_id=oakwood_rp.client_id,
                           post_logout_redirect_uri="https://oakwood.example/bye", state="s1")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "Do you want to sign out of CPOMS?" in page
    assert is_signed_in(browser)
    # A forged confirmation (no CSRF token) is not enough.
    end_session(browser, "post", confirm="yes", client_id=oakwood_rp.client_id)
    assert is_signed_in(browser)
    response = browser.client.post("/logout/end", data={
        "csrf_token": csrf_token_from(page), "confirm": "yes", "client_id": oakwood_rp.client_id,
        "post_logout_redirect_uri": "https://oakwood.example/bye", "state": "s1"})
    assert response.headers["Location"] == "https://oakwood.example/bye?state=s1"
    assert not is_signed_in(browser)


def test_logout_when_already_signed_out_shows_the_signed_out_page(client, world):
    response = client.get("/logout/end")
    assert response.status_code == 200 and "You have signed out" in response.get_data(as_text=True)


def test_sso_logout_ends_the_session_for_every_school(signed_in_sso, browser, staffsafe_rp, world):
    id_token = staffsafe_rp.tokens()["id_token"]
    end_session(browser, id_token_hint=id_token)
    assert query_of(staffsafe_rp.authorize(prompt="none").headers["Location"])["error"] == "login_required"


def test_a_hint_naming_someone_else_asks_before_signing_anyone_out(app, browser, oakwood_rp, world, frozen_clock):
    # Someone else's ID token (from another browser) must not sign out whoever sits at this one.
    other = Browser(app.test_client())
    other.login("oakwood", "sam.jones@example.org", password="Different-Pass-77!")
    their_token = RelyingParty(other.client, world.oakwood_app, world.oakwood_app_secret).tokens()["id_token"]
    browser.login("oakwood", "head@oakwood.example.org")
    response = end_session(browser, id_token_hint=their_token, post_logout_redirect_uri="https://oakwood.example/bye")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "Do you want to sign out of CPOMS?" in page
    assert "a different account" in page and "head@oakwood.example.org" in page
    assert is_signed_in(browser)
    assert db.session.query(AuditEvent).filter_by(event=audit.LOGOUT).count() == 0


def test_the_sign_out_is_recorded_in_the_signed_in_persons_own_school_only(browser, world, frozen_clock):
    # Beech's Pat follows Oakwood's logout link: the event belongs to Beech's log, not Oakwood's.
    browser.login("beech", "pat.lee@example.org")
    page = end_session(browser, client_id=world.oakwood_app.client_id).get_data(as_text=True)
    browser.client.post("/logout/end", data={"csrf_token": csrf_token_from(page), "confirm": "yes",
                                             "client_id": world.oakwood_app.client_id})
    [event] = db.session.query(AuditEvent).filter_by(event=audit.LOGOUT).all()
    assert event.tenant_id == world.beech.id and event.subject_account_id == world.beech_identity.id


def test_prompt_login_keeps_the_sign_in_until_the_new_one_succeeds(browser, oakwood_rp, world, frozen_clock):
    from idp.accounts import sessions

    browser.login("oakwood", "head@oakwood.example.org")
    sid = sessions.of_account(world.oakwood_admin)[0].sid
    location = oakwood_rp.authorize(prompt="login").headers["Location"]
    assert is_signed_in(browser)  # nothing ended yet
    browser.login("oakwood", "head@oakwood.example.org", next_url=query_of(location)["next"])
    claims = oakwood_rp.validate_id_token(oakwood_rp.tokens()["id_token"])
    assert claims["sid"] == sid  # the same person: the same sign-in, authenticated afresh
