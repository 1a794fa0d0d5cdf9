"""SQLAlchemy models, one module per aggregate. No request code here."""

from .accounts import Account, Membership, PasswordHistory, normalise_email  # noqa: F401
from .audit import AuditEvent  # noqa: F401
from .clients import Client, InitialAccessToken  # noqa: F401
from .grants import AuthorizationCode, Token  # noqa: F401
from .keys import SigningKey  # noqa: F401
from .mfa import MfaDevice, RecoveryCode  # noqa: F401
from .reset import ResetLink  # noqa: F401
from .security_keys import SecurityKey, WebAuthnChallenge  # noqa: F401
from .sessions import BrowserSession  # noqa: F401
from .logout import LogoutNotice  # noqa: F401
from .tenants import Tenant  # noqa: F401
