"""Command line: `idp ...` or `flask --app idp ...` (interface.md).

Every command that creates something prints it, or with --json prints JSON.
Errors are one clear line on stderr and a non-zero exit code."""

from __future__ import annotations

import functools
import json
import sys

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from .errors import DomainError
from .extensions import db


def _emit(data: dict, as_json: bool, text: str) -> None:
    click.echo(json.dumps(data, indent=2, default=str) if as_json else text)


def domain_command(func):
    """Turn domain errors into `Error: ...` and exit code 1, rolling back."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            result = func(*args, **kwargs)
            db.session.commit()
            return result
        except DomainError as error:
            db.session.rollback()
            click.echo(f"Error: {error.message}", err=True)
            sys.exit(1)

    return wrapper


tenant_cli = click.Group("tenant", help="Tenants (one school's CPOMS or StaffSafe system).")
client_cli = click.Group("client", help="OIDC clients (relying parties) of a tenant.")
user_cli = click.Group("user", help="Accounts and their tenant memberships.")
keys_cli = click.Group("keys", help="ID token signing keys.")


@tenant_cli.command("create")
@click.option("--slug", required=True)
@click.option("--name", required=True)
@click.option("--product", type=click.Choice(["cpoms", "staffsafe"]), default="cpoms", show_default=True)
@click.option("--timezone", default=None, help="IANA timezone (default IDP_TIMEZONE)")
@click.option("--require-2fa", type=click.Choice(["off", "admins", "everyone"]), default="off", show_default=True)
@click.option("--hide-unknown-email", is_flag=True, help="Do not reveal whether an email has an account")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
@domain_command
def tenant_create(slug, name, product, timezone, require_2fa, hide_unknown_email, as_json):
    from .tenants import create_tenant

    tenant = create_tenant(
        slug=slug, name=name, product=product, timezone=timezone,
        require_2fa=require_2fa, hide_unknown_email=hide_unknown_email,
    )
    data = {"slug": tenant.slug, "name": tenant.name, "product": tenant.product, "timezone": tenant.timezone,
            "require_2fa": tenant.require_2fa, "hide_unknown_email": tenant.hide_unknown_email}
    _emit(data, as_json, f"Created tenant {tenant.slug} ({tenant.name}, {tenant.product_name}, {tenant.timezone})")


@client_cli.command("register")
@click.option("--tenant", "slug", required=True)
@click.option("--name", required=True)
@click.option("--redirect-uri", "redirect_uris", multiple=True, required=True)
@click.option("--post-logout-redirect-uri", "logout_uris", multiple=True)
@click.option("--public", is_flag=True, help="A public client (no secret; PKCE required)")
@click.option("--backchannel-logout-uri", default=None, help="Where logout tokens are POSTed (Back-Channel Logout)")
@click.option("--backchannel-logout-session-required", is_flag=True, help="The client needs sid in logout tokens")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
@domain_command
def client_register(slug, name, redirect_uris, logout_uris, public, backchannel_logout_uri,
                    backchannel_logout_session_required, as_json):
    from .oidc.registry import register_client
    from .tenants import get_tenant

    registered = register_client(
        get_tenant(slug), name=name, redirect_uris=list(redirect_uris),
        post_logout_redirect_uris=list(logout_uris), public=public,
        backchannel_logout_uri=backchannel_logout_uri,
        backchannel_logout_session_required=backchannel_logout_session_required,
    )
    client = registered.client
    data = {"client_id": client.client_id, "tenant": slug, "name": client.name,
            "redirect_uris": client.redirect_uris, "post_logout_redirect_uris": client.post_logout_redirect_uris,
            "public": client.is_public, "backchannel_logout_uri": client.backchannel_logout_uri,
            "backchannel_logout_session_required": client.backchannel_logout_session_required}
    text = f"client_id: {client.client_id}"
    if registered.client_secret:
        data["client_secret"] = registered.client_secret
        text += f"\nclient_secret: {registered.client_secret}\n(The secret is shown only now; store it safely.)"
    _emit(data, as_json, text)


@client_cli.command("token")
@click.option("--tenant", "slug", required=True)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
@domain_command
def client_token(slug, as_json):
    """Create an initial access token for dynamic client registration into a tenant (shown once)."""
    from .admin.applications import create_initial_access_token
    from .tenants import get_tenant

    token = create_initial_access_token(get_tenant(slug), actor=None, ip=None)
    _emit({"tenant": slug, "initial_access_token": token}, as_json,
          f"initial_access_token: {token}\n(The token is shown only now; a client registered with it belongs to {slug}.)")


def _account_data(account) -> dict:
    return {
        "sub": account.sub, "email": account.email, "name": account.name, "provider": account.provider,
        "tenants": {m.tenant.slug: {"role": m.role, "active": m.active, "accepted": not m.is_pending}
                    for m in account.memberships},
        "invited": not account.has_password, "operator": account.is_operator,
        "email_verified": account.email_verified,
    }


@user_cli.command("create")
@click.option("--email", required=True)
@click.option("--provider", type=click.Choice(["identity", "sso"]), required=True)
@click.option("--tenant", "slugs", multiple=True, required=True)
@click.option("--role", type=click.Choice(["staff", "admin"]), default="staff", show_default=True)
@click.option("--password", default=None, help="Development only; without it the user is invited (first-time link)")
@click.option("--name", default="")
@click.option("--operator", is_flag=True, help="A platform operator (manages tenants at /admin; a CPOMS SSO account)")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
@domain_command
def user_create(email, provider, slugs, role, password, name, operator, as_json):
    from flask import current_app

    from .accounts import lifecycle
    from .accounts.directory import create_account
    from .errors import NotAllowed
    from .tenants import get_tenant

    tenants = [get_tenant(slug) for slug in dict.fromkeys(slugs)]
    if password is not None:
        if current_app.config["SETTINGS"].is_production:
            # Only the person who controls the address may hold the account's credentials.
            raise NotAllowed("--password is for development only: in production the person sets their own "
                             "password through the first-time link mailed to them")
        from .accounts.passwords import check_policy

        check_policy(password, email=email, name=name)
    account = create_account(
        provider=provider, email=email, tenants=tenants, role=role, name=name,
        password=password, is_operator=operator,
    )
    state = "with a password"
    if password is None:
        joined = lifecycle.Joined(account.membership_in(tenants[0].id), account, created=True, pending=False)
        lifecycle.send_welcome(joined, tenants[0], lifecycle.Authority.command_line())
        state = "invited (no password yet; invitation sent)" if joined.mailed else _NOT_SENT
    _emit(_account_data(account), as_json,
          f"Created {provider} account {account.email} in {', '.join(slugs)} as {role}, {state}")


_NOT_SENT = "invited (no password yet; invitation NOT sent: the mail server refused it)"


@user_cli.command("assign")
@click.option("--email", required=True)
@click.option("--provider", type=click.Choice(["identity", "sso"]), default="sso", show_default=True)
@click.option("--tenant", "slug", required=True)
@click.option("--role", type=click.Choice(["staff", "admin"]), default="staff", show_default=True)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
@domain_command
def user_assign(email, provider, slug, role, as_json):
    """Add an SSO account to another tenant: it can sign in there once the person accepts the
    link mailed to them (an Identity account has exactly one tenant)."""
    from .accounts import lifecycle
    from .accounts.directory import get_account_by_email
    from .errors import InvalidInput
    from .tenants import get_tenant

    if provider != "sso":
        # Accepted as a choice only to explain the rule rather than print a bare usage error.
        raise InvalidInput("An Identity account belongs to exactly one tenant; "
                           "only a CPOMS SSO account can be assigned to another tenant")
    tenant = get_tenant(slug)
    account = get_account_by_email(provider, email, tenant)
    joined = lifecycle.join_existing(account, tenant, role=role, authority=lifecycle.Authority.command_line())
    mailed = "the acceptance link was mailed to them" if joined.mailed else "the acceptance mail could NOT be sent"
    _emit(_account_data(account), as_json,
          f"{account.email} (SSO) was added to {slug} as {role}; it can sign in there once the person accepts "
          f"({mailed})")


@user_cli.command("change-email")
@click.option("--email", required=True, help="The account's current address")
@click.option("--provider", type=click.Choice(["identity", "sso"]), required=True)
@click.option("--tenant", "slug", default=None, help="The Identity account's tenant")
@click.option("--new-email", required=True)
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
@domain_command
def user_change_email(email, provider, slug, new_email, as_json):
    """Correct an account's address (operators). Its password and second factors are removed and
    every sign-in ends: the new address gets a first-time link, the old one a notice."""
    from .accounts import lifecycle
    from .accounts.directory import get_account_by_email
    from .tenants import get_tenant

    tenant = get_tenant(slug) if slug else None
    account = get_account_by_email(provider, email, tenant)
    change = lifecycle.change_email(account, new_email, lifecycle.Authority.command_line())
    if change is None:
        _emit(_account_data(account), as_json, f"{account.email} already has that address; nothing changed")
        return
    sent = "a first-time link was mailed to it" if change.link_sent else "the first-time link could NOT be sent"
    _emit(_account_data(account), as_json,
          f"{change.old} is now {change.new}: password and second factors removed, sign-ins ended; {sent}")


@keys_cli.command("rotate")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
@domain_command
def keys_rotate(as_json):
    from .oidc.keys import rotate_signing_key

    key = rotate_signing_key()
    _emit({"kid": key.kid, "alg": key.alg}, as_json,
          f"New signing key {key.kid}; older keys stay published until their tokens expire")


@click.command("demo-data")
@click.option("--school-app-url", default=None, help="Base URL of the demo school app (default http://127.0.0.1:5001)")
@click.option("--staffsafe-app-url", default=None,
              help="Base URL of the demo StaffSafe app (default http://127.0.0.1:5002)")
@click.option("--json", "as_json", is_flag=True)
@with_appcontext
@domain_command
def demo_data(school_app_url, staffsafe_app_url, as_json):
    """Load the demo tenants, users and clients (idempotent)."""
    from .demo import load_demo_data

    summary = load_demo_data(school_app_url=school_app_url, staffsafe_app_url=staffsafe_app_url)
    _emit(summary, as_json, summary.get("text", "Demo data loaded"))


@click.command("worker")
@click.option("--once", is_flag=True, help="One round of due work, then exit (for cron or tests)")
@click.option("--interval", default=1.0, show_default=True, type=float, help="Seconds between rounds")
@with_appcontext
def worker(once, interval):
    """Deliver back-channel logout notices (and clear expired sign-ins). Run one or more anywhere:
    they share the work through the database."""
    from .worker import run

    run(once=once, interval=interval)


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def serve(host, port):
    """Development server (production: gunicorn wsgi:app)."""
    import logging

    from flask import current_app
    from werkzeug.serving import make_server

    # Werkzeug's access log prints whole URLs (reset tokens, query strings); idp.request_log logs requests safely.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # Bind first, so "listening" is printed only once it is true (a busy port fails with its number).
    try:
        server = make_server(host, port, current_app._get_current_object(), threaded=True)
    except (OSError, SystemExit):
        raise click.ClickException(f"Port {port} on {host} is already in use or cannot be used: choose another "
                                   "with --port (make run: IDP_PORT).") from None
    click.echo(f"Identity provider listening on http://{host}:{port} (issuer {current_app.config['SETTINGS'].issuer})")
    # Not app.run(): Flask ignores it inside a `flask`/FlaskGroup command.
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def register_commands(app: Flask) -> None:
    for command in (tenant_cli, client_cli, user_cli, keys_cli, demo_data, worker, serve):
        app.cli.add_command(command)


def _create_app_for_cli():
    from . import create_app
    from .config import UnsafeForProduction

    try:
        return create_app()
    except UnsafeForProduction as refused:
        # An operator's mistake, not a bug: say which settings, no traceback.
        click.echo(f"Error: {refused}", err=True)
        sys.exit(1)


def main() -> None:
    cli = FlaskGroup(create_app=_create_app_for_cli, add_default_commands=False,
                     help="CPOMS identity provider")
    cli.main(prog_name="idp")
