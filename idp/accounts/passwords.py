"""argon2id hashing of passwords (OWASP cost by default, configurable) and the
password policy (every rule in plain words, history, zxcvbn guessability).

Verification of an unknown account still computes one hash against a dummy,
so a failed login takes the same time whether or not the account exists."""

from __future__ import annotations

import re
import sys
from functools import lru_cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app


@lru_cache(maxsize=8)
def _hasher_for(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
    )


def hasher() -> PasswordHasher:
    s = current_app.config["SETTINGS"]
    return _hasher_for(s.argon2_time_cost, s.argon2_memory_kib, s.argon2_parallelism)


@lru_cache(maxsize=8)
def _dummy_hash(time_cost: int, memory_kib: int, parallelism: int) -> str:
    return _hasher_for(time_cost, memory_kib, parallelism).hash("not a real password")


def _off_the_event_loop(call, *args):
    """argon2 is ~15 ms of C that releases the GIL. Under gunicorn's gevent worker it would stall
    every other request of that worker for as long, so there it runs on gevent's pool of real threads."""
    if "gevent" in sys.modules:
        import gevent
        from gevent import monkey

        if monkey.is_module_patched("threading"):
            return gevent.get_hub().threadpool.apply(call, args)
    return call(*args)


def hash_password(password: str) -> str:
    return _off_the_event_loop(hasher().hash, password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches; always spends one hash, even with no hash to check."""
    if not password_hash:
        s = current_app.config["SETTINGS"]
        password_hash = _dummy_hash(s.argon2_time_cost, s.argon2_memory_kib, s.argon2_parallelism)
        _verify(password_hash, password)
        return False
    return _verify(password_hash, password)


def _verify(password_hash: str, password: str) -> bool:
    return _off_the_event_loop(_matches, hasher(), password_hash, password)


def _matches(hasher_: PasswordHasher, password_hash: str, password: str) -> bool:
    # Caught in the thread that runs argon2: gevent's pool prints a traceback for every exception
    # that leaves one of its threads, which would be one per wrong password.
    try:
        return hasher_.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    try:
        return hasher().check_needs_rehash(password_hash)
    except InvalidHashError:
        return True


# --- Policy -----------------------------------------------------------------
# The rules the help page tells people ("at least one capital letter, number and a
# special character", "a password you have not used for CPOMS previously"), plus a
# minimum length and an offline guessability check (zxcvbn's ranked common-password
# lists and patterns). Passwords never expire: there is deliberately no age rule.

#: zxcvbn scores 0-4; below this a password is refused as too easy to guess.
MIN_STRENGTH_SCORE = 3
#: zxcvbn's matching grows quickly with length; the first characters decide guessability.
_STRENGTH_CHECK_CHARS = 100
#: A local part this short ("jo@...") appears in too many good passwords to refuse it.
_MIN_LOCAL_PART_TO_REFUSE = 4
PASSWORDS_DIFFER = "The two passwords do not match"


def rule_descriptions(min_length: int | None = None) -> list[tuple[str, str]]:
    """(key, plain words) for each rule, in the order the page lists them.

    Keys with a live check in static/password-rules.js: length, capital, number,
    special, email, match. The others can only be checked when the form is sent."""
    min_length = min_length or _settings().password_min_length
    return [
        ("length", f"At least {min_length} characters"),
        ("capital", "At least one capital letter (A to Z)"),
        ("number", "At least one number (0 to 9)"),
        ("special", "At least one special character, such as ! ? # % or *"),
        ("email", "Not your email address"),
        ("common", "Not a common or easily guessed password"),
        ("history", "Not a password you have used for CPOMS before"),
        ("match", "Both passwords match"),
    ]


def _settings():
    return current_app.config["SETTINGS"]


def _has_capital(password: str) -> bool:
    return any(ch.isupper() for ch in password)


def _has_number(password: str) -> bool:
    return any(ch.isdigit() for ch in password)


def _has_special(password: str) -> bool:
    return any(not ch.isalnum() and not ch.isspace() for ch in password)


def _contains_email(password: str, email: str) -> bool:
    email = (email or "").strip().lower()
    if not email:
        return False
    lowered = password.lower()
    local = email.split("@", 1)[0]
    return email in lowered or (len(local) >= _MIN_LOCAL_PART_TO_REFUSE and local in lowered)


def _is_easily_guessed(password: str, user_inputs: list[str]) -> bool:
    from zxcvbn import zxcvbn

    result = zxcvbn(password[:_STRENGTH_CHECK_CHARS], user_inputs=[u for u in user_inputs if u])
    return result["score"] < MIN_STRENGTH_SCORE


def used_before(account, password: str) -> bool:
    """Whether `password` matches the account's current or any earlier password hash."""
    from sqlalchemy import select

    from ..extensions import db
    from ..models import PasswordHistory

    if account is None or account.id is None:
        return False
    hashes = set(
        db.session.scalars(select(PasswordHistory.password_hash).where(PasswordHistory.account_id == account.id))
    )
    if account.password_hash:
        hashes.add(account.password_hash)
    # Every hash is checked (no early exit), so the time does not tell which one matched.
    matches = [_verify(stored, password) for stored in hashes]
    return any(matches)


def rules_met(password: str, *, email: str = "", confirmation: str | None = None) -> set[str]:
    """The cheap rules (those the live hint ticks) that `password` already meets."""
    password = password or ""
    met = set()
    if len(password) >= _settings().password_min_length:
        met.add("length")
    if _has_capital(password):
        met.add("capital")
    if _has_number(password):
        met.add("number")
    if _has_special(password):
        met.add("special")
    if password and not _contains_email(password, email):
        met.add("email")
    if password and confirmation is not None and password == confirmation:
        met.add("match")
    return met


def policy_problems(
    password: str,
    *,
    email: str = "",
    name: str = "",
    account=None,
    confirmation: str | None = None,
    extra_words: tuple[str, ...] = (),
) -> list[str]:
    """Every rule `password` breaks, in plain words (empty when it is acceptable).

    `confirmation` (the second field) is compared when given; `account` brings the
    password history; `email`, `name` and `extra_words` (school name...) count as
    easily guessed."""
    password = password or ""
    min_length = _settings().password_min_length
    problems = []
    if len(password) < min_length:
        problems.append(f"Your password must be at least {min_length} characters long")
    if not _has_capital(password):
        problems.append("Your password must contain at least one capital letter")
    if not _has_number(password):
        problems.append("Your password must contain at least one number")
    if not _has_special(password):
        problems.append("Your password must contain at least one special character, such as ! ? # % or *")
    email = email or (account.email if account is not None else "")
    if password and _contains_email(password, email):
        problems.append("Your password must not be or contain your email address")
    local = email.split("@", 1)[0]
    phrases = [name, *extra_words]
    user_inputs = [email, local, *re.split(r"[._+-]", local), *phrases,
                   *(word for phrase in phrases for word in phrase.split()), "cpoms", "staffsafe"]
    if password and _is_easily_guessed(password, user_inputs):
        problems.append(
            "Your password is too common or easy to guess: use a longer password, "
            "for example three or four unrelated words"
        )
    if password and used_before(account, password):
        problems.append("You have used this password for CPOMS before: choose a password you have not used")
    if confirmation is not None and password != confirmation:
        problems.append(PASSWORDS_DIFFER)
    return problems


def check_policy(password: str, **kwargs) -> None:
    """Raise PolicyViolation listing every rule `password` breaks."""
    from ..errors import PolicyViolation

    problems = policy_problems(password, **kwargs)
    if problems:
        raise PolicyViolation(problems)
