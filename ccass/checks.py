"""Deployment checks of the portal's own settings (`manage.py check --deploy`)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register


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
