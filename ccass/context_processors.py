from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def portal(request: HttpRequest) -> dict[str, Any]:
    # The demo card reader exists only with both on (authn.views.smartcard_demo_login).
    return {"DEBUG": settings.DEBUG, "SMARTCARD_DEMO": settings.DEBUG and settings.SMARTCARD_DEMO}
