"""Second factors: TOTP authenticator devices, recovery codes, the tenants' 2FA policy and the
levels (acr) a sign-in reaches. Security keys (WebAuthn) are idp.accounts.security_keys; what
both kinds add up to (enrolled, the last one kept, the levels) is decided here.

`sign_in_requirement` is the one question the sign-in and OIDC code ask. One
enrolment belongs to the account, so an SSO account's key serves every tenant.

Secrets at rest: each device's base32 TOTP secret is encrypted with Fernet.
The key is IDP_MFA_KEY (a Fernet key; several comma-separated keys rotate:
the first encrypts, any decrypts). When IDP_MFA_KEY is unset the key is
derived from IDP_SECRET_KEY with HKDF-SHA256 (info "cpoms-idp/mfa-secrets/v1"),
so changing the secret key then makes every enrolled device unusable: set
IDP_MFA_KEY in production."""

from __future__ import annotations

import base64
import hmac
import re
import secrets

import pyotp
import segno
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import and_, delete, exists, func, or_, select, update

from .. import audit, clock
from ..errors import DomainError, NotAllowed, NotFound, RateLimited
from ..extensions import db
from ..models import Account, BrowserSession, Membership, MfaDevice, RecoveryCode, SecurityKey, Tenant
from ..models.base import check_length, hash_secret
from ..ratelimits import MFA_PER_ACCOUNT, Throttle
from ..transactions import commit_now

#: acr values advertised in discovery; a client asks for 2FA with acr_values=ACR_2FA, and for a
#: security key or passkey (WebAuthn: the origin is bound into the signature, so a look-alike site
#: cannot relay it) with acr_values=ACR_PHISHING_RESISTANT.
ACR_PASSWORD = "urn:cpoms:acr:password"
ACR_2FA = "urn:cpoms:acr:2fa"
ACR_PHISHING_RESISTANT = "urn:cpoms:acr:phr"
ACR_VALUES_SUPPORTED = [ACR_PASSWORD, ACR_2FA, ACR_PHISHING_RESISTANT]
#: Weakest first: a request for a level is met by it or any later one.
_LEVELS = [ACR_PASSWORD, ACR_2FA, ACR_PHISHING_RESISTANT]

#: What a completed second step with an app code (or a recovery code) adds to the sign-in (RFC 8176).
SECOND_FACTOR_AMR = ["otp", "mfa"]
#: RFC 8176 methods of a WebAuthn key: hardware-bound, or a synced passkey (software-held).
KEY_AMR = ("hwk", "swk")

ISSUER_NAME = "CPOMS"
TOTP_STEP = 30
#: ±1 time step of clock drift between the phone and the server (RFC 6238 section 5.2).
TOTP_VALID_WINDOW = 1
RECOVERY_CODE_COUNT = 10
#: 10 base32 characters = 50 bits each: not guessable within any throttle.
RECOVERY_CODE_LENGTH = 10
MAX_DEVICES = 10

#: Recovery codes stay usable while authenticator codes are locked, under their own, looser limit.
RECOVERY_PER_ACCOUNT = Throttle("mfa-recovery-account", "10 per hour; 30 per day")

INVALID_CODE_MESSAGE = "The code you entered is incorrect. Check your authenticator app and try again"
REPLAYED_CODE_MESSAGE = (
    "That code has already been used. Wait for your authenticator app to show a new code and enter that"
)
INVALID_RECOVERY_MESSAGE = "That recovery code is incorrect or has already been used"
BAD_FORMAT_MESSAGE = "Enter the 6-digit code from your authenticator app, or one of your recovery codes"
LOCKED_MESSAGE = (
    "Too many incorrect codes. Please wait {wait} and try again, or enter one of your recovery codes "
    "instead. If you have lost your phone and your recovery codes, ask your school's CPOMS Administrator "
    "to reset your two-step verification."
)
RECOVERY_LOCKED_MESSAGE = (
    "Too many incorrect codes. Please wait {wait} and try again, or ask your school's CPOMS Administrator "
    "to reset your two-step verification."
)
LAST_KEY_REQUIRED_MESSAGE = (
    "You cannot remove your only security key or passkey because {tenant} requires one for your account. "
    "Add another security key or passkey first."
)
OPERATOR_LAST_KEY_MESSAGE = (
    "You cannot remove your only security key or passkey because CPOMS platform operators must use one. "
    "Add another security key or passkey first."
)
LAST_DEVICE_REQUIRED_MESSAGE = (
    "You cannot remove your only authenticator app because {tenant} requires two-step verification. "
    "Add another authenticator app first."
)
OPERATOR_LAST_DEVICE_MESSAGE = (
    "You cannot remove your only authenticator app because CPOMS platform operators must use two-step "
    "verification. Add another authenticator app first."
)
KEY_FOR_NEW_CODES_MESSAGE = "You have a security key or passkey: use it to make new recovery codes."
#: Seconds a confirmation stays fresh: an operator's change to the platform, and a change to how
#: an account signs in, need one given this recently.
FRESH_SECONDS = 15 * 60


class InvalidCode(DomainError):
    status_code = 400


# --- policy -----------------------------------------------------------------------------------------------


def policy_covers(tenant: Tenant, membership: Membership | None) -> bool:
    """Whether `tenant`'s policy requires this member to use a second factor."""
    if membership is None or not membership.is_usable:
        return False
    if key_policy_covers(tenant, membership):
        return True
    policy = tenant.require_2fa or "off"
    return policy == "everyone" or (policy == "admins" and membership.role == "admin")


def key_policy_covers(tenant: Tenant, membership: Membership | None) -> bool:
    """Whether `tenant` requires this member to sign in at the phishing-resistant level."""
    return (membership is not None and membership.is_usable and bool(tenant.admins_phishing_resistant)
            and membership.role == "admin")


def operators_need_a_key() -> bool:
    return bool(current_app.config["SETTINGS"].operators_require_security_key)


def operator_requirement(account: Account, amr) -> str | None:
    """What a platform operator must do before the platform pages: "enrol" a second factor first,
    "verify" one in this sign-in (with a key: "enrol_key", "verify_key" where operators must use
    one), or None. Operators see every school, so a password never suffices."""
    if operators_need_a_key():
        return None if is_phishing_resistant(amr) else ("verify_key" if has_security_key(account) else "enrol_key")
    if not is_enrolled(account):
        return "enrol"
    if not is_second_factor(amr):
        return "verify"
    return None


def operator_change_confirmation() -> str:
    """What a platform change asks of the operator's sign-in in the last FRESH_SECONDS."""
    return "verify_key" if operators_need_a_key() else "verify"


def change_confirmation(account: Account) -> str | None:
    """What a change to how `account` signs in (adding a security key, passkey or app, removing
    a key) asks of the sign-in in the last FRESH_SECONDS: "verify_key" where the account has a
    key (an app code relayed by a look-alike site must not add the thief's key), "verify" where
    it has only an app, None where it has no second factor yet (its first is set up from the
    password sign-in, and the person is told by mail). Read from the account as the sign-in
    loaded it (no query)."""
    if account.has_security_key:
        return "verify_key"
    return "verify" if account.mfa_enrolled else None


def must_keep_a_second_factor(account: Account) -> str | None:
    """Why the account may not be left without a second factor (None when it may)."""
    if account.is_operator and not account.retired:
        return OPERATOR_LAST_DEVICE_MESSAGE
    required_by = tenants_requiring(account)
    if required_by:
        return LAST_DEVICE_REQUIRED_MESSAGE.format(tenant=required_by[0].name)
    return None


def must_keep_a_key(account: Account) -> str | None:
    """Why the account may not be left without a security key or passkey (None when it may)."""
    if account.retired:
        return None
    if account.is_operator and operators_need_a_key():
        return OPERATOR_LAST_KEY_MESSAGE
    for m in account.memberships:
        if key_policy_covers(m.tenant, m):
            return LAST_KEY_REQUIRED_MESSAGE.format(tenant=m.tenant.name)
    return None


def tenants_requiring(account: Account) -> list[Tenant]:
    """The tenants whose policy requires `account` to keep a second factor."""
    if account.retired:
        return []
    return [m.tenant for m in account.memberships if policy_covers(m.tenant, m)]


def is_second_factor(amr) -> bool:
    """Whether a sign-in of these methods (RFC 8176) included a second factor: an app or recovery
    code ("otp"), or a security key or passkey ("hwk"/"swk")."""
    return any(method in ("otp", *KEY_AMR) for method in (amr or ()))


def is_phishing_resistant(amr) -> bool:
    """Whether the sign-in used a WebAuthn key (its signature covers the origin)."""
    return any(method in KEY_AMR for method in (amr or ()))


def requested_level(acr_values: str | None) -> str | None:
    """The strongest of our levels a relying party's `acr_values` names (OIDC Core 3.1.2.1), or None."""
    named = set((acr_values or "").split())
    return next((level for level in reversed(_LEVELS) if level in named), None)


def _needs(requested) -> str | None:
    # True: the older callers' "acr_values asked for 2FA".
    return ACR_2FA if requested is True else (requested or None)


def sign_in_requirement(account, membership, amr, requested_acr=None) -> str | None:
    """What must happen before `account` may use `membership`'s tenant with a sign-in of `amr`
    (`requested_acr`: the level a relying party asked for, see requested_level): None (nothing),
    "verify" (a second factor), "enrol" (set one up first), "verify_key" (a security key or
    passkey, for the phishing-resistant level) or "enrol_key" (register one first)."""
    requested = _needs(requested_acr)
    tenant = membership.tenant if membership is not None else None
    if requested == ACR_PHISHING_RESISTANT or (tenant is not None and key_policy_covers(tenant, membership)):
        if is_phishing_resistant(amr):
            return None
        # Loaded with the account (no extra query).
        return "verify_key" if account.has_security_key else "enrol_key"
    if is_second_factor(amr):
        return None
    if account.mfa_enrolled:
        # An enrolled account always signs in with its key, wherever it signs in.
        return "verify"
    if requested == ACR_2FA or (tenant is not None and policy_covers(tenant, membership)):
        return "enrol"
    return None


def nothing_more_needed_criteria(requested_acr=None) -> list:
    """sign_in_requirement's None, as SQL criteria over a BrowserSession, its Account, that
    account's Membership and that membership's Tenant, for a statement that must decide without
    loading any of them first (authorize's one statement; the policy is read from the row, never
    from a cache): true exactly for the sign-ins that need nothing more first."""
    requested = _needs(requested_acr)
    # The session's acr is the level its amr reached (acr_for), kept in its row.
    phishing_resistant = BrowserSession.acr == ACR_PHISHING_RESISTANT
    if requested == ACR_PHISHING_RESISTANT:
        return [phishing_resistant]
    key_policy = and_(Tenant.admins_phishing_resistant.is_(True), Membership.role == "admin")
    if requested == ACR_2FA:
        return [or_(phishing_resistant, and_(~key_policy, BrowserSession.second_factor.is_(True)))]
    policy = func.coalesce(Tenant.require_2fa, "off")
    return [or_(
        phishing_resistant,
        and_(~key_policy, or_(
            BrowserSession.second_factor.is_(True),
            and_(~Account.mfa_enrolled, or_(policy == "off", and_(policy == "admins", Membership.role != "admin"))),
        )),
    )]


def acr_for(amr) -> str:
    if is_phishing_resistant(amr):
        return ACR_PHISHING_RESISTANT
    return ACR_2FA if is_second_factor(amr) else ACR_PASSWORD


# --- secrets at rest --------------------------------------------------------------------------------------


def _cipher() -> MultiFernet:
    settings = current_app.config["SETTINGS"]
    if settings.mfa_key:
        try:
            return MultiFernet([Fernet(key.strip()) for key in settings.mfa_key.split(",") if key.strip()])
        except (ValueError, TypeError):
            raise RuntimeError("IDP_MFA_KEY must be Fernet keys (32 url-safe base64 bytes), comma-separated") from None
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"cpoms-idp/mfa-secrets/v1").derive(
        settings.secret_key.encode("utf-8")
    )
    return MultiFernet([Fernet(base64.urlsafe_b64encode(derived))])


def _encrypt(secret: str) -> str:
    return _cipher().encrypt(secret.encode("ascii")).decode("ascii")


def _decrypt(token: str) -> str | None:
    try:
        return _cipher().decrypt(token.encode("ascii")).decode("ascii")
    except InvalidToken:
        # Wrong or rotated-away key: the device cannot produce a match. Never log the token.
        current_app.logger.warning("an MFA device secret could not be decrypted (IDP_MFA_KEY changed?)")
        return None


# --- devices ----------------------------------------------------------------------------------------------


def confirmed_devices(account: Account) -> list[MfaDevice]:
    return list(
        db.session.scalars(
            select(MfaDevice)
            .where(MfaDevice.account_id == account.id, MfaDevice.confirmed_at.is_not(None))
            .order_by(MfaDevice.confirmed_at, MfaDevice.id)
        )
    )


def is_enrolled(account: Account) -> bool:
    """Whether the account has a second factor (an app or a key). Asked afresh, for the write
    paths; readers use the loaded `account.mfa_enrolled`."""
    return second_factor_count(account) > 0


def has_security_key(account: Account) -> bool:
    """Asked afresh; readers use the loaded `account.has_security_key`."""
    return db.session.scalar(select(exists().where(SecurityKey.account_id == account.id)))


def second_factor_count(account: Account) -> int:
    """How many second factors the account has: confirmed apps and security keys together."""
    apps = select(func.count(MfaDevice.id)).where(
        MfaDevice.account_id == account.id, MfaDevice.confirmed_at.is_not(None)).scalar_subquery()
    keys = select(func.count(SecurityKey.id)).where(SecurityKey.account_id == account.id).scalar_subquery()
    return db.session.scalar(select(apps + keys)) or 0


def last_used_at(device: MfaDevice):
    """When the app's code was last accepted (the start of its time step), or None."""
    if device.last_used_step is None or device.confirmed_at is None:
        return None
    from datetime import datetime, timezone

    used = datetime.fromtimestamp(device.last_used_step * TOTP_STEP, timezone.utc)
    # The code that confirmed the device is its first step, not a use.
    return used if used > device.confirmed_at + _one_step() else None


def _one_step():
    from datetime import timedelta

    return timedelta(seconds=TOTP_STEP)


def remaining_recovery_codes(account: Account) -> int:
    return db.session.scalar(
        select(func.count(RecoveryCode.id)).where(RecoveryCode.account_id == account.id, RecoveryCode.used_at.is_(None))
    )


def get_device(account: Account, device_id: int) -> MfaDevice:
    """One of `account`'s devices; someone else's id is simply not found."""
    device = db.session.scalars(
        select(MfaDevice).where(MfaDevice.id == device_id, MfaDevice.account_id == account.id)
    ).first()
    if device is None:
        raise NotFound("That authenticator app does not exist. It may have been removed already.")
    return device


def start_enrolment(account: Account, name: str) -> MfaDevice:
    """A new, unconfirmed device with a fresh secret. It counts only after a valid code (confirm_enrolment)."""
    name = (name or "").strip()
    if not name:
        raise InvalidCode("Enter a name for this authenticator app, for example My phone")
    if len(confirmed_devices(account)) >= MAX_DEVICES:
        raise NotAllowed(f"You already have {MAX_DEVICES} authenticator apps. Remove one before adding another.")
    # One enrolment at a time: an abandoned QR code must not stay valid.
    db.session.execute(
        delete(MfaDevice).where(MfaDevice.account_id == account.id, MfaDevice.confirmed_at.is_(None))
    )
    check_length(name, MfaDevice.name, field="name", label="The name")
    device = MfaDevice(account_id=account.id, name=name, secret_encrypted=_encrypt(pyotp.random_base32()))
    db.session.add(device)
    db.session.flush()
    return device


def device_secret(device: MfaDevice) -> str:
    """The base32 secret, for showing during enrolment only (manual entry)."""
    return _decrypt(device.secret_encrypted) or ""


def provisioning_uri(account: Account, device: MfaDevice) -> str:
    return pyotp.TOTP(device_secret(device)).provisioning_uri(name=account.email, issuer_name=ISSUER_NAME)


def qr_svg(uri: str) -> str:
    """Inline SVG markup of the QR code, made here: the secret never goes to an outside service.
    Colours are attributes, not style= (the CSP forbids inline styles)."""
    return segno.make(uri, error="m").svg_inline(
        scale=5, border=4, dark="#0b0c0c", light="#ffffff", svgclass="qr-code", lineclass=None,
        title="QR code to scan with your authenticator app",
    )


def grouped_secret(secret: str) -> str:
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def confirm_enrolment(
    account: Account, device: MfaDevice, code: str, *, tenant: Tenant | None, ip: str | None
) -> list[str] | None:
    """Complete enrolment with a valid code from the new device. Returns the new recovery codes
    when this is the account's first device (show them once), else None."""
    if device.account_id != account.id or device.confirmed_at is not None:
        raise NotFound("That authenticator app is not waiting to be set up.")
    code = _normalise(code)
    if not re.fullmatch(r"[0-9]{6}", code):
        raise InvalidCode("Enter the 6-digit code shown in your authenticator app")
    step = _matching_step(device, code)
    if step is None:
        raise InvalidCode(INVALID_CODE_MESSAGE)
    first = not is_enrolled(account)
    device.confirmed_at = clock.now()
    # The code that confirmed the device must not also sign someone in.
    device.last_used_step = step
    audit.record(audit.MFA_ENROLLED, tenant=tenant, actor=account, subject=account, ip=ip, device=device.name)
    codes = replace_recovery_codes(account) if first or remaining_recovery_codes(account) == 0 else None
    db.session.flush()
    tell_the_person(account, tenant, kind_name="Authenticator app", factor_name=device.name, added=True)
    return codes


def tell_the_person(account: Account, tenant: Tenant | None, *, kind_name: str = "", factor_name: str = "",
                    added: bool = False, reset: bool = False) -> None:
    """Mail the person that a second factor was added to or removed from their account, apart
    from the sign-in that did it (NIST SP 800-63B: the subscriber is told when an authenticator
    is bound or removed), so someone whose password and code were stolen finds out. A mail that
    cannot be sent does not undo the change (mail.sent)."""
    from .. import mail
    from ..mail import messages

    mail.sent(lambda: mail.send(messages.second_factor_changed(
        account=account, tenant=tenant, kind_name=kind_name, factor_name=factor_name, added=added, reset=reset)))


def removal_refusal(account: Account, factor: MfaDevice | SecurityKey) -> str | None:
    """Why `factor` (an app or a security key) may not be removed (None when it may): the last
    second factor stays while a tenant of the account (or the operators' rule) requires 2FA, and
    the last security key while one requires the phishing-resistant level."""
    if isinstance(factor, MfaDevice) and factor.confirmed_at is None:
        return None
    if second_factor_count(account) <= 1:
        refusal = must_keep_a_second_factor(account)
        if refusal:
            return refusal
    if isinstance(factor, SecurityKey):
        keys = db.session.scalar(select(func.count(SecurityKey.id)).where(SecurityKey.account_id == account.id))
        if keys <= 1:
            return must_keep_a_key(account)
    return None


def forget_recovery_codes_if_unenrolled(account: Account) -> None:
    """No second factor left: 2FA is off for the account, and so are its recovery codes."""
    if second_factor_count(account) == 0:
        db.session.execute(delete(RecoveryCode).where(RecoveryCode.account_id == account.id))


def rename_device(account: Account, device: MfaDevice, name: str, *, tenant: Tenant | None, ip: str | None) -> None:
    if device.account_id != account.id or device.confirmed_at is None:
        raise NotFound("That authenticator app does not exist.")
    name = _checked_name(name, MfaDevice)
    old, device.name = device.name, name
    audit.record(audit.MFA_RENAMED, tenant=tenant, actor=account, subject=account, ip=ip, device=name, was=old)
    db.session.flush()


def _checked_name(name: str, model) -> str:
    name = (name or "").strip()
    if not name:
        raise InvalidCode("Enter a name, for example My phone or Blue USB key")
    check_length(name, model.name, field="name", label="The name")
    return name


def remove_device(
    account: Account, device: MfaDevice, code: str, *, tenant: Tenant | None, ip: str | None
) -> None:
    """Remove a device after a current code (from any device, or a recovery code).
    The last device cannot go while a tenant of the account requires 2FA for it."""
    if device.account_id != account.id:
        raise NotFound("That authenticator app does not exist.")
    if device.confirmed_at is None:
        db.session.delete(device)
        db.session.flush()
        return
    hold_second_factors(account)
    refusal = removal_refusal(account, device)
    if refusal:
        raise NotAllowed(refusal)
    check_code(account, code, tenant=tenant, ip=ip, purpose="remove device")
    db.session.execute(delete(MfaDevice).where(MfaDevice.id == device.id, MfaDevice.account_id == account.id))
    forget_recovery_codes_if_unenrolled(account)
    audit.record(audit.MFA_REMOVED, tenant=tenant, actor=account, subject=account, ip=ip, device=device.name)
    db.session.flush()
    tell_the_person(account, tenant, kind_name="Authenticator app", factor_name=device.name, added=False)


def hold_second_factors(account: Account) -> None:
    """Lock the account's row until the transaction ends, before deciding a second factor may go:
    two removals at once must not each count the other's factor as still there. A write that
    changes nothing, so both databases hold it (PostgreSQL's row lock; SQLite's write lock, taken
    before the counts are read)."""
    db.session.execute(update(Account).where(Account.id == account.id).values(id=Account.id)
                       .execution_options(synchronize_session=False))


#: The audit log's purpose for a second factor checked before new recovery codes.
REGENERATE_PURPOSE = "regenerate recovery codes"


def regenerate_recovery_codes(account: Account, code: str, *, tenant: Tenant | None, ip: str | None) -> list[str]:
    """New recovery codes (the old ones stop working) after a current code. An account with a
    security key makes them with the key only (security_keys.regenerate_recovery_codes): ten
    lasting codes must not be had for a code a look-alike site relayed."""
    if not is_enrolled(account):
        raise NotAllowed("Set up an authenticator app before creating recovery codes.")
    if has_security_key(account):
        raise NotAllowed(KEY_FOR_NEW_CODES_MESSAGE)
    check_code(account, code, tenant=tenant, ip=ip, purpose=REGENERATE_PURPOSE)
    return replace_recovery_codes(account)


# --- the second step -------------------------------------------------------------------------------------


def verify_second_factor(account: Account, code: str, *, tenant: Tenant | None, ip: str | None) -> str:
    """The second sign-in step (or step-up): "otp" or "recovery" when `code` is right, else
    InvalidCode / RateLimited. Each code works once (replay refusal, race-free)."""
    return check_code(account, code, tenant=tenant, ip=ip, purpose="sign in")


def check_code(account: Account, code: str, *, tenant: Tenant | None, ip: str | None, purpose: str) -> str:
    code = _normalise(code)
    key = str(account.id)
    if re.fullmatch(r"[0-9]{6}", code):
        if MFA_PER_ACCOUNT.is_blocked(key):
            _failed(account, tenant, ip, purpose, "locked")
            raise RateLimited(LOCKED_MESSAGE.format(wait=_lock_length(MFA_PER_ACCOUNT, key)))
        outcome = _use_totp(account, code)
        if outcome == "ok":
            MFA_PER_ACCOUNT.clear(key)
            _succeeded(account, tenant, ip, purpose, "otp")
            return "otp"
        MFA_PER_ACCOUNT.hit(key)
        _failed(account, tenant, ip, purpose, outcome)
        raise InvalidCode(REPLAYED_CODE_MESSAGE if outcome == "replayed" else INVALID_CODE_MESSAGE)
    if re.fullmatch(r"[A-Z2-7]{%d}" % RECOVERY_CODE_LENGTH, code):
        if RECOVERY_PER_ACCOUNT.is_blocked(key):
            _failed(account, tenant, ip, purpose, "recovery locked")
            raise RateLimited(RECOVERY_LOCKED_MESSAGE.format(wait=_lock_length(RECOVERY_PER_ACCOUNT, key)))
        if _use_recovery_code(account, code):
            _succeeded(account, tenant, ip, purpose, "recovery")
            return "recovery"
        RECOVERY_PER_ACCOUNT.hit(key)
        _failed(account, tenant, ip, purpose, "bad recovery code")
        raise InvalidCode(INVALID_RECOVERY_MESSAGE)
    raise InvalidCode(BAD_FORMAT_MESSAGE)


def _lock_length(throttle: Throttle, key: str) -> str:
    """How long the lock may last, from the longest limit that is used up ("5 minutes", "24 hours")."""
    seconds = throttle.lock_seconds(key) or 300
    if seconds < 3600:
        minutes = -(-seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = -(-seconds // 3600)
    return f"{hours} hour{'s' if hours != 1 else ''}"


def _normalise(code: str) -> str:
    return re.sub(r"[\s-]", "", code or "").upper()


def _matching_step(device: MfaDevice, code: str) -> int | None:
    """The time step whose code `code` is, within ±TOTP_VALID_WINDOW of the clock, else None."""
    secret = _decrypt(device.secret_encrypted)
    if not secret:
        return None
    totp = pyotp.TOTP(secret, interval=TOTP_STEP)
    now = clock.timestamp()
    if not totp.verify(code, for_time=now, valid_window=TOTP_VALID_WINDOW):
        return None
    # pyotp says "somewhere in the window"; replay refusal needs to know which step.
    current = now // TOTP_STEP
    for step in (current + 1, current, current - 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _use_totp(account: Account, code: str) -> str:
    """'ok', 'replayed' or 'wrong'. The step is claimed with a conditional UPDATE, so of two
    simultaneous submissions of one code exactly one succeeds."""
    replayed = False
    for device in confirmed_devices(account):
        step = _matching_step(device, code)
        if step is None:
            continue
        claimed = db.session.execute(
            update(MfaDevice)
            .where(
                MfaDevice.id == device.id,
                MfaDevice.account_id == account.id,
                or_(MfaDevice.last_used_step.is_(None), MfaDevice.last_used_step < step),
            )
            .values(last_used_step=step)
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed == 1:
            return "ok"
        replayed = True
    return "replayed" if replayed else "wrong"


def _use_recovery_code(account: Account, code: str) -> bool:
    used = db.session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.account_id == account.id,
            RecoveryCode.code_hash == hash_secret(code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=clock.now())
        .execution_options(synchronize_session=False)
    ).rowcount
    return used == 1


def replace_recovery_codes(account: Account) -> list[str]:
    """A fresh set of recovery codes (the old ones stop working), shown once: the caller has
    checked the person (a second factor just used, or a first enrolment)."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.account_id == account.id))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    codes = ["".join(secrets.choice(alphabet) for _ in range(RECOVERY_CODE_LENGTH)) for _ in range(RECOVERY_CODE_COUNT)]
    for code in codes:
        db.session.add(RecoveryCode(account_id=account.id, code_hash=hash_secret(code)))
    db.session.flush()
    half = RECOVERY_CODE_LENGTH // 2
    return [f"{code[:half]}-{code[half:]}" for code in codes]


def _succeeded(account, tenant, ip, purpose, method) -> None:
    audit.record(audit.MFA_SUCCEEDED, tenant=tenant, actor=account, subject=account, ip=ip, purpose=purpose,
                 method=method)


def _failed(account, tenant, ip, purpose, reason) -> None:
    audit.record(audit.MFA_FAILED, tenant=tenant, actor=account, subject=account, outcome="failure", ip=ip,
                 purpose=purpose, reason=reason)
    commit_now(because="a refused code is recorded though the page refuses it")
