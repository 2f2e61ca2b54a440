"""What every page's template needs to know about the session."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from authn import sessions


def session_timer(request: HttpRequest) -> dict[str, Any]:
    """Give a logged-in page the session's limits, for its idle-time-out warning.

    Read after SessionTimeoutMiddleware, so the idle clock is the one the server keeps.
    """
    user = getattr(request, "user", None)
    session = getattr(request, "session", None)
    if user is None or session is None or not user.is_authenticated:
        return {}
    auth_at = session.get(sessions.AUTH_AT_KEY)
    if auth_at is None:
        return {}
    now = int(time.time())
    seen_at = int(session.get(sessions.SEEN_AT_KEY, auth_at))
    return {
        "session_timer": {
            "idle_limit": settings.SESSION_IDLE_TIMEOUT,
            "idle_left": max(0, settings.SESSION_IDLE_TIMEOUT - (now - seen_at)),
            "absolute_left": max(0, settings.SESSION_ABSOLUTE_TIMEOUT - (now - int(auth_at))),
            "warning": settings.SESSION_IDLE_WARNING_SECONDS,
        }
    }
