"""Forms of the tenant login page."""

from flask_wtf import FlaskForm
from wtforms import EmailField, HiddenField, PasswordField
from wtforms.validators import AnyOf, DataRequired, Length

from ..accounts import providers
from ..models import Account
from ..models.base import column_length


class LoginForm(FlaskForm):
    email = EmailField(
        "Email address",
        validators=[DataRequired("Enter your email address"), Length(max=column_length(Account.email))],
        render_kw={"autocomplete": "username", "spellcheck": "false"},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired("Enter your password"), Length(max=1024)],
        render_kw={"autocomplete": "current-password"},
    )
    provider = HiddenField(validators=[AnyOf(providers.KEYS, message="Choose an authentication provider")])
    next = HiddenField()


class PasskeyForm(FlaskForm):
    """"Sign in with a passkey": the browser's answer (JSON), filled in by webauthn.js."""

    credential = HiddenField(validators=[DataRequired("Use your passkey"), Length(max=64_000)])
    provider = HiddenField(validators=[AnyOf(providers.KEYS, message="Choose an authentication provider")])
    next = HiddenField()
