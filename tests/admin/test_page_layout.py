"""Pages that fit a phone and a desktop: wide tables scroll inside their own region, ids wrap at
their punctuation, the support contact can be tapped, and browsers find an icon."""

from __future__ import annotations

import re

from flask import render_template_string


def _scroll_regions(html: str) -> list[str]:
    return re.findall(r'<div class="table-scroll" tabindex="0" role="region" aria-label="([^"]+)">\s*<table', html)


def test_admin_tables_scroll_inside_a_labelled_region(oakwood_browser, world):
    assert _scroll_regions(oakwood_browser.get("/t/oakwood/admin/users").get_data(as_text=True)) == [
        "Users of Oakwood Primary School"]
    assert _scroll_regions(oakwood_browser.get("/t/oakwood/admin/audit").get_data(as_text=True)) == ["Audit events"]
    assert _scroll_regions(oakwood_browser.get("/t/oakwood/admin/applications").get_data(as_text=True)) == [
        "Applications of Oakwood Primary School"]


def test_client_ids_wrap_at_their_punctuation_not_mid_word(app):
    with app.test_request_context():
        html = render_template_string("{{ 'oak-app_1.x/cb?a=<b>'|wrap_points }}")
    assert html == "oak-<wbr>app_<wbr>1.<wbr>x/<wbr>cb?<wbr>a=<wbr>&lt;b&gt;"


def test_mail_subjects_wrap_between_words_and_only_ids_anywhere(app):
    css = (app.static_folder and open(f"{app.static_folder}/idp.css").read())
    assert ".outbox-table td, .wraps { word-break: normal; overflow-wrap: break-word; }" in css
    assert "word-break: break-all" not in css.replace(".secret { word-break: break-all; }", "")


def test_support_phone_and_email_are_links_in_the_footer_and_error_pages(client, world):
    page = client.get("/t/oakwood/login").get_data(as_text=True)
    assert '<a href="tel:+441756797766">01756 797766</a>' in page
    assert '<a href="mailto:support@cpoms.co.uk">support@cpoms.co.uk</a>' in page
    missing = client.get("/t/no-such-school/login")
    assert missing.status_code == 404
    assert missing.get_data(as_text=True).count('href="tel:+441756797766"') == 2  # the page and the footer


def test_unavailable_page_links_support_without_a_database(app):
    from idp import outages

    with app.test_request_context():
        html = outages.render_page("unavailable.html", title="Unavailable", message="Try later")
    assert html.count('href="mailto:support@cpoms.co.uk"') == 2


def test_favicon_is_linked_and_served(client, world):
    page = client.get("/t/oakwood/login").get_data(as_text=True)
    assert 'rel="icon" href="/static/favicon.svg" type="image/svg+xml"' in page
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    assert client.get("/static/favicon.svg").status_code == 200
