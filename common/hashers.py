"""The password hasher, with its cost set by the environment."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher


class ConfiguredArgon2PasswordHasher(Argon2PasswordHasher):
    """Argon2id with settings.ARGON2_* (memory in KiB, passes, lanes) instead of Django's.

    The algorithm's name stays "argon2", so every stored Argon2 hash is this hasher's: one
    made with other parameters is verified with its own and, because must_update() compares
    them with these, hashed again with these at the user's next successful login.
    """

    @property
    def time_cost(self) -> int:  # type: ignore[override]
        return int(settings.ARGON2_TIME_COST)

    @property
    def memory_cost(self) -> int:  # type: ignore[override]
        return int(settings.ARGON2_MEMORY_KIB)

    @property
    def parallelism(self) -> int:  # type: ignore[override]
        return int(settings.ARGON2_PARALLELISM)
