"""The demo relying parties' own pages, with no identity provider behind them."""

from __future__ import annotations

import json

import pytest

from clients import school_app, staffsafe_app
from clients.rp import NotConfigured, load_registrations
from tests.servers import free_port

NOBODY = f"http://127.0.0.1:{free_port()}"  # nothing listens here


def write_clients_file(path, issuer=NOBODY):
    def entry(slug, name, product, app, base):
        return {"tenant": slug, "tenant_name": name, "product": product, "app": app, "client_id": f"demo-{slug}",
                "client_secret": "s3cret", "redirect_uri": f"{base}/{slug}/callback",
                "post_logout_redirect_uri": f"{base}/{slug}/", "app_url": f"{base}/{slug}/"}

    path.write_text(json.dumps({"issuer": issuer, "clients": {
        "oakwood": entry("oakwood", "Oakwood Primary School", "cpoms", "school", "http://127.0.0.1:5001"),
        "riverside": entry("riverside", "Riverside Academy", "cpoms", "school", "http://127.0.0.1:5001"),
        "oakwood-trust": entry("oakwood-trust", "Oakwood Trust StaffSafe", "staffsafe", "staffsafe",
                               "http://127.0.0.1:5002"),
    }}))
    return path


@pytest.fixture
def clients_file(tmp_path):
    return write_clients_file(tmp_path / "demo-clients.json")


@pytest.fixture
def school(clients_file):
    app = school_app.create_app(clients_file=clients_file)
    app.config["TESTING"] = True
    return app.test_client()


def test_without_demo_data_the_app_says_what_to_run(tmp_path):
    with pytest.raises(NotConfigured, match="run `idp demo-data` first"):
        load_registrations("school", tmp_path / "missing.json")


def test_school_app_lists_its_schools(school):
    page = school.get("/").get_data(as_text=True)
    assert "Oakwood Primary School" in page and "Riverside Academy" in page
    assert "Oakwood Trust StaffSafe" not in page


def test_a_school_page_offers_sign_in_when_signed_out(school):
    page = school.get("/oakwood/").get_data(as_text=True)
    assert 'id="sign-in"' in page and 'href="/oakwood/login"' in page
    assert 'id="sign-out-everywhere"' not in page


def test_staffsafe_app_opens_its_only_tenant(clients_file):
    client = staffsafe_app.create_app(clients_file=clients_file).test_client()
    response = client.get("/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/oakwood-trust/")


def test_unknown_school_is_not_found(school):
    assert school.get("/nowhere/").status_code == 404


def test_sign_in_explains_when_the_identity_provider_is_down(school):
    response = school.get("/oakwood/login")
    assert response.status_code == 502
    assert "The identity provider is not answering" in response.get_data(as_text=True)


def test_a_refused_sign_in_is_explained_on_the_page(school):
    response = school.get("/oakwood/callback?error=access_denied&error_description=Not+a+member",
                          follow_redirects=True)
    assert "Sign-in did not complete: access_denied (Not a member)" in response.get_data(as_text=True)


def test_a_callback_with_a_forged_state_is_refused(school):
    response = school.get("/oakwood/callback?code=abc&state=forged", follow_redirects=True)
    page = response.get_data(as_text=True)
    assert "Sign-in did not complete" in page and 'id="sign-in"' in page


def test_sign_out_forms_need_the_csrf_token(school):
    assert school.post("/oakwood/logout").status_code == 400
    assert school.post("/oakwood/logout/everywhere").status_code == 400
