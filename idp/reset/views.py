"""The forgotten-password page (/t/<slug>/forgot-password) and the link page (/reset/<token>)."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from .. import background
from ..accounts import directory, passwords
from ..accounts.providers import name as provider_name
from ..errors import DeliveryFailed, PolicyViolation, RateLimited
from ..web import client_ip, login_page_or_404
from . import links
from .forms import PROVIDER_HINTS, AcceptForm, ForgotPasswordForm, SetPasswordForm

bp = Blueprint("reset", __name__)

PASSWORD_SET_MESSAGE = "Your new password has been saved. You can now log in with it."
ACCEPTED_MESSAGE = "You have accepted {tenant}. You can now log in to it with your {provider} account."
SET_PASSWORD_NEXT_MESSAGE = "You have accepted {tenant}. Now set a password for your {provider} account."


@bp.route("/t/<slug>/forgot-password", methods=["GET", "POST"])
def forgot_password(slug: str):
    page = login_page_or_404(slug)
    tenant = page.tenant
    form = ForgotPasswordForm()
    if request.method == "GET":
        form.provider.data = request.args.get("provider")
    form.provider.data, has_sso = page.provider(form.provider.data)
    status, unknown_email = 200, False

    if request.method == "POST" and form.validate():
        try:
            result = links.request_reset(tenant, form.provider.data, form.email.data, ip=client_ip())
        except RateLimited as limited:
            form.email.errors.append(limited.message)
            status = 429
        except DeliveryFailed as failed:
            return render_template("reset/delivery_failed.html", tenant=tenant, message=failed.message,
                                   provider=form.provider.data), 503
        else:
            if result.outcome == "unknown":
                form.email.errors.append(links.UNKNOWN_EMAIL_MESSAGE)
                unknown_email = True
            else:
                if result.deliver_later is not None:
                    background.run_soon(result.deliver_later)
                return render_template("reset/link_sent.html", tenant=tenant, result=result, has_sso=has_sso,
                                       mail_from=current_app.config["SETTINGS"].mail_from)

    return render_template(
        "reset/forgot_password.html", tenant=tenant, form=form, has_sso=has_sso, unknown_email=unknown_email,
        provider_hints=PROVIDER_HINTS,
    ), status


@bp.route("/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    try:
        link = links.open_link(token, ip=client_ip())
    except links.LinkExpired as expired:
        return _expired_page(expired)
    form = SetPasswordForm()
    if form.validate_on_submit():
        try:
            links.redeem_reset_link(link, form.password.data, form.confirm.data, ip=client_ip())
        except links.LinkExpired as expired:
            return _expired_page(expired)
        except PolicyViolation as refused:
            for problem in refused.problems:
                target = form.confirm if problem == passwords.PASSWORDS_DIFFER else form.password
                target.errors.append(problem)
        else:
            # Not signed in here: the login page lets the browser save the new password
            # over the old one, and the tenant's second-factor rules still apply.
            flash(PASSWORD_SET_MESSAGE, "success")
            return redirect(url_for("auth.login", slug=link.tenant.slug, provider=link.account.provider))
    met = passwords.rules_met(form.password.data or "", email=link.account.email,
                              confirmation=form.confirm.data) if request.method == "POST" else set()
    return render_template(
        "reset/set_password.html", link=link, tenant=link.tenant, account=link.account, form=form,
        rules=passwords.rule_descriptions(), met=met, submitted=request.method == "POST",
        min_length=current_app.config["SETTINGS"].password_min_length,
    )


def _expired_page(expired: links.LinkExpired):
    link = expired.link
    form = ForgotPasswordForm(formdata=None)
    tenant = link.tenant if link is not None else None
    has_sso = False
    if link is not None:
        form.email.data = link.account.email
        form.provider.data, has_sso = directory.page_provider(tenant, link.account.provider)
    return render_template("reset/link_expired.html", tenant=tenant, form=form, has_sso=has_sso,
                           provider_hints=PROVIDER_HINTS, reason=expired.reason, heading=expired.message,
                           link=link), 410


@bp.route("/join/<token>", methods=["GET", "POST"])
def accept_membership(token: str):
    """A school added an existing account: the person accepts here, from the link mailed to them.
    Opening the page changes nothing (mail scanners open links); the button does."""
    try:
        link = links.open_link(token, ip=client_ip(), purposes=(links.JOIN,))
    except links.LinkExpired as expired:
        return render_template("reset/join_link_expired.html", tenant=expired.link.tenant if expired.link else None,
                               link=expired.link), 410
    form = AcceptForm()
    if form.validate_on_submit():
        try:
            first_time = links.redeem_join_link(link, ip=client_ip())
        except links.LinkExpired as expired:
            return render_template("reset/join_link_expired.html", tenant=link.tenant, link=expired.link), 410
        words = dict(tenant=link.tenant.name, provider=provider_name(link.account.provider))
        if first_time is not None:
            flash(SET_PASSWORD_NEXT_MESSAGE.format(**words), "success")
            return redirect(url_for("reset.reset_password", token=first_time.token))
        flash(ACCEPTED_MESSAGE.format(**words), "success")
        return redirect(url_for("auth.login", slug=link.tenant.slug, provider=link.account.provider))
    membership = link.account.membership_in(link.tenant_id)
    return render_template("reset/accept_membership.html", link=link, tenant=link.tenant, account=link.account,
                           membership=membership, form=form)
