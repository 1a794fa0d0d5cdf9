"""Forms of the forgotten-password page and the set-password page."""

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, RadioField, SelectChoice
from wtforms.validators import AnyOf, DataRequired, Email, Length

from ..accounts import providers
from ..models import Account
from ..models.base import column_length

#: The help page's wording for the Authentication Provider choice.
PROVIDER_HINTS = {provider.key: provider.who for provider in providers.ALL}


#: Both boxes of the set-password page: browsers offer to generate and save the new password.
NEW_PASSWORD_INPUT = {"autocomplete": "new-password", "spellcheck": "false", "autocapitalize": "none"}


class ForgotPasswordForm(FlaskForm):
    email = EmailField(
        "Email address",
        validators=[
            DataRequired("Enter the email address of the account"),
            Length(max=column_length(Account.email),
                   message=f"Enter an email address of {column_length(Account.email)} characters or fewer"),
            Email("Enter an email address in the correct format, like name@example.com",
                  check_deliverability=False, allow_empty_local=False),
        ],
        # Pasted addresses often carry a space at either end.
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        render_kw={"autocomplete": "email", "spellcheck": "false"},
    )
    provider = RadioField(
        "Authentication Provider",
        choices=[SelectChoice(p.key, p.name) for p in providers.ALL],
        # Tenants with no SSO members send a hidden "identity"; AnyOf gives the plain message.
        validate_choice=False,
        validators=[AnyOf(providers.KEYS, message="Choose the Authentication Provider of the account")],
    )


class SetPasswordForm(FlaskForm):
    password = PasswordField(
        "New password",
        validators=[
            DataRequired("Enter a new password"),
            Length(max=1024, message="Your password must be 1024 characters or fewer"),
        ],
        render_kw=NEW_PASSWORD_INPUT,
    )
    confirm = PasswordField(
        "Confirm new password",
        validators=[DataRequired("Enter the new password again")],
        render_kw=NEW_PASSWORD_INPUT,
    )


class AcceptForm(FlaskForm):
    """Accepting a school's membership: one button and its CSRF token."""
