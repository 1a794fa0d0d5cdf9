"""The tenant's login page (provider selector), its landing page and sign-out."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask import session as cookie

from ..account_settings.forms import SecondFactorForm
from ..accounts import directory, mfa
from ..errors import RateLimited
from ..web import client_ip, safe_next, tenant_or_404
from . import service, session
from .forms import LoginForm

bp = Blueprint("auth", __name__)


@bp.route("/t/<slug>/login", methods=["GET", "POST"])
def login(slug: str):
    tenant = tenant_or_404(slug)
    form = LoginForm()
    provider, has_sso = directory.page_provider(tenant, form.provider.data or request.args.get("provider"))
    next_url = safe_next(form.next.data or request.args.get("next"))
    error, status = None, 200

    if form.validate_on_submit():
        try:
            account = service.authenticate(tenant, provider, form.email.data, form.password.data, ip=client_ip())
        except (service.LoginFailed, service.NotAccepted) as failure:
            error = failure.message
        except RateLimited as limited:
            error, status = limited.message, 429
        else:
            return after_password(account, tenant, provider, next_url)

    form.provider.data = provider
    form.next.data = next_url or ""
    if not form.is_submitted() and request.args.get("login_hint"):
        # A relying party's login_hint (OIDC Core 3.1.2.1) only fills in the field.
        form.email.data = request.args["login_hint"][:320]
    notice = None
    signed_in = session.current_sign_in()
    if request.args.get("reason") == "not_member" and signed_in is not None:
        notice = service.NOT_A_MEMBER_MESSAGE.format(email=signed_in.account.email, tenant=tenant.name)
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
    """The password was right. An enrolled account gives its code on a second page before any
    sign-in exists; a member whom the school's 2FA policy covers, not yet enrolled, is signed in
    with the password alone and sent to enrol (clients stay closed until then, see oidc)."""
    if account.mfa_enrolled:
        # Whoever was signed in on this browser is not, while this person gives their code.
        session.sign_out()
        cookie[mfa.PENDING_SESSION_KEY] = mfa.pending_marker(account, tenant, provider, next_url)
        return redirect(url_for("auth.second_factor", slug=tenant.slug))
    # Decided before the audit commit, which expires every loaded row (reading them again is a query each).
    if mfa.sign_in_requirement(account, directory.active_membership(account, tenant), ["pwd"]) == "enrol":
        onward = url_for("account_settings.security", tenant=tenant.slug, next=next_url)
    else:
        onward = next_url or url_for("auth.home", slug=tenant.slug)
    session.sign_in(account, amr=["pwd"])
    service.record_sign_in(account, tenant, provider, ["pwd"], ip=client_ip())
    return redirect(onward)


def second_factor_redirect(requirement: str, tenant, next_url: str, *, again: bool = False):
    """Where a sign-in goes to meet `mfa.sign_in_requirement`: the code page, or enrolment.
    `again` asks for a code even where this sign-in already gave one (a fresh confirmation)."""
    if requirement == "verify":
        return redirect(url_for("auth.second_factor", slug=tenant.slug, next=next_url, again=1 if again else None))
    return redirect(url_for("account_settings.security", tenant=tenant.slug, next=next_url))


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
    """The second step: a code from the account's authenticator app, or a recovery code.
    Either after a correct password (a pending marker, no sign-in yet), or as a step-up
    ("Elevate your Access") of a password-only sign-in, which asks for the code alone."""
    tenant = tenant_or_404(slug)
    marker = cookie.get(mfa.PENDING_SESSION_KEY)
    account = mfa.pending_account(marker, tenant)
    signed_in = None
    if account is not None:
        next_url = safe_next(marker.get("next"))
    else:
        cookie.pop(mfa.PENDING_SESSION_KEY, None)
        next_url = safe_next(request.args.get("next"))
        signed_in = session.current_sign_in()
        if signed_in is None or directory.active_membership(signed_in.account, tenant) is None:
            return redirect(url_for("auth.login", slug=slug, next=next_url))
        account = signed_in.account
        if signed_in.has_second_factor and not request.args.get("again"):
            return redirect(next_url or url_for("auth.home", slug=slug))
        if not account.mfa_enrolled:
            return redirect(url_for("account_settings.security", tenant=slug, next=next_url))

    form = SecondFactorForm()
    error, status = None, 200
    if form.validate_on_submit():
        try:
            mfa.verify_second_factor(account, form.code.data, tenant=tenant, ip=client_ip())
        except mfa.InvalidCode as wrong:
            error, status = wrong.message, 400
        except RateLimited as locked:
            error, status = locked.message, 429
        else:
            if signed_in is None:
                amr = ["pwd", *mfa.SECOND_FACTOR_AMR]
                session.sign_in(account, amr=amr)
                service.record_sign_in(account, tenant, marker.get("provider"), amr, ip=client_ip())
            else:
                # Step-up keeps the original auth_time (OIDC Core 2).
                session.add_factors(mfa.SECOND_FACTOR_AMR)
            return redirect(next_url or url_for("auth.home", slug=slug))
    elif form.errors:
        status = 400
    return (
        render_template(
            "auth/second_factor.html", tenant=tenant, form=form, error=error, account=account,
            step_up=signed_in is not None, next_url=next_url if signed_in is not None else None,
            again=bool(request.args.get("again")) and signed_in is not None,
        ),
        status,
    )
