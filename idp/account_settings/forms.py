"""Forms of Account settings > Security keys and of the second sign-in step."""

from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from ..models import MfaDevice, SecurityKey
from ..reset.forms import NEW_PASSWORD_INPUT
from ..models.base import column_length


class DeviceNameForm(FlaskForm):
    name = StringField(
        "Name this authenticator app",
        default="My phone",
        validators=[DataRequired("Enter a name for this authenticator app, for example My phone"), Length(max=column_length(MfaDevice.name))],
        render_kw={"autocomplete": "off"},
    )


class EnrolmentCodeForm(FlaskForm):
    code = StringField(
        "Code from your authenticator app",
        validators=[DataRequired("Enter the 6-digit code shown in your authenticator app"), Length(max=20)],
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric", "spellcheck": "false"},
    )


class SecondFactorForm(FlaskForm):
    """A 6-digit authenticator code or a recovery code: one field, the service tells them apart."""

    code = StringField(
        "Security code",
        validators=[
            DataRequired("Enter the 6-digit code from your authenticator app, or one of your recovery codes"),
            Length(max=40),
        ],
        render_kw={"autocomplete": "one-time-code", "spellcheck": "false", "autocapitalize": "characters"},
    )


class ActionForm(FlaskForm):
    """A button that changes something (sign out a browser): just the CSRF token."""


class ChangePasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired("Enter your current password"),
                                                              Length(max=1024)],
                            render_kw={"autocomplete": "current-password"})
    password = PasswordField("New password", validators=[
        DataRequired("Enter a new password"), Length(max=1024, message="Your password must be 1024 characters or fewer")],
        render_kw=NEW_PASSWORD_INPUT)
    confirm = PasswordField("Confirm new password", validators=[DataRequired("Enter the new password again")],
                            render_kw=NEW_PASSWORD_INPUT)


class SecurityKeyForm(FlaskForm):
    """A security key's answer (JSON, filled in by webauthn.js) in the second step."""

    credential = HiddenField(validators=[DataRequired("Use your security key"), Length(max=64_000)])


class NewSecurityKeyForm(FlaskForm):
    """Register a security key or passkey: its name, and the browser's answer (webauthn.js)."""

    name = StringField(
        "Call this security key or passkey",
        validators=[DataRequired("Enter a name, for example Blue USB key"),
                    Length(max=column_length(SecurityKey.name))],
        render_kw={"autocomplete": "off"},
    )
    credential = HiddenField(validators=[DataRequired("Use your security key when your browser asks"),
                                         Length(max=64_000)])


class RenameForm(FlaskForm):
    name = StringField("New name", validators=[DataRequired("Enter a name, for example My phone or Blue USB key"),
                                               Length(max=100)], render_kw={"autocomplete": "off"})
