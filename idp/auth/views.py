"""The tenant's login page (provider selector), the platform's own sign-in, the second step, the
landing page and sign-out. Who is signed in is idp.auth.session's business (the one gate)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, flash, redirect, render_template, request, url_for

from ..account_settings.forms import SecondFactorForm, SecurityKeyForm
from ..accounts import directory, mfa, providers, security_keys
from ..errors import RateLimited
from ..tenants import find_tenant
from ..web import client_ip, login_page_or_404, safe_next, tenant_or_404
from . import known_browsers, service, session
from .forms import LoginForm, PasskeyForm

bp = Blueprint("auth", __name__)

SIGNED_OUT_MESSAGE = "You have signed out of CPOMS on this browser."


@bp.route("/t/<slug>/login", methods=["GET", "POST"])
def login(slug: str):
    page = login_page_or_404(slug)
    form = LoginForm()
    provider, has_sso = page.provider(form.provider.data or request.args.get("provider"))
    return _login_page(form, page.tenant, provider, has_sso, "auth/login.html")


@bp.route("/login", methods=["GET", "POST"])
def platform_login():
    """The platform's own sign-in (no school): CPOMS SSO accounts, for operators' /admin and for
    Account settings reached without a school's address."""
    return _login_page(LoginForm(), None, providers.SSO.key, False, "auth/platform_login.html")


def _login_page(form: LoginForm, tenant, provider: str, has_sso: bool, template: str):
    next_url = safe_next(form.next.data or request.args.get("next"))
    error, status, failed = None, 200, False
    if form.validate_on_submit():
        try:
            account = service.authenticate(tenant, provider, form.email.data, form.password.data, ip=client_ip(),
                                           browser=known_browsers.current())
        except service.LoginFailed as failure:
            error, failed = failure.message, True
        except service.NotAccepted as failure:
            error = failure.message
        except RateLimited as limited:
            error, status = limited.message, 429
        else:
            known_browsers.remember(service.account_mark(tenant, provider, account.email))
            return after_password(account, tenant, provider, next_url)

    form.provider.data = provider
    form.next.data = next_url or ""
    if not form.is_submitted() and request.args.get("login_hint"):
        # A relying party's login_hint (OIDC Core 3.1.2.1) only fills in the field.
        form.email.data = request.args["login_hint"][:320]
    notice = None
    if tenant is not None and request.args.get("reason") == "not_member":
        signed_in = session.current_sign_in()
        if signed_in is not None:
            notice = service.NOT_A_MEMBER_MESSAGE.format(email=signed_in.account.email, tenant=tenant.name)
    return render_template(template, tenant=tenant, form=form, provider=provider, has_sso=has_sso, error=error,
                           failed=failed, notice=notice, next_url=next_url), status


def after_password(account, tenant, provider: str, next_url: str | None):
    """The password was right. An enrolled account gives its code on a second page before any
    sign-in exists; a member whom the school's 2FA policy covers, not yet enrolled, is signed in
    with the password alone and sent to enrol (clients stay closed until then, see oidc)."""
    if account.mfa_enrolled:
        session.begin_second_step(account, tenant=tenant, provider=provider, next_url=next_url)
        return redirect(session.where_to_meet("verify", tenant, None))
    membership = directory.active_membership(account, tenant) if tenant is not None else None
    requirement = (mfa.sign_in_requirement(account, membership, ["pwd"]) if tenant is not None
                   else mfa.operator_requirement(account, ["pwd"]) if account.is_operator else None)
    onward = (session.where_to_meet(requirement, tenant, next_url) if requirement in ("enrol", "enrol_key")
              else next_url or _landing(tenant))
    session.sign_in(account, tenant=tenant, provider=provider, amr=["pwd"])
    service.record_sign_in(account, tenant, provider, ["pwd"], ip=client_ip())
    return redirect(onward)


def _landing(tenant) -> str:
    return url_for("auth.home", slug=tenant.slug) if tenant is not None else url_for("account_settings.sessions")


@bp.route("/t/<slug>/")
def home(slug: str):
    tenant = tenant_or_404(slug)
    signed_in = session.guard(tenant)
    membership = directory.active_membership(signed_in.account, tenant)
    return render_template("auth/home.html", tenant=tenant, account=signed_in.account, membership=membership)


@bp.route("/logout", methods=["POST"])
def logout():
    """The IdP's own sign-out button: this browser's sign-in ends, and the applications it opened
    are told (back-channel logout). The login page then says so."""
    ended = session.sign_out()
    slug = request.form.get("tenant")
    tenant = find_tenant(slug) if slug else None
    if tenant is not None:
        flash(SIGNED_OUT_MESSAGE, "success")
        for client in ended.notified if ended is not None else []:
            flash(f"{client.name} was told to sign you out too.", "success")
        # "Sign in with a different account" goes on to where the person was going.
        return redirect(url_for("auth.login", slug=tenant.slug, next=safe_next(request.form.get("next"))))
    return render_template("auth/signed_out.html", notified=ended.notified if ended is not None else [])


@bp.route("/t/<slug>/login/verify", methods=["GET", "POST"])
def second_factor(slug: str):
    return _second_factor(tenant_or_404(slug))


@bp.route("/login/verify", methods=["GET", "POST"])
def platform_second_factor():
    return _second_factor(None)


@bp.route("/t/<slug>/login/verify/key-options", methods=["POST"])
def second_factor_key_options(slug: str):
    return _second_factor_key_options(tenant_or_404(slug))


@bp.route("/login/verify/key-options", methods=["POST"])
def platform_second_factor_key_options():
    return _second_factor_key_options(None)


@dataclass(frozen=True)
class _SecondStep:
    """Whose second step this is: a half-done sign-in (after the password), or a live sign-in
    stepping up; where it continues to; whether only a security key will do."""

    account: object
    pending: object
    signed_in: object
    next_url: str | None
    key_only: bool


def _second_step(tenant):
    """The second step being taken in this browser at `tenant`, or the redirect that replaces it."""
    key_only = bool(request.args.get("key"))
    pending = session.pending_second_step(tenant)
    if pending is not None:
        return _SecondStep(pending.account, pending, None, safe_next(pending.next_url), key_only)
    next_url = safe_next(request.args.get("next"))
    signed_in = session.current_sign_in(tenant)
    if signed_in is None or (tenant is not None and directory.active_membership(signed_in.account, tenant) is None):
        return redirect(session.login_url(tenant, next_url))
    account = signed_in.account
    met = mfa.is_phishing_resistant(signed_in.amr) if key_only else signed_in.has_second_factor
    if met and not request.args.get("again"):
        return redirect(next_url or _landing(tenant))
    if not (account.has_security_key if key_only else account.mfa_enrolled):
        return redirect(session.where_to_meet("enrol_key" if key_only else "enrol", tenant, next_url))
    return _SecondStep(account, None, signed_in, next_url, key_only)


def _second_factor_key_options(tenant):
    """navigator.credentials.get()'s options for this second step (JSON; the CSRF header checked)."""
    step = _second_step(tenant)
    if not isinstance(step, _SecondStep):
        return {"error": "Your sign-in has expired. Reload the page and sign in again."}, 409
    return security_keys.second_factor_options(step.account, binding=session.webauthn_binding())


def _second_factor(tenant):
    """The second step: a security key, a code from the account's authenticator app, or a recovery
    code. Either after a correct password (a half-done sign-in), or as a step-up ("Elevate your
    Access") of a sign-in, which asks for the second factor alone."""
    step = _second_step(tenant)
    if not isinstance(step, _SecondStep):
        return step
    account, signed_in = step.account, step.signed_in

    form, key_form = SecondFactorForm(), SecurityKeyForm(prefix="key")
    error, status = None, 200
    if request.method == "POST" and "key-credential" in request.form:
        if key_form.validate_on_submit():
            try:
                amr = security_keys.verify_second_factor(account, key_form.credential.data, tenant=tenant,
                                                         ip=client_ip(), binding=session.webauthn_binding())
            except security_keys.KeyRefused as refused:
                error, status = refused.message, 400
            else:
                return _second_step_done(step, tenant, amr)
        else:
            error, status = security_keys.NOT_A_RESPONSE_MESSAGE, 400
    elif not step.key_only and form.validate_on_submit():
        try:
            mfa.verify_second_factor(account, form.code.data, tenant=tenant, ip=client_ip())
        except mfa.InvalidCode as wrong:
            error, status = wrong.message, 400
        except RateLimited as locked:
            error, status = locked.message, 429
        else:
            return _second_step_done(step, tenant, mfa.SECOND_FACTOR_AMR)
    elif form.errors:
        status = 400
    return (
        render_template(
            "auth/second_factor.html", tenant=tenant, form=form, key_form=key_form, error=error, account=account,
            step_up=signed_in is not None, next_url=step.next_url if signed_in is not None else None,
            again=bool(request.args.get("again")) and signed_in is not None, key_only=step.key_only,
            has_key=account.has_security_key, has_app=bool(mfa.confirmed_devices(account)),
        ),
        status,
    )


def _second_step_done(step: _SecondStep, tenant, amr: list[str]):
    if step.pending is not None:
        finished = session.finish_second_step(step.pending, amr)
        service.record_sign_in(step.account, tenant, finished.row.provider, list(finished.amr), ip=client_ip())
    else:
        # Step-up keeps the original auth_time (OIDC Core 2).
        session.add_factors(step.signed_in, amr)
    return redirect(step.next_url or _landing(tenant))


# --------------------------------------------------------------------------- passkeys


@bp.route("/t/<slug>/login/passkey/options", methods=["POST"])
def passkey_options(slug: str):
    page = login_page_or_404(slug)
    provider, _ = page.provider(request.args.get("provider"))
    try:
        return security_keys.passkey_options(page.tenant, provider, binding=session.webauthn_binding(), ip=client_ip())
    except RateLimited as limited:
        return {"error": limited.message}, 429


@bp.route("/t/<slug>/login/passkey", methods=["POST"])
def passkey_sign_in(slug: str):
    """"Sign in with a passkey": the passkey alone, for an account of the page's provider that
    may sign in at this school (the same rules as a password)."""
    page = login_page_or_404(slug)
    form = PasskeyForm()
    provider, has_sso = page.provider(form.provider.data)
    next_url = safe_next(form.next.data)
    if form.validate_on_submit():
        try:
            account, amr = security_keys.sign_in_with_passkey(page.tenant, provider, form.credential.data,
                                                              binding=session.webauthn_binding(), ip=client_ip())
        except (security_keys.KeyRefused, RateLimited) as refused:
            error, status = refused.message, refused.status_code
        else:
            session.sign_in(account, tenant=page.tenant, provider=provider, amr=amr)
            service.record_sign_in(account, page.tenant, provider, amr, ip=client_ip())
            return redirect(next_url or _landing(page.tenant))
    else:
        error, status = security_keys.NOT_A_RESPONSE_MESSAGE, 400
    login_form = LoginForm(formdata=None, provider=provider, next=next_url or "")
    return render_template("auth/login.html", tenant=page.tenant, form=login_form, provider=provider,
                           has_sso=has_sso, error=None, passkey_error=error, failed=False, notice=None,
                           next_url=next_url), status
