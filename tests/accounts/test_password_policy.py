"""The password policy: every rule in plain words, all failures at once; argon2id defaults."""

from dataclasses import replace

import pytest

from idp.accounts import credentials, passwords
from idp.config import Settings
from idp.errors import PolicyViolation
from tests.conftest import PASSWORD

GOOD = "Lantern-Otter-Quarry-19!"


def problems(password, **kwargs):
    return passwords.policy_problems(password, **kwargs)


def test_a_strong_password_meets_every_rule(app):
    assert problems(GOOD, email="pat.lee@example.org", confirmation=GOOD) == []


@pytest.mark.parametrize(
    "password, expected",
    [
        ("Ab1!xyz", "at least 8 characters long"),
        ("lantern-otter-quarry-19!", "at least one capital letter"),
        ("Lantern-Otter-Quarry-XY!", "at least one number"),
        ("LanternOtterQuarry19xy", "at least one special character"),
    ],
)
def test_each_character_rule_is_explained(app, password, expected):
    found = problems(password, email="pat.lee@example.org")
    assert any(expected in p for p in found), found


def test_minimum_length_is_configurable(app):
    app.config["SETTINGS"] = replace(app.config["SETTINGS"], password_min_length=30)
    assert any("at least 30 characters" in p for p in problems(GOOD))


def test_password_must_not_be_the_email_address(app):
    found = problems("Pat.Lee@Example.org1", email="pat.lee@example.org")
    assert "Your password must not be or contain your email address" in found


def test_password_must_not_contain_the_email_local_part(app):
    assert "Your password must not be or contain your email address" in problems(
        "Robin.Fox-Quarry-19!", email="robin.fox@example.org")
    # A very short local part is too common a fragment to refuse.
    assert "Your password must not be or contain your email address" not in problems(
        "Jo-Lantern-Otter-19!", email="jo@example.org")


@pytest.mark.parametrize("password", ["Password1!", "Welcome123!", "Qwerty123!", "Sunshine#2026"])
def test_common_or_easily_guessed_passwords_are_refused(app, password):
    found = problems(password)
    assert any("too common or easy to guess" in p for p in found), found


def test_name_and_school_count_as_easily_guessed(app):
    assert any("easy to guess" in p for p in problems("Oakwood2026!", extra_words=("Oakwood Primary School",)))


def test_both_fields_must_match(app):
    assert problems(GOOD, confirmation=GOOD + "x") == ["The two passwords do not match"]


def test_every_failure_is_listed_at_once(app):
    found = problems("abc", confirmation="abd")
    assert len(found) == 6


def test_no_earlier_password_can_be_reused(app, world):
    account = world.beech_identity
    credentials.change_password(account, GOOD)
    second = "Walrus-Copper-Meadow-88?"
    credentials.change_password(account, second)
    for earlier in (PASSWORD, GOOD, second):
        with pytest.raises(PolicyViolation) as refused:
            credentials.change_password(account, earlier)
        assert "You have used this password for CPOMS before: choose a password you have not used" in (
            refused.value.problems)
    assert len(account.password_hash) > 0


def test_change_password_lists_every_problem(app, world):
    with pytest.raises(PolicyViolation) as refused:
        credentials.change_password(world.beech_identity, "short", confirmation="other")
    assert len(refused.value.problems) >= 5


def test_passwords_never_expire(app):
    # No rule mentions age or expiry; a password set long ago stays valid.
    assert not any("expire" in text.lower() for _, text in passwords.rule_descriptions())
    assert not hasattr(passwords, "password_expired")


def test_rules_met_matches_the_live_hint(app):
    assert passwords.rules_met("Abcdefg1!", email="x@example.org", confirmation="Abcdefg1!") == {
        "length", "capital", "number", "special", "email", "match"}
    assert passwords.rules_met("", email="x@example.org") == set()


def test_default_argon2_settings_are_argon2id_with_owasp_cost():
    settings = Settings()
    assert settings.argon2_memory_kib >= 19456 and settings.argon2_time_cost >= 2
    hasher = passwords._hasher_for(settings.argon2_time_cost, settings.argon2_memory_kib,
                                   settings.argon2_parallelism)
    encoded = hasher.hash("Lantern-Otter-Quarry-19!")
    assert encoded.startswith("$argon2id$")
    params = dict(p.split("=") for p in encoded.split("$")[3].split(","))
    assert int(params["m"]) >= 19456 and int(params["t"]) >= 2
