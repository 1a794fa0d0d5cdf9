"""Admin area pages: a tenant's Users, Applications and Audit (tenant admins), and /admin (operators).

Every tenant view first loads the tenant from the URL and checks that the signed-in account is an
active admin of *that* tenant; rows are then looked up within the tenant, so a forged id is a 404."""

from __future__ import annotations

import functools

from flask import Blueprint, Response, abort, flash, g, redirect, render_template, request, url_for
from wtforms import SelectChoice

from .. import clock
from ..accounts import mfa
from ..auth import session
from ..oidc import backchannel, registry
from ..errors import DomainError, NotAllowed, RateLimited
from ..extensions import db
from ..web import client_ip, tenant_or_404
from . import applications, csv_import, operators, service
from .forms import (
    ActionForm,
    AddMemberForm,
    AuditFilterForm,
    ImportConfirmForm,
    ImportUploadForm,
    MemberFilterForm,
    MemberForm,
    NewClientForm,
    NewTenantForm,
    ProviderForm,
    ResendLinksForm,
    ClientForm,
    TenantForm,
)

bp = Blueprint("admin", __name__)


@bp.errorhandler(DomainError)
def _refused(error: DomainError):
    # Nothing half-done survives a refusal.
    db.session.rollback()
    titles = {404: "Page not found", 403: "Access denied"}
    return render_template("error.html", title=titles.get(error.status_code, "Sorry, that did not work"),
                           message=error.message, tenant=g.get("tenant")), error.status_code


def tenant_admin(view):
    """Tenant from the URL, then the one gate: signed in (else its login page, then back), an active
    admin of it (else 403), with the second factor the school asks of admins (else the code page)."""

    @functools.wraps(view)
    def wrapper(slug, **kwargs):
        tenant = tenant_or_404(slug)
        g.tenant = tenant
        signed_in = session.guard(tenant, member=False)
        try:
            membership = service.require_tenant_admin(tenant, signed_in.account)
        except NotAllowed as refusal:
            abort(403, description=refusal.message)
        requirement = mfa.sign_in_requirement(signed_in.account, membership, signed_in.amr)
        if requirement is not None:
            # The school asks admins for a second factor this sign-in has not given yet.
            return redirect(session.where_to_meet(requirement, tenant, session.here()))
        g.actor = signed_in.account
        return view(tenant, signed_in.account, **kwargs)

    return wrapper


def operator_only(view):
    """Signed in (else the platform's sign-in, then back) as a platform operator (else 403), with a
    second factor in this sign-in (set up on the first visit if need be); a change (POST) also needs
    one given in the last FRESH_SECONDS (a key's, where operators must use one)."""

    @functools.wraps(view)
    def wrapper(**kwargs):
        signed_in = session.guard(None)
        try:
            operators.require_operator(signed_in.account)
        except NotAllowed as refusal:
            abort(403, description=refusal.message)
        # Every platform form posts to the page that shows it, so after the second step the person
        # comes back to the form (and sends it again).
        here = session.here()
        requirement = mfa.operator_requirement(signed_in.account, signed_in.amr)
        if requirement is not None:
            return redirect(session.where_to_meet(requirement, None, here))
        fresh = mfa.operator_change_confirmation()
        if request.method == "POST" and not signed_in.confirmed_within(fresh, mfa.FRESH_SECONDS):
            # A platform change (every school's settings) asks for the second factor again.
            return redirect(session.where_to_meet(fresh, None, here, again=True))
        g.actor = signed_in.account
        return view(signed_in.account, **kwargs)

    return wrapper


def _field_error(form, error: DomainError) -> None:
    """Put a refusal next to the field the service named (or at the top of the form)."""
    db.session.rollback()
    if error.status_code == 404:
        raise error
    name = error.details.get("field")
    target = getattr(form, name, None) if name else None
    if target is not None:
        target.errors = list(target.errors or []) + [error.message]
    else:
        form.form_errors.append(error.message)


def _page_args(**changes) -> dict:
    # url_for reads _external, _scheme, _anchor and _method as options: from the query string they could
    # turn a pagination link into javascript: or another scheme.
    args = {key: value for key, value in request.args.items() if value and not key.startswith("_")}
    args.update(request.view_args or {})
    args.update(changes)
    return args


# --------------------------------------------------------------------------- users


@bp.route("/t/<slug>/admin")
@tenant_admin
def index(tenant, actor):
    return redirect(url_for("admin.users", slug=tenant.slug))


@bp.route("/t/<slug>/admin/users")
@tenant_admin
def users(tenant, actor):
    form = MemberFilterForm(request.args)
    form.validate()
    page = service.list_members(tenant, **_member_filters(form), page=request.args.get("page", 1))
    resend_form = ResendLinksForm(formdata=None, q=form.q.data if not form.q.errors else "",
                                  provider=form.provider.data or "", role=form.role.data or "",
                                  link=form.link.data if not form.link.errors else "")
    return render_template("admin/users.html", tenant=tenant, form=form, page=page, page_args=_page_args,
                           section="users", notice=request.args.get("done"), resend_form=resend_form)


def _member_filters(form) -> dict:
    """The list's filters; one it does not know (a hand-typed ?link=...) is ignored, never an error."""
    def valid(field):
        return field.data if field.data and not field.errors else None

    return dict(search=valid(form.q), provider=valid(form.provider), role=valid(form.role),
                link_state=valid(form.link))


@bp.route("/t/<slug>/admin/users/resend-links", methods=["POST"])
@tenant_admin
def resend_links(tenant, actor):
    form = ResendLinksForm()
    if not form.validate_on_submit():
        abort(400)
    filters = _member_filters(form)
    try:
        result = service.resend_links(tenant, **filters, actor=actor, ip=client_ip())
    except RateLimited as limited:
        flash(limited.message, "error")
    else:
        flash(_resent_message(result), "success")
    back = {key: value for key, value in dict(q=filters["search"], provider=filters["provider"],
                                               role=filters["role"], link=filters["link_state"]).items() if value}
    return redirect(url_for("admin.users", slug=tenant.slug, **back))


def _resent_message(result: service.Resent) -> str:
    def users(n: int) -> str:
        return f"{n} user{'' if n == 1 else 's'}"

    parts = [f"Links were sent again to {users(result.sent)}."]
    if result.failed:
        parts.append(f"{users(result.failed)} could not be sent an email: try again in a few minutes.")
    if result.skipped_recent:
        parts.append(f"{users(result.skipped_recent)} had been sent a link in the last 10 minutes and were skipped.")
    if result.left:
        parts.append(f"{users(result.left)} are left: press the button again to send theirs.")
    return " ".join(parts)


@bp.route("/t/<slug>/admin/users/new", methods=["GET", "POST"])
@tenant_admin
def add_user(tenant, actor):
    form = AddMemberForm()
    if form.validate_on_submit():
        try:
            added = service.add_member(tenant, email=form.email.data, name=form.name.data, role=form.role.data,
                                       provider=form.provider.data, actor=actor, ip=client_ip())
        except DomainError as error:
            _field_error(form, error)
        else:
            return render_template("admin/user_added.html", tenant=tenant, added=added, section="users")
    return render_template("admin/user_new.html", tenant=tenant, form=form, section="users")


def _profile(tenant, member, form=None, provider_form=None, problem=None, status=200):
    form = form or MemberForm(
        formdata=None, name=member.account.name, email=member.account.email, role=member.membership.role,
        active="yes" if member.membership.active else "no",
    )
    provider_form = provider_form or ProviderForm(formdata=None, provider=member.account.provider)
    return render_template(
        "admin/user.html",
        tenant=tenant,
        member=member,
        form=form,
        provider_form=provider_form,
        action_form=ActionForm(),
        changeable=service.changeable(tenant, member, g.actor),
        second_factor=service.second_factor_status(member.account),
        link=service.password_link_status(tenant, member),
        notice=request.args.get("done"),
        problem=problem,
        section="users",
    ), status


@bp.route("/t/<slug>/admin/users/<int:member_id>", methods=["GET", "POST"])
@tenant_admin
def user(tenant, actor, member_id):
    member = service.get_member(tenant, member_id)
    if request.method == "GET":
        return _profile(tenant, member)
    form = MemberForm()
    if form.validate_on_submit():
        was_active = member.membership.active
        try:
            service.update_member(tenant, member.id, name=form.name.data, email=form.email.data,
                                  role=form.role.data, active=form.active.data == "yes", actor=actor,
                                  ip=client_ip())
        except DomainError as error:
            _field_error(form, error)
            member = service.get_member(tenant, member_id)
        else:
            done = "deactivated" if was_active and form.active.data == "no" else "saved"
            return redirect(url_for("admin.user", slug=tenant.slug, member_id=member.id, done=done))
    return _profile(tenant, member, form=form, status=400)


@bp.route("/t/<slug>/admin/users/<int:member_id>/provider", methods=["POST"])
@tenant_admin
def user_provider(tenant, actor, member_id):
    member = service.get_member(tenant, member_id)
    form = ProviderForm()
    if form.validate_on_submit():
        try:
            moved = service.assign_provider(tenant, member.id, form.provider.data, actor=actor, ip=client_ip())
        except DomainError as error:
            _field_error(form, error)
            member = service.get_member(tenant, member_id)
        else:
            done = "provider_pending" if moved.pending else "provider"
            return redirect(url_for("admin.user", slug=tenant.slug, member_id=moved.membership.id, done=done))
    return _profile(tenant, member, provider_form=form, status=400)


@bp.route("/t/<slug>/admin/users/<int:member_id>/reset-2fa", methods=["POST"])
@tenant_admin
def user_reset_2fa(tenant, actor, member_id):
    return _member_button(tenant, actor, member_id, service.reset_second_factor, done="2fa")


def _member_button(tenant, actor, member_id, action, *, done: str):
    """A button on a member's page (its CSRF token checked) that does `action` and comes back saying so."""
    member = service.get_member(tenant, member_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    action(tenant, member.id, actor=actor, ip=client_ip())
    return redirect(url_for("admin.user", slug=tenant.slug, member_id=member.id, done=done))


@bp.route("/t/<slug>/admin/users/<int:member_id>/send-link", methods=["POST"])
@tenant_admin
def user_send_link(tenant, actor, member_id):
    member = service.get_member(tenant, member_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        service.send_password_link(tenant, member.id, actor=actor, ip=client_ip())
    except DomainError as error:
        if error.status_code == 404:
            raise
        db.session.rollback()
        return _profile(tenant, service.get_member(tenant, member_id), problem=error.message, status=error.status_code)
    done = "join_link" if member.membership.is_pending else "link"
    return redirect(url_for("admin.user", slug=tenant.slug, member_id=member.id, done=done))


@bp.route("/t/<slug>/admin/users/<int:member_id>/end-sign-ins", methods=["POST"])
@tenant_admin
def user_end_sign_ins(tenant, actor, member_id):
    return _member_button(tenant, actor, member_id, service.end_member_sign_ins, done="signed_out")


@bp.route("/t/<slug>/admin/users/<int:member_id>/withdraw", methods=["POST"])
@tenant_admin
def user_withdraw(tenant, actor, member_id):
    member = service.get_member(tenant, member_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    service.withdraw_invitation(tenant, member.id, actor=actor, ip=client_ip())
    return redirect(url_for("admin.users", slug=tenant.slug, done="withdrawn"))


@bp.route("/t/<slug>/admin/users/import", methods=["GET", "POST"])
@tenant_admin
def import_users(tenant, actor):
    form = ImportUploadForm()
    preview = content = None
    if form.validate_on_submit():
        upload = form.file.data
        data = upload.read() if upload else b""
        if not data:
            form.file.errors = ["Choose a CSV file to upload"]
        else:
            try:
                content = csv_import.decode(data)
            except DomainError as error:
                form.file.errors = [error.message]
            else:
                preview = csv_import.preview(tenant, content)
    return render_template("admin/import.html", tenant=tenant, form=form, preview=preview,
                           confirm_form=ImportConfirmForm(formdata=None, content=content), section="users")


@bp.route("/t/<slug>/admin/users/import/confirm", methods=["POST"])
@tenant_admin
def import_confirm(tenant, actor):
    confirm_form = ImportConfirmForm()
    if not confirm_form.validate_on_submit():
        return redirect(url_for("admin.import_users", slug=tenant.slug))
    content = confirm_form.content.data
    try:
        result = csv_import.import_members(tenant, content, actor=actor, ip=client_ip())
    except DomainError:
        db.session.rollback()
        # Something changed since the preview (or the field was edited): show the fresh preview again.
        preview = csv_import.preview(tenant, content)
        return render_template("admin/import.html", tenant=tenant, form=ImportUploadForm(formdata=None),
                               preview=preview, confirm_form=ImportConfirmForm(formdata=None, content=content),
                               section="users"), 400
    invited = csv_import.send_invitations(tenant, result, actor=actor, ip=client_ip())
    return render_template("admin/import_done.html", tenant=tenant, result=result, invited=invited,
                           section="users")


# --------------------------------------------------------------------------- applications


@bp.route("/t/<slug>/admin/applications", endpoint="applications")
@tenant_admin
def application_list(tenant, actor):
    return render_template("admin/applications.html", tenant=tenant, clients=applications.list_clients(tenant),
                           action_form=ActionForm(), section="applications",
                           delivery=backchannel.delivery_status(tenant))


@bp.route("/t/<slug>/admin/applications/new", methods=["GET", "POST"])
@tenant_admin
def add_application(tenant, actor):
    form = NewClientForm()
    if form.validate_on_submit():
        try:
            registered = applications.register_application(
                tenant, **_client_values(form), public=form.client_type.data == "public", actor=actor, ip=client_ip()
            )
        except DomainError as error:
            _field_error(form, error)
        else:
            # Rendered straight from the POST: the secret is never put in a URL, a session or a log.
            return render_template("admin/application_secret.html", tenant=tenant, client=registered.client,
                                   secret=registered.client_secret, created=True, section="applications")
    return render_template("admin/application_new.html", tenant=tenant, form=form, section="applications")


def _client_values(form: ClientForm) -> dict:
    return dict(
        name=form.name.data,
        redirect_uris=applications.parse_uri_lines(form.redirect_uris.data),
        post_logout_redirect_uris=applications.parse_uri_lines(form.post_logout_redirect_uris.data),
        backchannel_logout_uri=(form.backchannel_logout_uri.data or "").strip() or None,
        backchannel_logout_session_required=bool(form.backchannel_logout_session_required.data),
    )


@bp.route("/t/<slug>/admin/applications/<client_id>", methods=["GET", "POST"])
@tenant_admin
def application(tenant, actor, client_id):
    client = registry.tenant_client(tenant, client_id)
    if request.method == "GET":
        form = ClientForm(formdata=None, name=client.name, redirect_uris="\n".join(client.redirect_uris),
                          post_logout_redirect_uris="\n".join(client.post_logout_redirect_uris),
                          backchannel_logout_uri=client.backchannel_logout_uri or "",
                          backchannel_logout_session_required=client.backchannel_logout_session_required)
        return _application_page(tenant, client, form, notice=request.args.get("done"))
    form = ClientForm()
    if form.validate_on_submit():
        try:
            applications.update_application(tenant, client.client_id, **_client_values(form), actor=actor,
                                            ip=client_ip())
        except DomainError as error:
            _field_error(form, error)
            client = registry.tenant_client(tenant, client_id)
        else:
            return redirect(url_for("admin.application", slug=tenant.slug, client_id=client.client_id,
                                    done="saved"))
    return _application_page(tenant, client, form), 400


def _application_page(tenant, client, form, notice=None):
    return render_template("admin/application.html", tenant=tenant, client=client, form=form,
                           action_form=ActionForm(), notice=notice, section="applications",
                           delivery=backchannel.delivery_status(tenant))


@bp.route("/t/<slug>/admin/applications/<client_id>/rotate", methods=["POST"])
@tenant_admin
def rotate_application_secret(tenant, actor, client_id):
    client = registry.tenant_client(tenant, client_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    secret = applications.rotate_application_secret(tenant, client.client_id, actor=actor, ip=client_ip())
    return render_template("admin/application_secret.html", tenant=tenant, client=client, secret=secret,
                           created=False, section="applications")


@bp.route("/t/<slug>/admin/applications/<client_id>/delete", methods=["GET", "POST"])
@tenant_admin
def delete_application(tenant, actor, client_id):
    client = registry.tenant_client(tenant, client_id)
    form = ActionForm()
    if form.validate_on_submit():
        name = client.name
        applications.delete_application(tenant, client.client_id, actor=actor, ip=client_ip())
        return render_template("admin/application_deleted.html", tenant=tenant, name=name,
                               section="applications")
    return render_template("admin/application_delete.html", tenant=tenant, client=client, form=form,
                           section="applications")


@bp.route("/t/<slug>/admin/applications/initial-access-token", methods=["POST"])
@tenant_admin
def create_initial_access_token(tenant, actor):
    if not ActionForm().validate_on_submit():
        abort(400)
    token = applications.create_initial_access_token(tenant, actor=actor, ip=client_ip())
    return render_template("admin/initial_access_token.html", tenant=tenant, token=token, section="applications")


# --------------------------------------------------------------------------- audit


def _audit_filters():
    form = AuditFilterForm(request.args)
    form.event.choices = [SelectChoice("", "Any event"),
                          *(SelectChoice(code, words) for code, words in service.audit_event_choices())]
    # An unknown event or an over-long address in the query string is ignored, never an error.
    form.validate()
    filters = dict(email=form.user.data if not form.user.errors else None,
                   event=form.event.data if not form.event.errors else None)
    return form, filters


def _audit_page(tenant):
    form, filters = _audit_filters()
    page = service.list_audit(tenant, **filters, page=request.args.get("page", 1))
    return form, page


def _audit_download(tenant, name: str):
    _, filters = _audit_filters()
    body = "".join(service.audit_csv(tenant, **filters))
    stamp = clock.local(clock.now(), service.audit_zone(tenant)).strftime("%Y-%m-%d")
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="audit-{name}-{stamp}.csv"'})


def _download_args() -> dict:
    return {key: value for key, value in request.args.items() if key in ("user", "event") and value}


@bp.route("/t/<slug>/admin/audit")
@tenant_admin
def audit_log(tenant, actor):
    form, page = _audit_page(tenant)
    return render_template("admin/audit.html", tenant=tenant, form=form, page=page, page_args=_page_args,
                           section="audit", all_tenants=False, zone=service.audit_zone(tenant),
                           download_args=_download_args())


@bp.route("/t/<slug>/admin/audit.csv")
@tenant_admin
def audit_csv(tenant, actor):
    return _audit_download(tenant, tenant.slug)


# --------------------------------------------------------------------------- operators


@bp.route("/admin")
@operator_only
def tenants(actor):
    return render_template("admin/operators/tenants.html", summaries=operators.list_tenants(),
                           notice=request.args.get("done"), operator_section="tenants")


@bp.route("/admin/tenants/new", methods=["GET", "POST"])
@operator_only
def add_tenant(actor):
    form = NewTenantForm()
    if form.validate_on_submit():
        try:
            operators.create_tenant(actor=actor, ip=client_ip(), slug=form.slug.data, **_tenant_settings(form))
        except DomainError as error:
            _field_error(form, error)
        else:
            return redirect(url_for("admin.tenants", done="created"))
    return render_template("admin/operators/tenant_form.html", form=form, editing=None, operator_section="tenants")


#: The tenant form shows sign-in lifetimes in minutes; the tenant keeps seconds.
_IN_MINUTES = ("session_max_age", "session_idle_timeout")


def _tenant_settings(form: TenantForm) -> dict:
    values = {key: getattr(form, key).data for key in operators.TENANT_FIELDS}
    for key in _IN_MINUTES:
        values[key] = values[key] * 60 if isinstance(values[key], int) else values[key]
    return values


@bp.route("/admin/tenants/<tenant_slug>", methods=["GET", "POST"])
@operator_only
def edit_tenant(actor, tenant_slug):
    tenant = operators.get_tenant(tenant_slug)
    form = TenantForm(obj=tenant) if request.method == "GET" else TenantForm()
    if request.method == "GET":
        for key in _IN_MINUTES:
            getattr(form, key).data = getattr(tenant, key) // 60
    if form.validate_on_submit():
        try:
            operators.update_tenant(tenant.slug, actor=actor, ip=client_ip(), **_tenant_settings(form))
        except DomainError as error:
            _field_error(form, error)
        else:
            return redirect(url_for("admin.tenants", done="saved"))
    return render_template("admin/operators/tenant_form.html", form=form, editing=tenant,
                           operator_section="tenants")


@bp.route("/admin/audit")
@operator_only
def all_audit(actor):
    form, page = _audit_page(None)
    return render_template("admin/audit.html", tenant=None, form=form, page=page, page_args=_page_args,
                           all_tenants=True, operator_section="audit", zone=service.audit_zone(None),
                           download_args=_download_args())


@bp.route("/admin/audit.csv")
@operator_only
def all_audit_csv(actor):
    return _audit_download(None, "all-tenants")


@bp.route("/admin/people")
@operator_only
def people(actor):
    email = (request.args.get("email") or "").strip()[:320]
    return render_template("admin/operators/people.html", email=email,
                           accounts=operators.find_people(email) if email else [], action_form=ActionForm(),
                           notice=request.args.get("done"), operator_section="people")


@bp.route("/admin/people/<int:account_id>/end-sign-ins", methods=["POST"])
@operator_only
def end_person_sign_ins(actor, account_id):
    account = operators.get_person(account_id)
    if not ActionForm().validate_on_submit():
        abort(400)
    operators.end_person_sign_ins(account, actor=actor, ip=client_ip())
    return redirect(url_for("admin.people", email=account.email, done="signed_out"))
