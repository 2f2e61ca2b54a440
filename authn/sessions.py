"""What a logged-in session carries: the scopes it is bound to, how and when it logged in."""

from __future__ import annotations

import time
from collections.abc import Iterable

from django.http import HttpRequest

from participants.models import LoginMethod

SCOPES_KEY = "authn_scopes"
METHOD_KEY = "authn_method"
TERMINAL_KEY = "authn_terminal"
AUTH_AT_KEY = "authn_at"
SEEN_AT_KEY = "authn_seen_at"
PENDING_KEY = "authn_pending"
SETUP_KEY = "authn_setup"
BACKUP_CODES_KEY = "authn_backup_codes"
# A login made in a connectivity-test session: the session, until it ends.
TEST_KEY = "authn_connectivity_test"


# How a session logged in. The choices live with the user, whose last login records one,
# so that the audit trail and the admin below this app can show their labels too.
Method = LoginMethod


def bind_session(
    request: HttpRequest, *, scopes: Iterable[str], method: str, terminal: str | None
) -> None:
    now = int(time.time())
    request.session[SCOPES_KEY] = sorted(set(scopes))
    request.session[METHOD_KEY] = method
    request.session[TERMINAL_KEY] = terminal
    request.session[AUTH_AT_KEY] = now
    request.session[SEEN_AT_KEY] = now


def session_touch(request: HttpRequest) -> None:
    """Restart the session's idle clock, as activity does."""
    request.session[SEEN_AT_KEY] = int(time.time())


def session_scopes(request: HttpRequest) -> list[str]:
    if not request.user.is_authenticated:
        return []
    return list(request.session.get(SCOPES_KEY, []))


def session_method(request: HttpRequest) -> str:
    return str(request.session.get(METHOD_KEY, ""))


def session_terminal(request: HttpRequest) -> str | None:
    value = request.session.get(TERMINAL_KEY)
    return str(value) if value else None
