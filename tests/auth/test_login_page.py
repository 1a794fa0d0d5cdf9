"""The tenant login page: provider selector, documented messages, throttling."""

from idp.extensions import db
from tests.conftest import PASSWORD, csrf_token_from
from tests.oidc.conftest import counting_queries

FAILED = "Your email address or password was incorrect"


def test_login_page_has_contract_fields(client, world):
    html = client.get("/t/oakwood/login").get_data(as_text=True)
    assert 'name="email"' in html and 'type="email"' in html
    assert 'name="password"' in html and 'type="password"' in html
    assert 'name="csrf_token"' in html and 'name="provider"' in html
    assert 'autocomplete="username"' in html and 'autocomplete="current-password"' in html
    assert "Oakwood Primary School" in html and "CPOMS" in html


def test_switch_shown_when_school_has_sso_users(client, world):
    html = client.get("/t/oakwood/login").get_data(as_text=True)
    assert "Login using your CPOMS SSO account" in html
    html = client.get("/t/oakwood/login?provider=sso").get_data(as_text=True)
    assert "Login using your CPOMS Identity account" in html


def test_switch_hidden_when_school_has_no_sso_users(client, world):
    html = client.get("/t/beech/login?provider=sso").get_data(as_text=True)
    assert "Login using your CPOMS" not in html
    assert 'value="identity"' in html


def test_forgotten_password_link_beneath_login_button(client, world):
    html = client.get("/t/oakwood/login").get_data(as_text=True)
    assert html.index("Forgotten your password or using CPOMS for the first time?") > html.index(">Login</button>")
    assert "/t/oakwood/forgot-password" in html


def test_same_email_resolves_by_chosen_provider(browser, world):
    # sam.jones@ has an SSO account (PASSWORD) and an Identity account at oakwood (another password).
    ok = browser.login("oakwood", "sam.jones@example.org", PASSWORD, provider="sso")
    assert ok.status_code == 302
    browser.client.post("/logout", data={})  # CSRF-protected: refused, still signed in is fine
    fail = browser.login("oakwood", "sam.jones@example.org", PASSWORD, provider="identity")
    assert FAILED in fail.get_data(as_text=True)
    ok = browser.login("oakwood", "SAM.JONES@example.org", "Different-Pass-77!", provider="identity")
    assert ok.status_code == 302


def test_wrong_password_and_unknown_user_get_the_same_message(browser, world):
    for email in ("pat.lee@example.org", "nobody@example.org"):
        response = browser.login("beech", email, "wrong-password")
        assert response.status_code == 200
        assert FAILED in response.get_data(as_text=True)


def test_sso_account_not_member_cannot_sign_in_at_that_school(browser, world):
    response = browser.login("beech", "sam.jones@example.org", PASSWORD, provider="sso")
    assert FAILED in response.get_data(as_text=True) or response.status_code == 200


def test_deactivated_member_cannot_sign_in(browser, world):
    world.beech_identity.memberships[0].active = False
    db.session.commit()
    response = browser.login("beech", "pat.lee@example.org", PASSWORD)
    assert FAILED in response.get_data(as_text=True)


def test_invited_account_without_password_cannot_sign_in(browser, world):
    response = browser.login("oakwood", "new.teacher@example.org", "")
    assert response.status_code == 200
    response = browser.login("oakwood", "new.teacher@example.org", "anything")
    assert FAILED in response.get_data(as_text=True)


def test_failed_logins_are_throttled_per_account_and_address(app, browser, world):
    app.config["THROTTLE_RULES"] = {"login-account-ip": "3 per minute"}
    for _ in range(3):
        browser.login("beech", "pat.lee@example.org", "wrong")
    response = browser.login("beech", "pat.lee@example.org", PASSWORD)
    assert response.status_code == 429
    assert "Too many unsuccessful sign-in attempts" in response.get_data(as_text=True)


def test_login_without_csrf_token_is_refused(client, world):
    response = client.post("/t/beech/login", data={"email": "pat.lee@example.org", "password": PASSWORD,
                                                   "provider": "identity"})
    assert response.status_code == 400


def test_session_cookie_is_httponly_and_lax(browser, world):
    response = browser.login("beech", "pat.lee@example.org", PASSWORD)
    cookie = response.headers.get("Set-Cookie")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_unknown_tenant_is_a_clear_404(client):
    response = client.get("/t/no-such-school/login")
    assert response.status_code == 404
    assert "CPOMS URL" in response.get_data(as_text=True)


def test_next_must_be_a_local_path(browser, world):
    response = browser.login("beech", "pat.lee@example.org", PASSWORD, next_url="https://evil.example/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/t/beech/"


def test_a_tenant_whose_members_are_all_sso_opens_on_sso(client, world):
    html = client.get("/t/oakwood-staffsafe/login").get_data(as_text=True)
    assert 'name="provider" type="hidden" value="sso"' in html
    assert "Login using your CPOMS Identity account" in html


def test_a_mixed_school_opens_on_identity(client, world):
    html = client.get("/t/oakwood/login").get_data(as_text=True)
    assert "Login using your CPOMS SSO account" in html


def test_password_login_runs_few_sql_statements(browser, world):
    """The login POST: the school, the switch check, the account (with memberships), the audit insert."""
    page = browser.client.get("/t/beech/login")
    token = csrf_token_from(page.get_data(as_text=True))
    with counting_queries() as counter:
        response = browser.client.post("/t/beech/login", data={
            "csrf_token": token, "email": "pat.lee@example.org", "password": PASSWORD, "provider": "identity"})
    assert response.status_code == 302
    assert counter.count <= 4, counter.statements


def test_failed_sso_logins_from_one_address_count_against_the_account_at_every_school(app, browser, world):
    app.config["THROTTLE_RULES"] = {"login-account-ip": "3 per minute"}
    for slug in ("oakwood", "oakwood", "oakwood-staffsafe"):
        browser.login(slug, "sam.jones@example.org", "wrong", provider="sso")
    response = browser.login("oakwood-staffsafe", "sam.jones@example.org", PASSWORD, provider="sso")
    assert response.status_code == 429
    assert "Too many unsuccessful sign-in attempts" in response.get_data(as_text=True)


def test_the_heading_says_which_account_type_and_both_are_a_visible_choice(client, world):
    html = client.get("/t/oakwood/login?provider=sso").get_data(as_text=True)
    assert '<h1>Log in to CPOMS <span class="heading-account">with your CPOMS SSO account</span></h1>' in html
    assert 'aria-label="Account type"' in html and 'aria-current="page"' in html
    assert html.count("account-type__choice") >= 2 and "If you have access to one school" in html
    assert "Login using your CPOMS Identity account" in html  # the help page's link stays beneath Login
    # A school with no SSO users shows neither the choice nor the switch.
    plain = client.get("/t/beech/login").get_data(as_text=True)
    assert "Account type" not in plain and "Login using your" not in plain


def test_the_switch_keeps_the_typed_email(client, world):
    html = client.get("/t/oakwood/login?provider=sso&login_hint=sam.jones@example.org").get_data(as_text=True)
    assert 'value="sam.jones@example.org"' in html
    assert "login.js" in html  # carries the typed address onto the switch links as login_hint


def test_a_failed_login_at_a_mixed_school_hints_at_the_account_type_without_revealing_anything(browser, world):
    for email in ("sam.jones@example.org", "nobody@example.org"):
        html = browser.login("oakwood", email, "Wrong-Password-1!", provider="sso").get_data(as_text=True)
        assert FAILED in html and "Check that you chose the right account type" in html
    plain = browser.login("beech", "pat.lee@example.org", "Wrong-Password-1!").get_data(as_text=True)
    assert FAILED in plain and "right account type" not in plain


def test_a_signed_in_non_member_can_sign_in_with_a_different_account(browser, world):
    browser.login("beech", "pat.lee@example.org")
    page = browser.get("/t/oakwood/login?reason=not_member&next=/t/oakwood/")
    html = page.get_data(as_text=True)
    assert "does not have access to Oakwood Primary School" in html and "Sign in with a different account" in html
    response = browser.client.post("/logout", data={"csrf_token": csrf_token_from(html), "tenant": "oakwood",
                                                    "next": "/t/oakwood/"})
    assert response.headers["Location"] == "/t/oakwood/login?next=/t/oakwood/"
    after = browser.get(response.headers["Location"]).get_data(as_text=True)
    assert "You have signed out of CPOMS on this browser." in after
    assert browser.get("/t/beech/").status_code == 302


def test_login_and_reset_pages_read_the_school_and_its_providers_in_one_statement(client, world):
    """The school and whether it has SSO (and Identity) members: one SELECT per page, on both databases."""
    for path in ("/t/oakwood/login", "/t/oakwood/forgot-password", "/t/beech/login?provider=sso"):
        with counting_queries() as counter:
            response = client.get(path)
        assert response.status_code == 200
        assert counter.count == 1, (path, counter.statements)
