"""Security keys and passkeys (WebAuthn): registering them, using one as the second step, signing
in with a passkey alone, renaming and removing them.

py_webauthn verifies every ceremony (signatures, origin, RP id, flags); this module decides what
is expected: the relying party is the issuer (RP id: its host; origin: its scheme, host and port),
each challenge is random, kept only as a hash bound to the browser that asked for it, valid for
CHALLENGE_SECONDS and used once (one DELETE wins a race), attestation is `none` (schools need to
know that the person holds the key, not who made it), and a signature counter that goes backwards
is refused and flagged in the audit log (two authenticators holding one key: a clone)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import webauthn
from flask import current_app
from sqlalchemy import and_, delete, func, or_, select, update
from webauthn.helpers import bytes_to_base64url, options_to_json_dict
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from .. import audit, clock
from ..errors import DomainError, NotAllowed, NotFound, RateLimited
from ..extensions import db
from ..models import Account, SecurityKey, Tenant, WebAuthnChallenge
from ..models.base import hash_secret
from ..ratelimits import PASSKEY_PER_IP
from ..transactions import commit_now
from . import directory, mfa

#: A ceremony must be finished within this many seconds of its challenge.
CHALLENGE_SECONDS = 5 * 60
MAX_KEYS = 10
#: A browser's answer is a few kilobytes at most; anything larger is not one.
MAX_RESPONSE_CHARS = 64_000
RP_NAME = "CPOMS"

REGISTER_KEY, REGISTER_PASSKEY, SECOND_FACTOR, PASSKEY = "register-key", "register-passkey", "second-factor", "passkey"

NOT_A_RESPONSE_MESSAGE = "Your browser did not send a security key response we could read. Try again."
EXPIRED_MESSAGE = (
    "That security key request has expired or was already used. Try again: you have 5 minutes to use your key."
)
REFUSED_MESSAGE = "That security key or passkey was not accepted. Try again, or use another way to sign in."
UNKNOWN_KEY_MESSAGE = "That security key is not registered to your account. Try another key, or another way to sign in."
UNKNOWN_PASSKEY_MESSAGE = (
    "That passkey cannot sign you in here. Check you chose the right account type, or sign in with your email "
    "address and password."
)
CLONE_MESSAGE = (
    "This security key could not be trusted, so it was not accepted. Use another way to sign in, and ask your "
    "school's CPOMS Administrator for help."
)
ALREADY_REGISTERED_MESSAGE = "That security key is already registered."


class KeyRefused(DomainError):
    """A WebAuthn response that does not pass: shown to the person, answered with a 400."""

    status_code = 400


@dataclass(frozen=True)
class RelyingParty:
    id: str
    origin: str


def relying_party() -> RelyingParty:
    """The issuer's host is the RP id (WebAuthn 5.1.3 needs a domain, so `localhost` rather than
    127.0.0.1 in development); its origin is the only origin accepted, serialised as browsers send
    it (lower case, no default port: https://idp.example:443 is https://idp.example)."""
    parts = urlsplit(current_app.config["SETTINGS"].issuer)
    host = (parts.hostname or "").lower()
    port = parts.port if parts.port not in (None, {"https": 443, "http": 80}.get(parts.scheme)) else None
    return RelyingParty(id=host, origin=f"{parts.scheme}://{host}" + (f":{port}" if port else ""))


# --------------------------------------------------------------------------- the keys


def keys_of(account: Account) -> list[SecurityKey]:
    return list(db.session.scalars(
        select(SecurityKey).where(SecurityKey.account_id == account.id).order_by(SecurityKey.created_at, SecurityKey.id)
    ))


def get_key(account: Account, key_id: int) -> SecurityKey:
    """One of `account`'s keys; someone else's id is simply not found."""
    key = db.session.scalars(
        select(SecurityKey).where(SecurityKey.id == key_id, SecurityKey.account_id == account.id)
    ).first()
    if key is None:
        raise NotFound("That security key does not exist. It may have been removed already.")
    return key


def rename_key(account: Account, key: SecurityKey, name: str, *, tenant: Tenant | None, ip: str | None) -> None:
    if key.account_id != account.id:
        raise NotFound("That security key does not exist.")
    name = mfa._checked_name(name, SecurityKey)
    old, key.name = key.name, name
    audit.record(audit.KEY_RENAMED, tenant=tenant, actor=account, subject=account, ip=ip, key=name, was=old)
    db.session.flush()


def remove_key(account: Account, key: SecurityKey, *, tenant: Tenant | None, ip: str | None) -> None:
    """Remove a key (the page asks for a sign-in with a second factor first). The last second
    factor, or the last key, stays where a rule requires it (mfa.removal_refusal)."""
    if key.account_id != account.id:
        raise NotFound("That security key does not exist.")
    mfa.hold_second_factors(account)
    refusal = mfa.removal_refusal(account, key)
    if refusal:
        raise NotAllowed(refusal)
    db.session.execute(delete(SecurityKey).where(SecurityKey.id == key.id, SecurityKey.account_id == account.id))
    mfa.forget_recovery_codes_if_unenrolled(account)
    audit.record(audit.KEY_REMOVED, tenant=tenant, actor=account, subject=account, ip=ip, key=key.name,
                 passkey=key.passkey)
    db.session.flush()
    mfa.tell_the_person(account, tenant, kind_name=key.kind_name, factor_name=key.name, added=False)


# --------------------------------------------------------------------------- challenges


def _new_challenge(binding: str, purpose: str, *, account: Account | None = None, tenant: Tenant | None = None,
                   provider: str | None = None) -> bytes:
    challenge = webauthn.helpers.generate_challenge()
    now = clock.now()
    # This browser's unfinished ceremonies end here, and anyone's expired ones.
    db.session.execute(delete(WebAuthnChallenge).where(or_(
        WebAuthnChallenge.binding_hash == hash_secret(binding), WebAuthnChallenge.expires_at <= now)))
    db.session.add(WebAuthnChallenge(
        challenge_hash=hash_secret(bytes_to_base64url(challenge)), binding_hash=hash_secret(binding), purpose=purpose,
        account_id=account.id if account is not None else None, tenant_id=tenant.id if tenant is not None else None,
        provider=provider, expires_at=now + timedelta(seconds=CHALLENGE_SECONDS),
    ))
    db.session.flush()
    return challenge


def _consume_challenge(credential: dict, binding: str, purposes: tuple[str, ...], *, account: Account | None = None,
                       tenant: Tenant | None = None, provider: str | None = None) -> tuple[bytes, str]:
    """The challenge this response answers, used up: (its bytes, its purpose). Only a challenge
    handed to this browser, for this purpose and person (or school and provider), not expired."""
    challenge = _challenge_in(credential)
    row = db.session.scalars(select(WebAuthnChallenge).where(
        WebAuthnChallenge.challenge_hash == hash_secret(challenge),
        WebAuthnChallenge.binding_hash == hash_secret(binding),
    )).first()
    if row is None:
        raise KeyRefused(EXPIRED_MESSAGE)
    # One DELETE claims it: of two requests racing with one response, one wins.
    claimed = db.session.execute(
        delete(WebAuthnChallenge).where(WebAuthnChallenge.id == row.id).execution_options(synchronize_session=False)
    ).rowcount
    expected = (
        row.purpose in purposes
        and row.account_id == (account.id if account is not None else None)
        and row.tenant_id == (tenant.id if tenant is not None else None)
        and row.provider == provider
    )
    if claimed != 1 or not expected or row.expires_at <= clock.now():
        commit_now(because="a challenge, once answered, is spent even though the answer is refused")
        raise KeyRefused(EXPIRED_MESSAGE)
    purpose = row.purpose
    db.session.expunge(row)
    return webauthn.base64url_to_bytes(challenge), purpose


def _challenge_in(credential: dict) -> str:
    """The challenge the browser signed (clientDataJSON's, base64url), read only to find its row:
    py_webauthn then checks it equals the expected one."""
    try:
        client_data = json.loads(_b64url_decode(credential["response"]["clientDataJSON"]))
        challenge = client_data["challenge"]
    except (KeyError, TypeError, ValueError, RecursionError):
        raise KeyRefused(NOT_A_RESPONSE_MESSAGE) from None
    if not isinstance(challenge, str) or not 0 < len(challenge) <= 200:
        raise KeyRefused(NOT_A_RESPONSE_MESSAGE)
    return challenge


def _b64url_decode(value) -> bytes:
    if not isinstance(value, str):
        raise ValueError("not a string")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except binascii.Error as error:
        raise ValueError(str(error)) from None


def parse_response(raw) -> dict:
    """The browser's JSON (PublicKeyCredential.toJSON's shape) as a dict, or KeyRefused. The
    credential id, looked up in the database, must be base64url of at most 1023 bytes."""
    if isinstance(raw, str):
        if not raw.strip() or len(raw) > MAX_RESPONSE_CHARS:
            raise KeyRefused(NOT_A_RESPONSE_MESSAGE)
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
            raise KeyRefused(NOT_A_RESPONSE_MESSAGE) from None
    if (not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not _CREDENTIAL_ID.fullmatch(raw["id"])
            or not isinstance(raw.get("response"), dict)):
        raise KeyRefused(NOT_A_RESPONSE_MESSAGE)
    return raw


#: base64url without padding of a credential id (WebAuthn: at most 1023 bytes).
_CREDENTIAL_ID = re.compile(r"[A-Za-z0-9_-]{1,1364}")


# --------------------------------------------------------------------------- registration


def registration_options(account: Account, *, binding: str, passkey: bool) -> dict:
    """navigator.credentials.create()'s options for a new key (a passkey: discoverable, with user
    verification) of `account`, as JSON. The account's keys are excluded (no key twice)."""
    rp = relying_party()
    challenge = _new_challenge(binding, REGISTER_PASSKEY if passkey else REGISTER_KEY, account=account)
    options = webauthn.generate_registration_options(
        rp_id=rp.id, rp_name=RP_NAME,
        # The user handle is the account's `sub`: stable, never reused, and no personal data.
        user_id=account.sub.encode("ascii"), user_name=account.email, user_display_name=account.name or account.email,
        challenge=challenge, timeout=CHALLENGE_SECONDS * 1000,
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED if passkey else ResidentKeyRequirement.DISCOURAGED,
            user_verification=(UserVerificationRequirement.REQUIRED if passkey
                               else UserVerificationRequirement.DISCOURAGED),
        ),
        exclude_credentials=[_descriptor(key) for key in keys_of(account)],
    )
    return options_to_json_dict(options)


def register(account: Account, name: str, raw_response, *, binding: str, tenant: Tenant | None,
             ip: str | None) -> tuple[SecurityKey, list[str] | None]:
    """Keep a new key after py_webauthn verified its registration. Returns the key and, when it is
    the account's first second factor, new recovery codes (show them once)."""
    name = mfa._checked_name(name, SecurityKey)
    credential = parse_response(raw_response)
    if len(keys_of(account)) >= MAX_KEYS:
        raise NotAllowed(f"You already have {MAX_KEYS} security keys. Remove one before adding another.")
    challenge, purpose = _consume_challenge(credential, binding, (REGISTER_KEY, REGISTER_PASSKEY), account=account)
    passkey = purpose == REGISTER_PASSKEY
    rp = relying_party()
    try:
        verified = webauthn.verify_registration_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp.id, expected_origin=rp.origin,
            require_user_verification=passkey,
        )
    except (WebAuthnException, ValueError, TypeError, KeyError, RecursionError) as refused:
        current_app.logger.info("a security key registration was refused: %s", refused)
        commit_now(because="the answered challenge stays spent though the registration is refused")
        raise KeyRefused(REFUSED_MESSAGE) from None
    credential_id = bytes_to_base64url(verified.credential_id)
    if db.session.scalar(select(func.count(SecurityKey.id)).where(SecurityKey.credential_id == credential_id)):
        commit_now(because="the answered challenge stays spent though the key is refused")
        raise KeyRefused(ALREADY_REGISTERED_MESSAGE)
    first = not mfa.is_enrolled(account)
    key = SecurityKey(
        account_id=account.id, name=name, credential_id=credential_id, public_key=verified.credential_public_key,
        sign_count=verified.sign_count, passkey=passkey, backed_up=verified.credential_backed_up,
        transports=_transports(credential), aaguid=verified.aaguid or "",
    )
    db.session.add(key)
    db.session.flush()
    audit.record(audit.KEY_ADDED, tenant=tenant, actor=account, subject=account, ip=ip, key=name, passkey=passkey)
    codes = mfa.replace_recovery_codes(account) if first or mfa.remaining_recovery_codes(account) == 0 else None
    db.session.flush()
    mfa.tell_the_person(account, tenant, kind_name=key.kind_name, factor_name=key.name, added=True)
    return key, codes


def _transports(credential: dict) -> list[str]:
    known = {t.value for t in AuthenticatorTransport}
    given = credential["response"].get("transports")
    return [t for t in given if isinstance(t, str) and t in known][:8] if isinstance(given, list) else []


def _descriptor(key: SecurityKey) -> PublicKeyCredentialDescriptor:
    known = {t.value for t in AuthenticatorTransport}
    return PublicKeyCredentialDescriptor(
        id=webauthn.base64url_to_bytes(key.credential_id),
        transports=[AuthenticatorTransport(t) for t in (key.transports or []) if t in known] or None,
    )


# --------------------------------------------------------------------------- using a key


def second_factor_options(account: Account, *, binding: str) -> dict:
    """navigator.credentials.get()'s options for the second step: any of the account's keys."""
    challenge = _new_challenge(binding, SECOND_FACTOR, account=account)
    return options_to_json_dict(webauthn.generate_authentication_options(
        rp_id=relying_party().id, challenge=challenge, timeout=CHALLENGE_SECONDS * 1000,
        allow_credentials=[_descriptor(key) for key in keys_of(account)],
        user_verification=UserVerificationRequirement.DISCOURAGED,
    ))


PASSKEY_THROTTLED_MESSAGE = (
    "There have been too many passkey sign-ins from your network. Wait a few minutes and try again, "
    "or sign in with your email address and password."
)


def _passkey_attempt(ip: str | None, tenant: Tenant | None) -> None:
    """Count one passkey attempt from `ip` at `tenant` (anonymous: a challenge handed out, or an
    answer refused); RateLimited once the address has made too many there. Per school as well as
    per address, so one school's network cannot block another's passkeys."""
    key = (ip or "unknown", tenant.slug if tenant is not None else "")
    if PASSKEY_PER_IP.is_blocked(*key):
        raise RateLimited(PASSKEY_THROTTLED_MESSAGE)
    PASSKEY_PER_IP.hit(*key)


def passkey_options(tenant: Tenant | None, provider: str, *, binding: str, ip: str | None) -> dict:
    """navigator.credentials.get()'s options for "Sign in with a passkey" on `tenant`'s login page
    (for `provider`'s accounts): the browser offers its discoverable credentials for this site.
    RateLimited where the address has asked too often."""
    _passkey_attempt(ip, tenant)
    challenge = _new_challenge(binding, PASSKEY, tenant=tenant, provider=provider)
    return options_to_json_dict(webauthn.generate_authentication_options(
        rp_id=relying_party().id, challenge=challenge, timeout=CHALLENGE_SECONDS * 1000,
        user_verification=UserVerificationRequirement.REQUIRED,
    ))


def verify_second_factor(account: Account, raw_response, *, binding: str, tenant: Tenant | None,
                         ip: str | None, purpose: str = "sign in") -> list[str]:
    """The second step (or step-up, or a check before new recovery codes) with one of the
    account's keys: the RFC 8176 methods it adds, else KeyRefused."""
    try:
        credential = parse_response(raw_response)
        challenge, _ = _consume_challenge(credential, binding, (SECOND_FACTOR,), account=account)
        key = db.session.scalars(select(SecurityKey).where(
            SecurityKey.credential_id == credential["id"], SecurityKey.account_id == account.id)).first()
        if key is None:
            raise KeyRefused(UNKNOWN_KEY_MESSAGE)
        amr = _use(key, credential, challenge, require_user_verification=False, tenant=tenant, ip=ip)
    except KeyRefused as refused:
        mfa._failed(account, tenant, ip, purpose, f"security key: {refused.message}")
        raise
    mfa._succeeded(account, tenant, ip, purpose, "security key")
    return [*amr, "mfa"]


def regenerate_recovery_codes(account: Account, raw_response, *, binding: str, tenant: Tenant | None,
                              ip: str | None) -> list[str]:
    """New recovery codes after one of the account's keys answers (the way for a person with
    keys and no authenticator app, whose last recovery code may be gone)."""
    verify_second_factor(account, raw_response, binding=binding, tenant=tenant, ip=ip,
                         purpose=mfa.REGENERATE_PURPOSE)
    return mfa.replace_recovery_codes(account)


def sign_in_with_passkey(tenant: Tenant | None, provider: str, raw_response, *, binding: str,
                         ip: str | None) -> tuple[Account, list[str]]:
    """A passkey alone signs in: the account it belongs to, which must be one of `provider`'s
    accounts that may sign in at `tenant` (the directory's rules, as for a password), and the
    sign-in's methods (two factors: the key, and the person verified by it)."""
    try:
        credential = parse_response(raw_response)
        challenge, _ = _consume_challenge(credential, binding, (PASSKEY,), tenant=tenant, provider=provider)
        key = db.session.scalars(select(SecurityKey).where(
            SecurityKey.credential_id == credential["id"], SecurityKey.passkey.is_(True))).first()
        account = db.session.get(Account, key.account_id) if key is not None else None
        if account is None or account.provider != provider or not directory.may_sign_in(account, tenant):
            raise KeyRefused(UNKNOWN_PASSKEY_MESSAGE)
        handle = credential["response"].get("userHandle")
        if handle is not None and handle != bytes_to_base64url(account.sub.encode("ascii")):
            raise KeyRefused(UNKNOWN_PASSKEY_MESSAGE)
        amr = _use(key, credential, challenge, require_user_verification=True, tenant=tenant, ip=ip)
    except KeyRefused as refused:
        try:
            _passkey_attempt(ip, tenant)
        except RateLimited:  # past the limit, refusals are no longer recorded one by one
            commit_now(because="the answered challenge is spent though the address is held back")
            raise
        audit.record(audit.LOGIN_FAILED, tenant=tenant, outcome="failure", ip=ip, provider=provider,
                     reason=f"passkey: {refused.message}")
        commit_now(because="a refused sign-in is recorded, and its challenge spent, though the page refuses it")
        raise
    # "user": the authenticator verified the person (PIN or biometric, it does not say which).
    return account, [*amr, "user", "mfa"]


def _use(key: SecurityKey, credential: dict, challenge: bytes, *, require_user_verification: bool,
         tenant: Tenant | None, ip: str | None) -> list[str]:
    rp = relying_party()
    try:
        # The counter is compared below, after the signature proves the count is the key's own.
        verified = webauthn.verify_authentication_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp.id, expected_origin=rp.origin,
            credential_public_key=key.public_key, credential_current_sign_count=0,
            require_user_verification=require_user_verification,
        )
    except (WebAuthnException, ValueError, TypeError, KeyError, RecursionError) as refused:
        current_app.logger.info("a security key response was refused: %s", refused)
        raise KeyRefused(REFUSED_MESSAGE) from None
    new_count = verified.new_sign_count
    # A counter that does not move forward (while either count is nonzero) means another
    # authenticator has signed with this key since: WebAuthn 6.1.1, a possible clone. One
    # conditional UPDATE, so two uses of one count cannot both pass.
    moved = db.session.execute(
        update(SecurityKey)
        .where(SecurityKey.id == key.id, or_(SecurityKey.sign_count < new_count,
                                              and_(SecurityKey.sign_count == 0, new_count == 0)))
        .values(sign_count=new_count, last_used_at=clock.now(), backed_up=verified.credential_backed_up)
        .execution_options(synchronize_session=False)
    ).rowcount
    if moved != 1:
        audit.record(audit.KEY_CLONE_SUSPECTED, tenant=tenant, subject=key.account_id, outcome="refused", ip=ip,
                     key=key.name, stored_count=key.sign_count, presented_count=new_count)
        commit_now(because="a suspected cloned key is recorded though the sign-in is refused")
        raise KeyRefused(CLONE_MESSAGE)
    audit.record(audit.KEY_USED, tenant=tenant, actor=key.account_id, subject=key.account_id, ip=ip, key=key.name,
                 passkey=key.passkey)
    return ["swk" if verified.credential_backed_up else "hwk"]
