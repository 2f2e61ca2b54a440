"""Settings read from the environment fail loudly on a bad value."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import Argon2PasswordHasher, get_hasher
from django.core.exceptions import ImproperlyConfigured

from ccass import settings as portal_settings
from common import env


def test_env_bool_rejects_nonsense(monkeypatch):
    monkeypatch.setenv("SOME_FLAG", "perhaps")
    with pytest.raises(ImproperlyConfigured, match="SOME_FLAG"):
        env.env_bool("SOME_FLAG")


def test_env_int_rejects_nonsense(monkeypatch):
    monkeypatch.setenv("SOME_NUMBER", "ten")
    with pytest.raises(ImproperlyConfigured, match="SOME_NUMBER"):
        env.env_int("SOME_NUMBER", 3)


def test_database_url_parsing():
    db = env.database_from_url("postgres://ops:s%40cret@db.internal:5433/portal")
    assert db["ENGINE"] == "common.postgresql"
    assert (db["USER"], db["PASSWORD"], db["HOST"], db["PORT"], db["NAME"]) == (
        "ops",
        "s@cret",
        "db.internal",
        "5433",
        "portal",
    )
    with pytest.raises(ImproperlyConfigured):
        env.database_from_url("mysql://x/y")


def test_production_hasher_is_argon2id_with_at_least_owasp_parameters():
    # Tests prepend a fast hasher; production uses the first of the rest.
    production = [h for h in portal_settings.PASSWORD_HASHERS if "MD5" not in h][0]
    hasher = get_hasher("argon2")
    assert production.endswith("Argon2PasswordHasher")
    assert isinstance(hasher, Argon2PasswordHasher)
    assert hasher.memory_cost >= 19 * 1024
    assert hasher.time_cost >= 2
    assert hasher.parallelism >= 1
    assert "$argon2id$" in hasher.encode("x" * 12, hasher.salt())


def test_the_default_hash_is_stronger_than_owasps_minimum_and_passes_the_check():
    from ccass.checks import argon2_parameters_check

    assert (portal_settings.ARGON2_MEMORY_KIB, portal_settings.ARGON2_TIME_COST) == (19456, 6)
    assert portal_settings.ARGON2_PARALLELISM == 1
    assert argon2_parameters_check() == []


@pytest.mark.parametrize(
    ("name", "value"),
    [("ARGON2_TIME_COST", 1), ("ARGON2_MEMORY_KIB", 16 * 1024), ("ARGON2_PARALLELISM", 0)],
)
def test_a_hash_weaker_than_owasps_minimum_is_refused_at_start(settings, name, value):
    from ccass.checks import argon2_parameters_check

    setattr(settings, name, value)
    errors = argon2_parameters_check()
    assert [error.id for error in errors] == ["ccass.E002"]
    assert name in errors[0].msg
