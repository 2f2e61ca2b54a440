"""Password rules beyond Django's own: breached passwords and the user's own identity."""

from __future__ import annotations

import hashlib
import os
import re
from bisect import bisect_left
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _


@lru_cache(maxsize=4)
def _breached_hashes(path: str, mtime: float) -> list[str]:
    with open(path, encoding="ascii") as handle:
        return sorted(line.split(":", 1)[0].strip().upper() for line in handle if line.strip())


class BreachedPasswordValidator:
    """Reject a password whose SHA-1 appears in the configured breached-password list.

    The list is a local file (no network at run time); production points
    BREACHED_PASSWORDS_FILE at the full "ordered by hash" download.
    """

    def validate(self, password: str, user: Any = None) -> None:
        path = settings.BREACHED_PASSWORDS_FILE
        if not path or not os.path.exists(path):
            return
        digest = hashlib.sha1(password.encode(), usedforsecurity=False).hexdigest().upper()
        hashes = _breached_hashes(path, os.path.getmtime(path))
        index = bisect_left(hashes, digest)
        if index < len(hashes) and hashes[index] == digest:
            raise ValidationError(
                _("This password has appeared in a data breach. Choose another."),
                code="password_breached",
            )

    def get_help_text(self) -> str:
        return _("It must not be a password known from data breaches.")


def _folded(value: str) -> str:
    return re.sub(r"[^0-9a-z]", "", value.casefold())


class IdentityPasswordValidator:
    """Reject a password that contains the user's login ID or the firm's name."""

    def validate(self, password: str, user: Any = None) -> None:
        if user is None:
            return
        folded = _folded(password)
        login_id = _folded(getattr(user, "login_id", "") or "")
        if login_id and login_id in folded:
            raise ValidationError(
                _("The password must not contain your login ID."), code="password_has_login_id"
            )
        participant = getattr(user, "participant", None)
        firm = _folded(participant.name) if participant is not None else ""
        if firm and firm in folded:
            raise ValidationError(
                _("The password must not contain your firm's name."), code="password_has_firm_name"
            )

    def get_help_text(self) -> str:
        return _("It must not contain your login ID or your firm's name.")
