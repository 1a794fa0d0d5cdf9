"""Forms of the admin area. Every form that changes something carries a CSRF token (Flask-WTF)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import AnyOf, DataRequired, Length, Optional

from ..accounts import providers
from ..models import Account, Client, Tenant
from ..models.accounts import ROLE_NAMES
from ..models.base import column_length
from ..reset.links import LINK_FILTERS
from ..models.tenants import DEFAULT_SESSION_IDLE_TIMEOUT, DEFAULT_SESSION_MAX_AGE

ROLE_CHOICES = [SelectChoice(role, label) for role, label in ROLE_NAMES.items()]
PROVIDER_CHOICES = [SelectChoice(provider.key, provider.name) for provider in providers.ALL]
LINK_CHOICES = [SelectChoice(state, label) for state, label in LINK_FILTERS.items()]
EMAIL_MAX = column_length(Account.email)
NAME_MAX = column_length(Account.name)


class MemberFilterForm(FlaskForm):
    """The users list's search: a GET form that changes nothing, so no CSRF token."""

    class Meta:
        csrf = False

    q = StringField("Search by name or email", validators=[Optional(), Length(max=EMAIL_MAX)])
    provider = SelectField("Authentication provider", choices=[SelectChoice("", "Any provider"), *PROVIDER_CHOICES],
                           validators=[Optional()])
    role = SelectField("Role", choices=[SelectChoice("", "Any role"), *ROLE_CHOICES], validators=[Optional()])
    link = SelectField("Invitation or link", choices=[SelectChoice("", "Any"), *LINK_CHOICES], validators=[Optional()])


class ResendLinksForm(FlaskForm):
    """"Send again to everyone filtered": the list's filters come back with the CSRF token, so the
    button sends to exactly the people the admin was looking at."""

    q = HiddenField(validators=[Optional(), Length(max=EMAIL_MAX)])
    provider = HiddenField(validators=[Optional(), AnyOf(["", *providers.KEYS])])
    role = HiddenField(validators=[Optional(), AnyOf(["", *ROLE_NAMES])])
    link = HiddenField(validators=[Optional(), AnyOf(["", *LINK_FILTERS])])


class MemberForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired("Enter the user's name"), Length(max=NAME_MAX)])
    email = EmailField("Email address", validators=[DataRequired("Enter the user's email address"), Length(max=EMAIL_MAX)],
                       render_kw={"spellcheck": "false", "autocomplete": "off"})
    role = RadioField("Role", choices=ROLE_CHOICES, validators=[DataRequired("Choose a role")])
    active = RadioField("Access", choices=[SelectChoice("yes", "Active"), SelectChoice("no", "Deactivated")],
                        validators=[DataRequired("Choose active or deactivated")])


class AddMemberForm(FlaskForm):
    email = EmailField("Email address", validators=[DataRequired("Enter the user's email address"), Length(max=EMAIL_MAX)],
                       render_kw={"spellcheck": "false", "autocomplete": "off"})
    name = StringField("Name", validators=[DataRequired("Enter the user's name"), Length(max=NAME_MAX)])
    role = RadioField("Role", choices=ROLE_CHOICES, default="staff", validators=[DataRequired("Choose a role")])
    provider = RadioField("Authentication provider", choices=PROVIDER_CHOICES, default="identity",
                          validators=[DataRequired("Choose an authentication provider")])


class ProviderForm(FlaskForm):
    provider = RadioField("Authentication provider", choices=PROVIDER_CHOICES,
                          validators=[DataRequired("Choose an authentication provider")])


class ActionForm(FlaskForm):
    """A button that changes something (reset 2FA, send link, rotate, delete): just the CSRF token."""


class ImportUploadForm(FlaskForm):
    file = FileField("CSV file")


class ImportConfirmForm(FlaskForm):
    # The file's text comes back to be validated again: the server keeps nothing between the steps.
    content = HiddenField(validators=[DataRequired("Upload the file again"), Length(max=2_000_000)])


class ClientForm(FlaskForm):
    name = StringField("Application name", validators=[DataRequired("Enter the application's name"),
                                                       Length(max=column_length(Client.name))])
    redirect_uris = TextAreaField("Redirect URIs", validators=[DataRequired("Enter at least one redirect URI"),
                                                               Length(max=20000)])
    post_logout_redirect_uris = TextAreaField("Post-logout redirect URIs", validators=[Optional(),
                                                                                       Length(max=20000)])
    backchannel_logout_uri = StringField("Back-channel logout URI", validators=[
        Optional(), Length(max=column_length(Client.backchannel_logout_uri))], render_kw={"spellcheck": "false"})
    backchannel_logout_session_required = BooleanField("The application needs the sign-in's sid in logout tokens")


class NewClientForm(ClientForm):
    client_type = RadioField(
        "Client type",
        choices=[SelectChoice("confidential", "Confidential (a server-side application that can keep a secret)"),
                 SelectChoice("public", "Public (a mobile or browser application: no secret, PKCE only)")],
        default="confidential",
        validators=[DataRequired("Choose the client type"), AnyOf(("confidential", "public"))],
    )


class AuditFilterForm(FlaskForm):
    class Meta:
        csrf = False

    user = StringField("User's email address", validators=[Optional(), Length(max=EMAIL_MAX)])
    event = SelectField("Event", validators=[Optional()])


class TenantForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired("Enter the school's name"),
                                           Length(max=column_length(Tenant.name))])
    product = RadioField("Product",
                         choices=[SelectChoice("cpoms", "CPOMS"), SelectChoice("staffsafe", "CPOMS StaffSafe")],
                         default="cpoms", validators=[DataRequired("Choose a product")])
    timezone = StringField("Timezone", default="Europe/London",
                           validators=[DataRequired("Enter an IANA timezone such as Europe/London"),
                                       Length(max=column_length(Tenant.timezone))])
    require_2fa = RadioField("Two-step verification",
                             choices=[SelectChoice("off", "Not required"),
                                      SelectChoice("admins", "Required for administrators"),
                                      SelectChoice("everyone", "Required for everyone")],
                             default="off", validators=[DataRequired("Choose a two-step verification policy")])
    admins_phishing_resistant = BooleanField("Administrators must sign in with a security key or passkey")
    hide_unknown_email = BooleanField("Do not reveal whether an email address has an account")
    session_max_age = IntegerField("Sign-ins last at most (minutes)", default=DEFAULT_SESSION_MAX_AGE // 60,
                                   validators=[DataRequired("Enter how long sign-ins may last, in minutes")])
    session_idle_timeout = IntegerField("Sign out after unused for (minutes)", default=DEFAULT_SESSION_IDLE_TIMEOUT // 60,
                                        validators=[DataRequired("Enter after how many unused minutes to sign out")])


class NewTenantForm(TenantForm):
    slug = StringField("Slug (the login address /t/<slug>/login)",
                       validators=[DataRequired("Enter the slug"), Length(max=column_length(Tenant.slug))])
