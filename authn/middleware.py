"""End sessions that sat idle too long or outlived their absolute limit."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext as _

from audit.models import AuditAction
from authn import sessions

# Refreshing the idle clock on every request would write the session every
# time; a few seconds of slack saves those writes and is far below the limit.
SEEN_AT_SLACK_SECONDS = 10

LOGIN_PREFIXES = ("/login/", "/staff/login/")


class SessionTimeoutMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        session = request.session
        auth_at = session.get(sessions.AUTH_AT_KEY)
        if auth_at is not None and request.user.is_authenticated:
            now = int(time.time())
            seen_at = int(session.get(sessions.SEEN_AT_KEY, auth_at))
            idle = now - seen_at > settings.SESSION_IDLE_TIMEOUT
            too_old = now - int(auth_at) > settings.SESSION_ABSOLUTE_TIMEOUT
            if idle or too_old:
                return self._expire(request)
            if now - seen_at >= SEEN_AT_SLACK_SECONDS:
                session[sessions.SEEN_AT_KEY] = now
        return self.get_response(request)

    def _expire(self, request: HttpRequest) -> HttpResponse:
        """End the session and send the browser to log in again, then back to this page."""
        from authn.entries import session_login_url
        from authn.login import logout_complete

        target = session_login_url(
            scopes=sessions.session_scopes(request),
            method=sessions.session_method(request),
            terminal_code=sessions.session_terminal(request),
            path=request.path_info,
        )
        logout_complete(request, action=AuditAction.SESSION_EXPIRED)
        messages.info(request, _("Your session has ended. Please log in again."))
        if request.path_info.startswith(LOGIN_PREFIXES):
            # Already on a login page: show it, rather than a login page for a login page.
            return self.get_response(request)
        # Only a page the browser navigated to is worth coming back to: not a form's POST,
        # nor a script's background request.
        if request.method == "GET" and request.headers.get("Sec-Fetch-Mode", "navigate") in (
            "navigate",
            "nested-navigate",
        ):
            target += "?" + urlencode({"next": request.get_full_path()})
        return HttpResponseRedirect(target)


class NoStoreMiddleware:
    """Tell browsers and proxies not to keep a copy of private or secret-bearing responses.

    A logged-in session's pages, the login, activation and setup pages (a one-time link, a
    QR code's key, backup codes) and every download (reports, CSV exports) must not be left
    in a shared cache or in the browser's history cache after logout. The public landing
    pages and static files stay cacheable. A view that set its own Cache-Control (Django's
    never_cache already includes no-store) keeps it.
    """

    PRIVATE_PREFIXES = ("/login/", "/staff/login/", "/activate/", "/setup/")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.has_header("Cache-Control"):
            return response
        user = getattr(request, "user", None)
        if (
            request.path_info.startswith(self.PRIVATE_PREFIXES)
            or response.get("Content-Disposition", "").startswith("attachment")
            or (user is not None and user.is_authenticated)
        ):
            response["Cache-Control"] = "no-store"
        return response


class ConnectivityTestMiddleware:
    """Keep a login made in a connectivity-test session to "Function not available".

    Until the session ends, such a login reaches only the page that says so, logging out,
    and the account pages (a password or OTP change is part of what the test rehearses);
    when the session ends, the login ends with it.
    """

    ALLOWED_PREFIXES = (
        "/connectivity-test/",
        "/logout/",
        "/account/",
        "/setup/",
        "/session/",
        "/i18n/",
        "/jsi18n/",
        "/static/",
    )

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        marker = request.session.get(sessions.TEST_KEY)
        if marker is None or not request.user.is_authenticated:
            return self.get_response(request)
        from authn.entries import landing_url
        from authn.login import logout_complete

        if time.time() >= float(marker.get("ends", 0)):
            scopes = sessions.session_scopes(request)
            logout_complete(request, action=AuditAction.SESSION_EXPIRED)
            messages.info(
                request, _("The connectivity-test session has ended. You have been logged out.")
            )
            return HttpResponseRedirect(landing_url(scopes[0] if scopes else ""))
        if request.path_info.startswith(self.ALLOWED_PREFIXES):
            return self.get_response(request)
        return HttpResponseRedirect(reverse("authn:connectivity-test"))
