"""Guard pages by the scope their session logged in for; write a login step's session in its
transaction."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlencode

from django.contrib.sessions.backends.base import UpdateError
from django.db import transaction
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


def session_in_transaction(view: View) -> View:
    """Run a POST, and write the session it changed, in one transaction.

    A login step changes rows (a lock taken, a code used up, the audit row) and its session
    (the pending user; at login, a new key). Written apart, those are two commits, each
    waiting for the disk, on the path every user takes on launch morning; and a failure
    between them would leave one without the other. Here the session is written just before
    the step commits, and the response's save() finds nothing new to write (the store
    remembers what a committed write stored: authn.session_store). A row gone meanwhile
    (logged out elsewhere) is left to the response's save(), which answers as Django does.
    """

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method != "POST":
            return view(request, *args, **kwargs)
        with transaction.atomic():
            response = view(request, *args, **kwargs)
            session = request.session
            if response.status_code < 500 and session.modified and not session.is_empty():
                with contextlib.suppress(UpdateError):  # the response's save() answers it
                    session.save()
        return response

    return wrapped  # type: ignore[return-value]
