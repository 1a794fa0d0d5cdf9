"""Browsers that have signed in to an account before (OWASP's "device cookies"): past an account's
ceiling of failed attempts every other browser waits its turn (auth.service), but the owner's own
browser does not have to compete with the guessers for it.

The cookie is signed (itsdangerous, with the app's secret key) and holds a random id for the
browser and keyed digests of the accounts it signed in to (never an email address); it outlives
sign-out, since it grants nothing by itself: the password is still needed."""

from __future__ import annotations

import secrets

from flask import after_this_request, current_app, request
from itsdangerous import BadData, URLSafeTimedSerializer

from .service import KnownBrowser

COOKIE = "idp_known"
MAX_AGE = 365 * 24 * 3600
#: A shared staffroom PC remembers this many accounts (the most recent).
MAX_ACCOUNTS = 20


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="known-browser")


def current() -> KnownBrowser | None:
    """What this browser's cookie vouches for, or None (no cookie, a forged or stale one)."""
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    try:
        data = _serializer().loads(raw, max_age=MAX_AGE)
        browser_id, marks = data["b"], data["a"]
    except (BadData, KeyError, TypeError):
        return None
    if not isinstance(browser_id, str) or not isinstance(marks, list) or not all(isinstance(m, str) for m in marks):
        return None
    return KnownBrowser(browser_id, tuple(marks))


def remember(mark: str) -> None:
    """This browser has just signed in to the account `mark` stands for (auth.service.account_mark)."""
    known = current()
    browser_id = known.id if known is not None else secrets.token_urlsafe(16)
    marks = [m for m in (known.marks if known is not None else ()) if m != mark] + [mark]
    value = _serializer().dumps({"b": browser_id, "a": marks[-MAX_ACCOUNTS:]})

    @after_this_request
    def _set(response):
        response.set_cookie(COOKIE, value, max_age=MAX_AGE, httponly=True, samesite="Lax",
                            secure=current_app.config.get("SESSION_COOKIE_SECURE", False))
        return response
