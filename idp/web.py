"""Request-side helpers every blueprint shares: the client's IP, safe `next`
URLs, and loading the tenant named in the URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import abort, request

from .models import Tenant
from .tenants import find_tenant


def client_ip() -> str:
    # ProxyFix (IDP_TRUSTED_PROXIES) has already applied X-Forwarded-For when trusted.
    return request.remote_addr or "unknown"


#: Longer than any request line the servers accept (an /authorize URL with a long `state`), and
#: what a pending second step keeps (BrowserSession.next_url).
MAX_NEXT_LENGTH = 8192


def safe_next(url: str | None) -> str | None:
    """Only same-site paths are followed after sign-in (no open redirect)."""
    if not url or len(url) > MAX_NEXT_LENGTH:
        return None
    if "\\" in url or any(ord(ch) < 32 for ch in url):
        return None
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not url.startswith("/") or url.startswith("//"):
        return None
    return url


NO_SUCH_SCHOOL = "There is no CPOMS system at this address. Please check your school's CPOMS URL."


def tenant_or_404(slug: str) -> Tenant:
    tenant = find_tenant(slug)
    if tenant is None:
        abort(404, description=NO_SUCH_SCHOOL)
    return tenant


def login_page_or_404(slug: str):
    """The school's login page facts (directory.LoginPage) in one statement, or a 404."""
    from .accounts.directory import login_page

    page = login_page(slug)
    if page is None:
        abort(404, description=NO_SUCH_SCHOOL)
    return page


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def refuse_nul_characters() -> None:
    """No form or query value may hold a NUL character: no one types it, and PostgreSQL
    refuses it in text (a 500 there), so it is a clear 400 here for every endpoint."""
    # request.form is empty (and request.args too) unless the request has a form body (a query string).
    sources = (request.args if request.query_string else None,
               request.form if request.mimetype in _FORM_TYPES else None)
    for values in filter(None, sources):
        for value in values.listvalues():
            if any("\x00" in item for item in value):
                abort(400, description="The request contains a character that is not allowed (NUL).")
