"""The portal's error pages: 400, 403 (a refused CSRF check too), 404 and 500.

Each is rendered in the portal's layout and the language LocaleMiddleware chose, with a way
back: the landing page, and the DMS landing page from a DMS address. They are rendered from
an explicit context, never through the context processors: the 500 page must appear when
the database is down, and none of them touches the session, the user or the database.
"""

from __future__ import annotations

from typing import Any

from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseForbidden,
    HttpResponseNotFound,
    HttpResponseServerError,
)
from django.template.loader import render_to_string
from django.urls import reverse


def _context(request: HttpRequest) -> dict[str, Any]:
    # Nothing of the address but whether it is the DMS's: another firm's object and a missing
    # one must give the same page. No CSRF token either, so base.html leaves out the
    # language switch (a form it could not send); the language follows the browser's.
    dms_landing = reverse("authn:dms-landing")
    return {
        "landing_url": reverse("authn:landing"),
        "dms_url": dms_landing if request.path_info.startswith(dms_landing) else None,
    }


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    return HttpResponseBadRequest(render_to_string("400.html", _context(request)))


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    return HttpResponseForbidden(render_to_string("403.html", _context(request)))


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    # The same page whether the address never existed or names another firm's object.
    return HttpResponseNotFound(render_to_string("404.html", _context(request)))


def server_error(request: HttpRequest) -> HttpResponse:
    return HttpResponseServerError(render_to_string("500.html", _context(request)))


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    # The reason is for the log (Django logs it); the page says what a person can do.
    return HttpResponseForbidden(render_to_string("403_csrf.html", _context(request)))
