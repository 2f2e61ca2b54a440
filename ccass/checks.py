"""Deployment checks of the portal's own settings (`manage.py check --deploy`)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register


@register(Tags.security, deploy=True)
def proxy_secret_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if len(settings.PROXY_SECRET) >= 32:
        return []
    return [
        Warning(
            "PROXY_SECRET is unset or shorter than 32 characters: smartcard login and the "
            "client address in the audit trail need the secret nginx sends in X-Proxy-Secret.",
            hint="Set PROXY_SECRET (e.g. `openssl rand -hex 32`) and the same value in nginx.",
            id="ccass.W001",
        )
    ]


# OWASP Password Storage Cheat Sheet, Argon2id: at least 19 MiB, 2 passes, 1 lane.
OWASP_ARGON2 = {"ARGON2_MEMORY_KIB": 19 * 1024, "ARGON2_TIME_COST": 2, "ARGON2_PARALLELISM": 1}


@register(Tags.security)
def argon2_parameters_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Refuse to start with password hashes weaker than OWASP's minimum, or impossible."""
    below = [
        f"{name}={getattr(settings, name)} (at least {floor})"
        for name, floor in OWASP_ARGON2.items()
        if getattr(settings, name) < floor
    ]
    if settings.ARGON2_MEMORY_KIB < 8 * settings.ARGON2_PARALLELISM:
        below.append("ARGON2_MEMORY_KIB below 8 KiB per lane, which Argon2 refuses")
    if not below:
        return []
    return [
        Error(
            "Password hashes would be weaker than OWASP's minimum for Argon2id: "
            + ", ".join(below),
            hint=(
                "Unset ARGON2_* for the portal's (19 MiB, 6 passes, 1 lane), or set at least"
                " OWASP's."
            ),
            id="ccass.E002",
        )
    ]
