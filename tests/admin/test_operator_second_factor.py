"""Operators see and change every school, so a password alone never opens the platform pages:
they enrol a second factor on their first visit, use it at every sign-in, and give it again
before a platform change when the last one is more than 15 minutes old."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from idp.accounts import mfa
from idp.accounts.directory import create_account
from idp.extensions import db
from idp.models import Tenant
from tests.conftest import PASSWORD, Browser
from tests.mfa.conftest import enrol

NEW_TENANT = {"slug": "elm", "name": "Elm School", "product": "cpoms", "timezone": "Europe/London",
              "require_2fa": "off"}


@pytest.fixture
def operator(world, frozen_clock):
    account = create_account(provider="sso", email="ops@cpoms.example", name="Ops", tenants=[world.staffsafe],
                             password=PASSWORD, is_operator=True)
    db.session.commit()
    return account


def sign_in(app, code=None):
    browser = Browser(app.test_client())
    response = browser.login("oakwood-staffsafe", "ops@cpoms.example", provider="sso")
    if code is not None:
        response = browser.submit(response.headers["Location"], {"code": code})
    assert response.status_code == 302
    return browser


def test_an_operator_without_a_second_factor_is_sent_to_set_one_up(app, operator):
    browser = sign_in(app)
    response = browser.get("/admin")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/account/security" and parse_qs(location.query)["next"] == ["/admin"]
    page = browser.get(response.headers["Location"]).get_data(as_text=True)
    assert "CPOMS platform operators must use two-step verification" in page
    assert browser.client.post("/admin/tenants/new", data=NEW_TENANT).status_code in (302, 400)
    assert db.session.scalars(select(Tenant).where(Tenant.slug == "elm")).first() is None


def test_an_enrolled_operator_gives_the_code_at_sign_in_and_then_sees_the_platform(app, operator):
    enrolment = enrol(operator)
    browser = sign_in(app, enrolment.code())
    assert browser.get("/admin").status_code == 200


def test_a_platform_change_needs_a_code_from_the_last_15_minutes(app, operator, frozen_clock):
    enrolment = enrol(operator)
    browser = sign_in(app, enrolment.code())
    frozen_clock.advance(timedelta(minutes=16))
    assert browser.get("/admin/tenants/new").status_code == 200  # looking needs no fresh code
    refused = browser.submit("/admin/tenants/new", NEW_TENANT)
    assert refused.status_code == 302
    verify = urlsplit(refused.headers["Location"])
    assert verify.path == "/login/verify"  # the platform's own second step
    assert parse_qs(verify.query)["again"] == ["1"] and parse_qs(verify.query)["next"] == ["/admin/tenants/new"]
    assert db.session.scalars(select(Tenant).where(Tenant.slug == "elm")).first() is None
    page = browser.get(refused.headers["Location"])
    assert page.status_code == 200 and "Confirm it is you" in page.get_data(as_text=True)
    confirmed = browser.submit(refused.headers["Location"], {"code": enrolment.code()}, post_url=refused.headers["Location"])
    assert confirmed.headers["Location"] == "/admin/tenants/new"
    assert browser.submit("/admin/tenants/new", NEW_TENANT).status_code == 302
    assert db.session.scalars(select(Tenant).where(Tenant.slug == "elm")).one()


def test_an_operator_cannot_remove_their_only_second_factor(app, operator):
    enrolment = enrol(operator)
    assert mfa.removal_refusal(operator, enrolment.device) == mfa.OPERATOR_LAST_DEVICE_MESSAGE


def test_where_operators_must_use_a_key_a_platform_change_needs_a_key_from_the_last_15_minutes(
        app, operator, frozen_clock):
    """An app code does not refresh a sign-in that must be phishing-resistant: the change asks for
    the key again, and the code form is not offered."""
    from dataclasses import replace

    from idp.accounts import security_keys
    from tests.webauthn.conftest import ORIGIN, register
    from tests.webauthn.test_pages import csrf_token_from, options

    app.config["SETTINGS"] = replace(app.config["SETTINGS"], operators_require_security_key=True)
    enrolment = enrol(operator)
    key, _, _ = register(operator)
    browser = Browser(app.test_client())
    step = browser.login("oakwood-staffsafe", "ops@cpoms.example", provider="sso").headers["Location"]
    page = browser.get(step).get_data(as_text=True)
    answer = key.get(options(browser, "/t/oakwood-staffsafe/login/verify/key-options", page), ORIGIN)
    browser.client.post(step, data={"key-csrf_token": csrf_token_from(page), "key-credential": json.dumps(answer)})
    assert browser.get("/admin").status_code == 200
    frozen_clock.advance(timedelta(minutes=16))

    refused = browser.submit("/admin/tenants/new", NEW_TENANT)
    verify = urlsplit(refused.headers["Location"])
    assert verify.path == "/login/verify" and parse_qs(verify.query)["key"] == ["1"]
    confirming = browser.get(refused.headers["Location"]).get_data(as_text=True)
    assert "Confirm it is you" in confirming and 'name="code"' not in confirming
    # An app code sent anyway (the page has no form for one) does not count.
    browser.client.post(refused.headers["Location"], data={"csrf_token": csrf_token_from(confirming),
                                                           "code": enrolment.code()})
    assert browser.submit("/admin/tenants/new", NEW_TENANT).headers["Location"].startswith("/login/verify")
    assert db.session.scalars(select(Tenant).where(Tenant.slug == "elm")).first() is None

    options_url = re.search(r'data-options-url="([^"]+)"', confirming).group(1).replace("&amp;", "&")
    assert "again=1" in options_url  # the page asks for options for this confirmation
    answer = key.get(options(browser, options_url, confirming), ORIGIN)
    back = browser.client.post(refused.headers["Location"], data={"key-csrf_token": csrf_token_from(confirming),
                                                                  "key-credential": json.dumps(answer)})
    assert back.headers["Location"] == "/admin/tenants/new"
    assert browser.submit("/admin/tenants/new", NEW_TENANT).status_code == 302
    assert db.session.scalars(select(Tenant).where(Tenant.slug == "elm")).one()
    assert security_keys.keys_of(operator)[0].last_used_at is not None
