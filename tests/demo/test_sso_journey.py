"""The demo's promise, end to end over real HTTP: the IdP and both demo apps
served on local ports, driven like a browser with requests.Session.

Sign in once with CPOMS SSO on one school's app; the other school's app and
the StaffSafe app then sign in without a password. The demo apps validate the
ID token with authlib (signature against the JWKS, iss, aud, exp, nonce)."""

from __future__ import annotations

import html
import re
import threading
from contextlib import ExitStack, contextmanager

import pytest
import requests
from werkzeug.serving import make_server

from clients.rp import create_rp_app
from idp.demo import DEMO_PASSWORD, clients_file_path, load_demo_data
from tests.servers import free_port

IDP_PORT = free_port()
IDP = f"http://127.0.0.1:{IDP_PORT}"
SAM = "sam.jones@example.org"


@pytest.fixture
def app_overrides():
    return {"issuer": IDP}


@contextmanager
def serving(wsgi_app, port: int):
    server = make_server("127.0.0.1", port, wsgi_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def demo(app):
    school_port, staffsafe_port = free_port(), free_port()
    school, staffsafe = f"http://127.0.0.1:{school_port}", f"http://127.0.0.1:{staffsafe_port}"
    load_demo_data(school_app_url=school, staffsafe_app_url=staffsafe)
    with ExitStack() as stack:
        stack.enter_context(serving(app, IDP_PORT))
        stack.enter_context(serving(create_rp_app("school", "School", clients_file=clients_file_path()), school_port))
        stack.enter_context(
            serving(create_rp_app("staffsafe", "StaffSafe", clients_file=clients_file_path()), staffsafe_port))
        yield {"school": school, "staffsafe": staffsafe}


def hidden_fields(page: str) -> dict:
    fields = {}
    for tag in re.findall(r"<input[^>]*>", page):
        if 'type="hidden"' in tag:
            name = re.search(r'name="([^"]+)"', tag).group(1)
            value = re.search(r'value="([^"]*)"', tag)
            fields[name] = html.unescape(value.group(1)) if value else ""
    return fields


def log_in(browser: requests.Session, login_page: requests.Response, email: str, provider: str):
    """Fill in the IdP's login form as shown (choosing the provider) and submit it."""
    assert login_page.url.startswith(IDP) and "/login" in login_page.url
    form = hidden_fields(login_page.text)
    form.update(email=email, password=DEMO_PASSWORD, provider=provider)
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', login_page.text).group(1))
    return browser.post(IDP + action, data=form)


def claim(page: requests.Response, name: str) -> str:
    return html.unescape(re.search(rf'id="claim-{name}">([^<]*)<', page.text).group(1))


def sign_out_everywhere(browser: requests.Session, app_home: str):
    page = browser.get(app_home)
    token = re.findall(r'name="csrf_token" value="([^"]+)"', page.text)[-1]
    return browser.post(app_home + "logout/everywhere", data={"csrf_token": token})


def test_one_sso_sign_in_serves_another_school_and_staffsafe(demo):
    browser = requests.Session()
    login_page = browser.get(f"{demo['school']}/oakwood/login")
    assert "Log in to CPOMS" in login_page.text

    home = log_in(browser, login_page, SAM, "sso")
    assert home.url == f"{demo['school']}/oakwood/"
    assert claim(home, "name") == "Sam Jones" and claim(home, "email") == SAM
    assert claim(home, "tenant") == "oakwood" and claim(home, "roles") == "staff" and claim(home, "amr") == "pwd"

    other_school = browser.get(f"{demo['school']}/elmfield/login")
    assert other_school.url == f"{demo['school']}/elmfield/"  # no login page on the way
    assert claim(other_school, "tenant") == "elmfield"
    assert claim(other_school, "auth_time") == claim(home, "auth_time")

    staffsafe = browser.get(f"{demo['staffsafe']}/oakwood-trust/login")
    assert staffsafe.url == f"{demo['staffsafe']}/oakwood-trust/"
    assert claim(staffsafe, "tenant") == "oakwood-trust" and claim(staffsafe, "sub") == claim(home, "sub")


def test_the_sso_account_gets_nothing_from_a_school_it_does_not_belong_to(demo):
    browser = requests.Session()
    log_in(browser, browser.get(f"{demo['school']}/oakwood/login"), SAM, "sso")
    refused = browser.get(f"{demo['school']}/riverside/login")
    assert refused.url.startswith(f"{IDP}/t/riverside/login")
    assert "does not have access to Riverside Academy" in refused.text
    assert browser.get(f"{demo['school']}/riverside/").text.count('id="sign-in"') == 1


def test_identity_user_signs_in_at_the_school_without_sso(demo):
    browser = requests.Session()
    login_page = browser.get(f"{demo['school']}/riverside/login")
    assert 'id="switch-provider"' not in login_page.text
    home = log_in(browser, login_page, "pat.lee@riverside.example.org", "identity")
    assert claim(home, "tenant") == "riverside" and claim(home, "name") == "Pat Lee"


def test_sign_out_everywhere_ends_the_identity_provider_session(demo):
    browser = requests.Session()
    log_in(browser, browser.get(f"{demo['staffsafe']}/oakwood-trust/login"), SAM, "sso")
    back = sign_out_everywhere(browser, f"{demo['staffsafe']}/oakwood-trust/")
    assert back.url == f"{demo['staffsafe']}/oakwood-trust/"
    assert "You have signed out everywhere" in back.text and 'id="sign-in"' in back.text
    assert browser.get(f"{demo['school']}/oakwood/login").url.startswith(f"{IDP}/t/oakwood/login")


def test_sign_out_of_one_app_keeps_the_sso_session(demo):
    browser = requests.Session()
    log_in(browser, browser.get(f"{demo['school']}/oakwood/login"), SAM, "sso")
    page = browser.get(f"{demo['school']}/oakwood/")
    token = re.findall(r'name="csrf_token" value="([^"]+)"', page.text)[0]
    signed_out = browser.post(f"{demo['school']}/oakwood/logout", data={"csrf_token": token})
    assert 'id="sign-in"' in signed_out.text and "still signed in at the identity provider" in signed_out.text
    again = browser.get(f"{demo['school']}/oakwood/login")
    assert again.url == f"{demo['school']}/oakwood/" and claim(again, "name") == "Sam Jones"


def test_the_demo_apps_use_pkce_s256_state_and_nonce(demo):
    from urllib.parse import parse_qs, urlsplit

    redirect = requests.get(f"{demo['school']}/oakwood/login", allow_redirects=False)
    assert redirect.status_code == 302
    location = urlsplit(redirect.headers["Location"])
    params = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{IDP}/authorize"
    assert params["response_type"] == "code" and params["client_id"] == "demo-oakwood"
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert params["state"] and params["nonce"] and "openid" in params["scope"].split()
