"""Account settings: Security (enrol, list and remove authenticators; recovery codes) and Where
you're signed in (the person's browser sign-ins, ended one by one or all but this one).

`?tenant=<slug>` gives the page its school's chrome and policy message; `?next=` continues an
interrupted sign-in or authorization after an enrolment the school requires."""

from __future__ import annotations

import functools

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from .. import audit
from ..accounts import credentials, directory, mfa, passwords, security_keys
from ..accounts import sessions as account_sessions
from ..auth import session
from ..errors import InvalidInput, NotAllowed, PolicyViolation, RateLimited
from ..tenants import find_tenant
from ..web import client_ip, safe_next
from .forms import (
    ActionForm,
    ChangePasswordForm,
    DeviceNameForm,
    EnrolmentCodeForm,
    NewSecurityKeyForm,
    RenameForm,
    SecondFactorForm,
    SecurityKeyForm,
)

bp = Blueprint("account_settings", __name__)


class _Page:
    """Who is signed in (through the one gate), in which school's context, and where to go afterwards."""

    def __init__(self):
        slug = request.args.get("tenant")
        tenant = find_tenant(slug) if slug else None
        self.signed_in = session.guard(tenant, member=False)
        self.account = self.signed_in.account
        self.membership = directory.active_membership(self.account, tenant) if tenant is not None else None
        self.tenant = tenant if self.membership is not None else None
        self.next_url = safe_next(request.args.get("next"))
        #: Sent here to register a security key (the phishing-resistant level is required).
        self.key_required = bool(request.args.get("key"))

    @property
    def params(self) -> dict:
        return {"tenant": self.tenant.slug if self.tenant else None, "next": self.next_url,
                "key": 1 if self.key_required else None}

    @property
    def continue_url(self) -> str | None:
        if self.next_url:
            return self.next_url
        return url_for("auth.home", slug=self.tenant.slug) if self.tenant else None

    def confirmation_url(self) -> str | None:
        """Where to confirm it is you before changing how this account signs in (adding a key,
        passkey or app; removing a key), or None where this sign-in has done so recently enough
        (mfa.change_confirmation): otherwise a stolen password, or a password and app code relayed
        by a look-alike site, could add the thief's own key and pass every later check."""
        needed = mfa.change_confirmation(self.account)
        if needed is None or self.signed_in.confirmed_within(needed, mfa.FRESH_SECONDS):
            return None
        return session.where_to_meet(needed, self.tenant, url_for("account_settings.security", **self.params),
                                     again=True)

    def confirm_first(self):
        """The redirect to confirmation_url, or None where none is needed."""
        url = self.confirmation_url()
        return redirect(url) if url else None

    def render(self, template: str, status: int = 200, **context):
        return render_template(template, tenant=self.tenant, account=self.account, page=self, **context), status


def signed_in_page(view):
    """The view is given the page; the gate sends anyone not signed in to sign in first."""

    @functools.wraps(view)
    def wrapper(**kwargs):
        return view(_Page(), **kwargs)

    return wrapper


@bp.route("/account/security")
@signed_in_page
def security(page: _Page):
    return _security_page(page, DeviceNameForm())


def _security_page(page: _Page, form, status: int = 200, key_form=None):
    devices = mfa.confirmed_devices(page.account)
    keys = security_keys.keys_of(page.account)
    must_enrol = not devices and not keys and (page.account.is_operator or (
        page.tenant is not None and mfa.policy_covers(page.tenant, page.membership)))
    return page.render(
        "account_settings/security.html", status, form=form, key_form=key_form or NewSecurityKeyForm(formdata=None, prefix="key"),
        devices=devices, keys=keys, must_enrol=must_enrol, last_used=mfa.last_used_at,
        must_add_key=page.key_required and not keys,
        recovery_left=mfa.remaining_recovery_codes(page.account) if devices or keys else 0,
        required_by=mfa.tenants_requiring(page.account), confirm_url=page.confirmation_url(),
    )


@bp.route("/account/security/devices", methods=["POST"])
@signed_in_page
def add_device(page: _Page):
    confirm = page.confirm_first()
    if confirm is not None:
        return confirm
    form = DeviceNameForm()
    if not form.validate_on_submit():
        return _security_page(page, form, 400)
    try:
        device = mfa.start_enrolment(page.account, form.name.data)
    except (NotAllowed, mfa.InvalidCode) as refused:
        form.name.errors.append(refused.message)
        return _security_page(page, form, 400)
    return redirect(url_for("account_settings.confirm_device", device_id=device.id, **page.params))


@bp.route("/account/security/devices/<int:device_id>/confirm", methods=["GET", "POST"])
@signed_in_page
def confirm_device(page: _Page, device_id: int):
    device = mfa.get_device(page.account, device_id)
    if device.confirmed_at is not None:
        return redirect(url_for("account_settings.security", **page.params))
    confirm = page.confirm_first()
    if confirm is not None:
        return confirm
    form = EnrolmentCodeForm()
    if form.validate_on_submit():
        try:
            codes = mfa.confirm_enrolment(page.account, device, form.code.data, tenant=page.tenant, ip=client_ip())
        except mfa.InvalidCode as wrong:
            form.code.errors.append(wrong.message)
        else:
            # The new key's code proves possession: this sign-in now has its second factor too.
            session.add_factors(page.signed_in, mfa.SECOND_FACTOR_AMR)
            if codes:
                return page.render("account_settings/recovery_codes.html", codes=codes, first=True)
            flash(f"Authenticator app ‘{device.name}’ added.")
            return redirect(url_for("account_settings.security", **page.params))
    secret = mfa.device_secret(device)
    uri = mfa.provisioning_uri(page.account, device)
    return page.render(
        "account_settings/confirm_device.html", 200 if not form.errors else 400, form=form, device=device,
        secret=mfa.grouped_secret(secret), qr_svg=mfa.qr_svg(uri), otpauth_uri=uri,
    )


@bp.route("/account/security/devices/<int:device_id>/remove", methods=["GET", "POST"])
@signed_in_page
def remove_device(page: _Page, device_id: int):
    device = mfa.get_device(page.account, device_id)
    refused = mfa.removal_refusal(page.account, device)
    form = SecondFactorForm()
    status = 200
    if refused is None and form.validate_on_submit():
        try:
            mfa.remove_device(page.account, device, form.code.data, tenant=page.tenant, ip=client_ip())
        except (mfa.InvalidCode, RateLimited) as wrong:
            form.code.errors.append(wrong.message)
            status = wrong.status_code
        except NotAllowed as not_allowed:
            refused = not_allowed.message
        else:
            flash(f"Authenticator app ‘{device.name}’ removed.")
            return redirect(url_for("account_settings.security", **page.params))
    elif form.errors:
        status = 400
    return page.render(
        "account_settings/remove_device.html", 409 if refused else status, form=form, device=device, refused=refused,
        last_device=len(mfa.confirmed_devices(page.account)) <= 1,
    )


@bp.route("/account/security/keys/options", methods=["POST"])
@signed_in_page
def key_options(page: _Page):
    """navigator.credentials.create()'s options (JSON; the CSRF header checked). `?passkey=1`
    asks for a passkey (discoverable, with user verification)."""
    if page.confirmation_url() is not None:
        return {"error": "Confirm it is you first: reload this page and follow its Confirm it is you link."}, 409
    return security_keys.registration_options(page.account, binding=session.webauthn_binding(),
                                              passkey=request.args.get("passkey") == "1")


@bp.route("/account/security/keys", methods=["POST"])
@signed_in_page
def add_key(page: _Page):
    confirm = page.confirm_first()
    if confirm is not None:
        return confirm
    form = NewSecurityKeyForm(prefix="key")
    if not form.validate_on_submit():
        return _security_page(page, DeviceNameForm(formdata=None), 400, key_form=form)
    try:
        key, codes = security_keys.register(page.account, form.name.data, form.credential.data,
                                            binding=session.webauthn_binding(), tenant=page.tenant, ip=client_ip())
    except (NotAllowed, InvalidInput, mfa.InvalidCode, security_keys.KeyRefused) as refused:
        form.name.errors.append(refused.message)
        return _security_page(page, DeviceNameForm(formdata=None), 400, key_form=form)
    # Registering a key does not raise this sign-in's level: the key is used once to reach it,
    # so a sign-in relayed by a phishing site cannot add the thief's key and pass as phishing-resistant.
    if codes:
        return page.render("account_settings/recovery_codes.html", codes=codes, first=True)
    flash(f"{key.kind_name} ‘{key.name}’ added.")
    return redirect(url_for("account_settings.security", **page.params))


@bp.route("/account/security/keys/<int:key_id>/rename", methods=["GET", "POST"])
@signed_in_page
def rename_key(page: _Page, key_id: int):
    key = security_keys.get_key(page.account, key_id)
    return _rename(page, key, lambda name: security_keys.rename_key(page.account, key, name, tenant=page.tenant,
                                                                      ip=client_ip()))


@bp.route("/account/security/devices/<int:device_id>/rename", methods=["GET", "POST"])
@signed_in_page
def rename_device(page: _Page, device_id: int):
    device = mfa.get_device(page.account, device_id)
    return _rename(page, device, lambda name: mfa.rename_device(page.account, device, name, tenant=page.tenant,
                                                                  ip=client_ip()))


def _rename(page: _Page, factor, rename):
    form = RenameForm(data={"name": factor.name} if request.method == "GET" else None)
    status = 200
    if form.validate_on_submit():
        try:
            rename(form.name.data)
        except (InvalidInput, mfa.InvalidCode, NotAllowed) as refused:
            form.name.errors.append(refused.message)
            status = 400
        else:
            flash(f"Renamed to ‘{factor.name}’.")
            return redirect(url_for("account_settings.security", **page.params))
    elif form.errors:
        status = 400
    return page.render("account_settings/rename.html", status, form=form, factor=factor)


@bp.route("/account/security/keys/<int:key_id>/remove", methods=["GET", "POST"])
@signed_in_page
def remove_key(page: _Page, key_id: int):
    key = security_keys.get_key(page.account, key_id)
    confirm = page.confirm_first()
    if confirm is not None:
        return confirm
    refused = mfa.removal_refusal(page.account, key)
    form = ActionForm()
    if refused is None and form.validate_on_submit():
        try:
            security_keys.remove_key(page.account, key, tenant=page.tenant, ip=client_ip())
        except NotAllowed as not_allowed:
            refused = not_allowed.message
        else:
            flash(f"{key.kind_name} ‘{key.name}’ removed.")
            return redirect(url_for("account_settings.security", **page.params))
    return page.render("account_settings/remove_key.html", 409 if refused else 200, form=form, key=key,
                       refused=refused)


@bp.route("/account/security/recovery-codes", methods=["GET", "POST"])
@signed_in_page
def recovery_codes(page: _Page):
    """New recovery codes, after a security key or passkey where the person has one, else a
    current code from the authenticator app or a recovery code."""
    if not page.account.mfa_enrolled:
        return redirect(url_for("account_settings.security", **page.params))
    form, key_form = SecondFactorForm(), SecurityKeyForm(prefix="key")
    status, key_error = 200, None
    if request.method == "POST" and "key-credential" in request.form:
        try:
            if not key_form.validate_on_submit():
                raise security_keys.KeyRefused(security_keys.NOT_A_RESPONSE_MESSAGE)
            codes = security_keys.regenerate_recovery_codes(
                page.account, key_form.credential.data, binding=session.webauthn_binding(),
                tenant=page.tenant, ip=client_ip())
        except security_keys.KeyRefused as refused:
            key_error, status = refused.message, refused.status_code
        else:
            return page.render("account_settings/recovery_codes.html", codes=codes, first=False)
    elif form.validate_on_submit():
        try:
            codes = mfa.regenerate_recovery_codes(page.account, form.code.data, tenant=page.tenant, ip=client_ip())
        except (mfa.InvalidCode, RateLimited, NotAllowed) as wrong:
            form.code.errors.append(wrong.message)
            status = wrong.status_code
        else:
            return page.render("account_settings/recovery_codes.html", codes=codes, first=False)
    elif form.errors:
        status = 400
    return page.render("account_settings/regenerate.html", status, form=form, key_form=key_form, key_error=key_error,
                       has_key=page.account.has_security_key, has_app=bool(mfa.confirmed_devices(page.account)),
                       recovery_left=mfa.remaining_recovery_codes(page.account))


@bp.route("/account/security/recovery-codes/key-options", methods=["POST"])
@signed_in_page
def recovery_key_options(page: _Page):
    """navigator.credentials.get()'s options for confirming new recovery codes with a key (JSON)."""
    if not page.account.has_security_key:
        return {"error": "You have no security key or passkey to use here."}, 409
    return security_keys.second_factor_options(page.account, binding=session.webauthn_binding())


# --------------------------------------------------------------------------- where you're signed in


@bp.route("/account/sessions")
@signed_in_page
def sessions(page: _Page):
    rows = account_sessions.of_account(page.account)
    return page.render("account_settings/sessions.html", rows=rows, this_sid=page.signed_in.sid,
                       form=ActionForm(), notice=request.args.get("done"))


@bp.route("/account/sessions/<int:session_id>/end", methods=["POST"])
@signed_in_page
def end_session(page: _Page, session_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    ended = account_sessions.end_one(page.account, session_id, ip=client_ip())
    if ended is None:
        abort(404, description="That sign-in has already ended.")
    if ended.sid == page.signed_in.sid:
        session.sign_out()
        flash("You have signed out of CPOMS on this browser.", "success")
        return redirect(session.login_url(page.tenant, None))
    return redirect(url_for("account_settings.sessions", done="ended", **page.params))


@bp.route("/account/sessions/end-others", methods=["POST"])
@signed_in_page
def end_other_sessions(page: _Page):
    if not ActionForm().validate_on_submit():
        abort(400)
    account_sessions.end_of_account(page.account, reason="signed out everywhere else", keep=page.signed_in.row)
    audit.record(audit.SESSION_ENDED, tenant=page.tenant, actor=page.account, subject=page.account, ip=client_ip(),
                 which="every other")
    return redirect(url_for("account_settings.sessions", done="others", **page.params))


# --------------------------------------------------------------------------- change password


@bp.route("/account/password", methods=["GET", "POST"])
@signed_in_page
def change_password(page: _Page):
    form = ChangePasswordForm()
    status = 200
    if form.validate_on_submit():
        try:
            credentials.change_own_password(page.account, form.current.data, form.password.data, form.confirm.data,
                                            tenant=page.tenant, ip=client_ip(), keep=page.signed_in.row)
        except RateLimited as limited:
            form.current.errors.append(limited.message)
            status = 429
        except PolicyViolation as refused:
            for problem in refused.problems:
                target = (form.current if problem == credentials.CURRENT_PASSWORD_WRONG else
                          form.confirm if problem == passwords.PASSWORDS_DIFFER else form.password)
                target.errors.append(problem)
            status = 400
        else:
            flash("Your password was changed. Every other browser signed in as you was signed out.", "success")
            return redirect(url_for("account_settings.sessions", **page.params))
    elif form.errors:
        status = 400
    met = passwords.rules_met(form.password.data or "", email=page.account.email,
                              confirmation=form.confirm.data) if request.method == "POST" else set()
    return page.render("account_settings/change_password.html", status, form=form,
                       rules=passwords.rule_descriptions(), met=met, submitted=request.method == "POST",
                       min_length=current_app.config["SETTINGS"].password_min_length)
