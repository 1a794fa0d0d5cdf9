"""One builder per message. Each renders templates/mail/<name>/{subject.txt,body.txt,body.html}
into a plain-text + HTML EmailMessage."""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import parseaddr
from urllib.parse import urlencode

from flask import current_app, render_template

from ..accounts import providers
from ..models.accounts import ROLE_NAMES


def render_message(template: str, *, to: str, **context) -> EmailMessage:
    settings = current_app.config["SETTINGS"]
    context.setdefault("mail_from", settings.mail_from)
    subject = render_template(f"mail/{template}/subject.txt", **context)
    message = EmailMessage()
    message["Subject"] = " ".join(subject.split())
    # IDP_MAIL_FROM may be a bare address or "Name <address>".
    display_name, address = parseaddr(settings.mail_from)
    message["From"] = Address(display_name=display_name or "CPOMS", addr_spec=address or settings.mail_from)
    message["To"] = to
    message["X-IDP-Kind"] = template
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(render_template(f"mail/{template}/body.txt", **context))
    message.add_alternative(render_template(f"mail/{template}/body.html", **context), subtype="html")
    return message


def _password_link_context(*, email: str, name: str, provider: str, tenant, link_url: str,
                           expires_text: str, login_url: str) -> dict:
    return dict(
        email=email,
        name=name if name and name != email else "",
        provider_name=providers.name(provider),
        provider=provider,
        school=tenant.name,
        product=tenant.product_name,
        link_url=link_url,
        expires_text=expires_text,
        login_url=login_url,
    )


def reset_password(**kwargs) -> EmailMessage:
    """"Reset your password": an account that has a password asked for a new one."""
    return render_message("reset_password", to=kwargs["email"], **_password_link_context(**kwargs))


def invitation(**kwargs) -> EmailMessage:
    """"Set your password": an account with no password yet (first-time sign-in)."""
    return render_message("invitation", to=kwargs["email"], **_password_link_context(**kwargs))


def login_url(tenant, provider: str) -> str:
    """The tenant's login page opened on `provider`, as an absolute link for a mail."""
    issuer = current_app.config["SETTINGS"].issuer.rstrip("/")
    return f"{issuer}/t/{tenant.slug}/login?{urlencode({'provider': provider})}"


def join_invitation(*, role: str, **kwargs) -> EmailMessage:
    """"A school added you": an existing account was added to another school, which it can use
    once the person accepts through the link."""
    return render_message("join_invitation", to=kwargs["email"], role_name=ROLE_NAMES.get(role, role),
                          **_password_link_context(**kwargs))


def _person(account) -> dict:
    return dict(name=account.name if account.name and account.name != account.email else "", email=account.email)


def provider_changed(*, account, tenant, provider: str, waiting_to_accept: bool = False) -> EmailMessage:
    """"Use this login from now on": an admin moved the person to another provider."""
    return render_message(
        "provider_changed",
        to=account.email,
        **_person(account),
        school=tenant.name,
        product=tenant.product_name,
        provider=provider,
        provider_name=providers.name(provider),
        login_url=login_url(tenant, provider),
        has_password=account.has_password,
        waiting_to_accept=waiting_to_accept,
    )


def email_changed(*, account, tenant, old_email: str) -> EmailMessage:
    """To the old address: the account's email address was changed by someone else (its password
    and second factors went with it)."""
    return render_message(
        "email_changed",
        to=old_email,
        **_person(account),
        old_email=old_email,
        new_email=account.email,
        school=tenant.name,
        product=tenant.product_name,
        provider_name=providers.name(account.provider),
    )


def second_factor_changed(*, account, tenant, kind_name: str = "", factor_name: str = "", added: bool = False,
                          reset: bool = False) -> EmailMessage:
    """"Security key added to your account" (or removed; or an authenticator app; or, `reset`,
    all of them removed by the school): told by mail, apart from the sign-in that made the change,
    so a person whose password was stolen finds out."""
    issuer = current_app.config["SETTINGS"].issuer.rstrip("/")
    query = f"?{urlencode({'tenant': tenant.slug})}" if tenant is not None else ""
    return render_message(
        "second_factor_changed",
        to=account.email,
        **_person(account),
        product=tenant.product_name if tenant is not None else "CPOMS",
        provider_name=providers.name(account.provider),
        kind_name=kind_name,
        factor_name=factor_name,
        added=added,
        reset=reset,
        school=tenant.name if tenant is not None else "CPOMS",
        security_url=f"{issuer}/account/security{query}",
    )
