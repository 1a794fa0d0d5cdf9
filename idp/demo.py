"""Demo tenants, accounts and relying-party clients for `make run` (idempotent).

The demo relying parties in `clients/` read their client ids and secrets from
`<instance>/demo-clients.json`; the database keeps only the secrets' hashes,
as for every client. Loading again keeps whatever already exists and only
adds what is missing, so a person's changes to demo accounts survive."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from .accounts import lifecycle
from .accounts.directory import create_account, get_account_by_email, lookup
from .errors import NotFound
from .extensions import db
from .models import Client
from .models.base import secret_matches
from .oidc.registry import register_client, rotate_secret, update_client
from .tenants import create_tenant, find_tenant

DEMO_PASSWORD = "Demo-Password-2026!"
SCHOOL_APP_URL = "http://127.0.0.1:5001"
STAFFSAFE_APP_URL = "http://127.0.0.1:5002"
CLIENTS_FILE = "demo-clients.json"


@dataclass(frozen=True)
class DemoTenant:
    slug: str
    name: str
    product: str
    #: Which demo app serves this tenant's client: "school" (:5001) or "staffsafe" (:5002).
    app: str


@dataclass(frozen=True)
class DemoAccount:
    email: str
    name: str
    provider: str
    tenants: tuple[str, ...]
    role: str = "staff"
    is_operator: bool = False
    why: str = ""


# Two schools share the SSO user (to show SSO between schools); a third has no
# SSO user at all (its login page is Identity-only, with no provider switch).
TENANTS = (
    DemoTenant("oakwood", "Oakwood Primary School", "cpoms", "school"),
    DemoTenant("elmfield", "Elmfield Academy", "cpoms", "school"),
    DemoTenant("riverside", "Riverside Academy", "cpoms", "school"),
    DemoTenant("oakwood-trust", "Oakwood Trust StaffSafe", "staffsafe", "staffsafe"),
)

ACCOUNTS = (
    DemoAccount("sam.jones@example.org", "Sam Jones", "sso", ("oakwood", "elmfield", "oakwood-trust"),
                why="CPOMS SSO: one sign-in for both SSO schools and StaffSafe"),
    DemoAccount("alex.head@oakwood.example.org", "Alex Head", "identity", ("oakwood",), role="admin",
                why="CPOMS Identity admin of Oakwood (Admin > Users)"),
    DemoAccount("pat.lee@riverside.example.org", "Pat Lee", "identity", ("riverside",),
                why="CPOMS Identity at Riverside, a school with no SSO users"),
    DemoAccount("ops@cpoms.example.org", "Olivia Operator", "sso", ("oakwood-trust",), is_operator=True,
                why="platform operator (/admin)"),
)


def _app_urls(school_app_url: str | None, staffsafe_app_url: str | None) -> dict[str, str]:
    return {
        "school": (school_app_url or SCHOOL_APP_URL).rstrip("/"),
        "staffsafe": (staffsafe_app_url or STAFFSAFE_APP_URL).rstrip("/"),
    }


def clients_file_path() -> Path:
    return Path(current_app.config["SETTINGS"].instance_path) / CLIENTS_FILE


def demo_client_id(slug: str) -> str:
    # Fixed ids make re-loading find the same client; the secret stays random.
    return f"demo-{slug}"


def load_demo_data(school_app_url: str | None = None, staffsafe_app_url: str | None = None) -> dict:
    """Create whatever demo data is missing and write the RP credentials file; returns a summary."""
    settings = current_app.config["SETTINGS"]
    urls = _app_urls(school_app_url, staffsafe_app_url)
    tenants = {t.slug: find_tenant(t.slug) or create_tenant(slug=t.slug, name=t.name, product=t.product)
               for t in TENANTS}

    for spec in ACCOUNTS:
        _ensure_account(spec, tenants)

    known_secrets = _read_clients_file().get("clients", {})
    clients = {}
    for spec in TENANTS:
        base = f"{urls[spec.app]}/{spec.slug}"
        clients[spec.slug] = _ensure_client(spec, tenants[spec.slug], base, known_secrets.get(spec.slug, {}))
    db.session.commit()

    data = {"issuer": settings.issuer, "clients": clients}
    _write_clients_file(data)
    return _summary(settings.issuer, urls, clients)


def _ensure_account(spec: DemoAccount, tenants: dict) -> None:
    members_of = [tenants[slug] for slug in spec.tenants]
    if spec.provider == "sso":
        account = lookup("sso", spec.email)
        if account is None:
            create_account(provider="sso", email=spec.email, tenants=members_of, role=spec.role, name=spec.name,
                           password=DEMO_PASSWORD, is_operator=spec.is_operator)
            return
        for tenant in members_of:
            if account.membership_in(tenant.id) is None:
                # A demo school added since the last load: like any school, it waits for acceptance.
                lifecycle.join_existing(account, tenant, role=spec.role, authority=lifecycle.Authority.command_line())
        return
    try:
        get_account_by_email("identity", spec.email, members_of[0])
    except NotFound:
        create_account(provider="identity", email=spec.email, tenants=members_of, role=spec.role, name=spec.name,
                       password=DEMO_PASSWORD, is_operator=spec.is_operator)


def _ensure_client(spec: DemoTenant, tenant, base_url: str, known: dict) -> dict:
    client_id = demo_client_id(spec.slug)
    redirect_uri = f"{base_url}/callback"
    logout_uri = f"{base_url}/"
    backchannel_uri = f"{base_url}/backchannel-logout"
    client = db.session.scalars(select(Client).where(Client.client_id == client_id)).first()
    secret = known.get("client_secret")
    if client is None:
        registered = register_client(tenant, name=f"{spec.name} (demo app)", redirect_uris=[redirect_uri],
                                     post_logout_redirect_uris=[logout_uri], backchannel_logout_uri=backchannel_uri,
                                     backchannel_logout_session_required=True)
        client = registered.client
        client.client_id = client_id
        secret = registered.client_secret
    else:
        update_client(client, redirect_uris=[redirect_uri], post_logout_redirect_uris=[logout_uri],
                      backchannel_logout_uri=backchannel_uri, backchannel_logout_session_required=True)
        if not (secret and secret_matches(secret, client.secret_hash)):
            # The instance file was lost (or belongs to another database): issue a new secret.
            secret = rotate_secret(client)
    db.session.flush()
    return {
        "tenant": spec.slug,
        "tenant_name": spec.name,
        "product": spec.product,
        "app": spec.app,
        "client_id": client_id,
        "client_secret": secret,
        "redirect_uri": redirect_uri,
        "post_logout_redirect_uri": logout_uri,
        "app_url": logout_uri,
    }


def _read_clients_file() -> dict:
    path = clients_file_path()
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_clients_file(data: dict) -> None:
    path = clients_file_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    # Client secrets: readable by this user only.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.replace(tmp, path)


def _summary(issuer: str, urls: dict[str, str], clients: dict) -> dict:
    lines = [
        "Demo data loaded.",
        "",
        f"Identity provider:  {issuer}",
        "Login pages (each school's \"CPOMS URL\"):",
    ]
    for spec in TENANTS:
        lines.append(f"  {issuer + '/t/' + spec.slug + '/login':<48} {spec.name}")
    lines += ["", "Demo relying parties:"]
    for spec in TENANTS:
        lines.append(f"  {clients[spec.slug]['app_url']:<48} {spec.name}")
    lines += ["", f"Demo accounts (password for all: {DEMO_PASSWORD}):"]
    for account in ACCOUNTS:
        provider = "SSO" if account.provider == "sso" else "Identity"
        lines.append(f"  {account.email:<34} {provider:<8} {', '.join(account.tenants):<34} {account.why}")
    lines += [
        "",
        "To see SSO: open " + clients["oakwood"]["app_url"] + " , click Sign in, choose",
        "\"Login using your CPOMS SSO account\" and sign in as sam.jones@example.org; then open",
        clients["elmfield"]["app_url"] + " or " + clients["oakwood-trust"]["app_url"]
        + " and click Sign in: no password is asked.",
    ]
    return {
        "issuer": issuer,
        "password": DEMO_PASSWORD,
        "tenants": [{"slug": t.slug, "name": t.name, "product": t.product,
                     "login_url": f"{issuer}/t/{t.slug}/login"} for t in TENANTS],
        "accounts": [{"email": a.email, "name": a.name, "provider": a.provider, "tenants": list(a.tenants),
                      "role": a.role, "operator": a.is_operator} for a in ACCOUNTS],
        "apps": {slug: c["app_url"] for slug, c in clients.items()},
        "clients_file": str(clients_file_path()),
        "text": "\n".join(lines),
    }
