"""Guard pages by the scope their session logged in for."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponseRedirect
from django.http.response import HttpResponseBase

from authn import sessions
from authn.entries import login_url
from migration.phases import smartcard_login_open_for_code
from participants.models import Scope, User

View = TypeVar("View", bound=Callable[..., HttpResponseBase])

SMARTCARD_METHODS = {sessions.Method.SMARTCARD, sessions.Method.SMARTCARD_DEMO}


def session_allows(request: HttpRequest, scope: str) -> bool:
    """Return whether this session logged in for `scope` and is still fully authenticated."""
    user = request.user
    if not user.is_authenticated or scope not in sessions.session_scopes(request):
        return False
    method = sessions.session_method(request)
    if method in SMARTCARD_METHODS:
        # A card session ends as soon as its terminal stops accepting smartcards ("2FA only").
        return scope != Scope.STAFF and smartcard_login_open_for_code(
            sessions.session_terminal(request)
        )
    # An OTP login must still hold its verified device (django-otp clears it if deleted).
    return bool(user.is_verified())  # type: ignore[union-attr,attr-defined]


def scope_required(scope: Scope) -> Callable[[View], View]:
    """Send a request whose session is not bound to `scope` to that scope's login."""

    def decorator(view: View) -> View:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not session_allows(request, scope):
                user = request.user
                terminal = (
                    user.participant.terminal
                    if isinstance(user, User) and user.participant is not None
                    else None
                )
                query = urlencode({"next": request.get_full_path()})
                return HttpResponseRedirect(f"{login_url(scope, terminal)}?{query}")
            return view(request, *args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator
