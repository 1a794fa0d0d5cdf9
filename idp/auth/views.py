"""The tenant's login page (provider selector), its landing page and sign-out."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for

from ..accounts import directory
from ..errors import RateLimited
from ..web import client_ip, safe_next, tenant_or_404
from . import service, session
from .forms import LoginForm

bp = Blueprint("auth", __name__)


def selected_provider(tenant, requested: str | None, has_sso: bool) -> str:
    """The provider the page shows: SSO only where the tenant has SSO members."""
    if requested == "sso" and has_sso:
        return "sso"
    return "identity"


@bp.route("/t/<slug>/login", methods=["GET", "POST"])
def login(slug: str):
    tenant = tenant_or_404(slug)
    has_sso = directory.tenant_has_sso_members(tenant)
    form = LoginForm()
    provider = selected_provider(tenant, form.provider.data or request.args.get("provider"), has_sso)
    next_url = safe_next(form.next.data or request.args.get("next"))
    error = None

    if form.validate_on_submit():
        try:
            account = service.authenticate(tenant, provider, form.email.data, form.password.data, ip=client_ip())
        except service.LoginFailed as failure:
            error = failure.message
        except RateLimited as limited:
            error = limited.message
        else:
            return after_password(account, tenant, provider, next_url)

    form.provider.data = provider
    form.next.data = next_url or ""
    notice = None
    signed_in = session.current_sign_in()
    if request.args.get("reason") == "not_member" and signed_in is not None:
        notice = service.NOT_A_MEMBER_MESSAGE.format(email=signed_in.account.email, tenant=tenant.name)
    status = 200 if error is None else (429 if error == service.LOGIN_THROTTLED_MESSAGE else 200)
    return (
        render_template(
            "auth/login.html",
            tenant=tenant,
            form=form,
            provider=provider,
            has_sso=has_sso,
            error=error,
            notice=notice,
            next_url=next_url,
        ),
        status,
    )


def after_password(account, tenant, provider: str, next_url: str | None):
    """The password was right: sign in (the second factor hooks in here) and go on."""
    session.sign_in(account, amr=["pwd"])
    service.record_sign_in(account, tenant, provider, ["pwd"], ip=client_ip())
    return redirect(next_url or url_for("auth.home", slug=tenant.slug))


@bp.route("/t/<slug>/")
def home(slug: str):
    tenant = tenant_or_404(slug)
    signed_in = session.current_sign_in()
    if signed_in is None:
        return redirect(url_for("auth.login", slug=slug))
    membership = directory.active_membership(signed_in.account, tenant)
    if membership is None:
        return redirect(url_for("auth.login", slug=slug, reason="not_member"))
    return render_template("auth/home.html", tenant=tenant, account=signed_in.account, membership=membership)


@bp.route("/logout", methods=["POST"])
def logout():
    session.sign_out()
    slug = request.form.get("tenant")
    if slug:
        return redirect(url_for("auth.login", slug=slug))
    return render_template("auth/signed_out.html")


@bp.route("/t/<slug>/login/verify", methods=["GET", "POST"])
def second_factor(slug: str):
    """Placeholder: the second sign-in step (issue 4) replaces this."""
    from flask import abort

    abort(404)
