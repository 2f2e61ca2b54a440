"""Pages every visitor who is not logged in sees alike, but for the CSRF token: rendered once.

On launch morning every user of every firm opens the login form, then the code form, within
the hour. Rendering either costs about a millisecond of CPU, as much as the database work
of the step that follows, and the page is the same for all of them: the entry's terminal
and scope, the language, an empty form. What differs is the CSRF token (masked afresh for
each visitor) in the page's forms. So such a page is rendered once per process, path and
language with a mark where the token goes, and each visitor gets a copy with their own
token in its place.

A page is shared only when nothing else about the visitor can be in it: a GET with no query
string (no `next`), nobody logged in (the top bar names the user), and no message waiting
(messages are shown once, to one visitor). Anything else renders as usual. The page is kept
while `depends_on` is the same object: the login form passes the entry's terminal, which
`migration.phases.entry_terminal` reads afresh every PHASE_CACHE_SECONDS or at once after a
change, so the form follows a change of the terminal's hotline or phase as fast as the login
does. Templates and translations change only with a new release, that is a new process.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.translation import get_language

# Where the token goes in a kept page. New in each process: no visitor can know it to put
# it in anything the page shows (and a shared page shows nothing of a visitor's anyway).
_TOKEN_MARK = f"csrf-token-{secrets.token_hex(16)}"
# (template, path, language) -> (depends_on, page). A path names an entry (its terminal
# and scope), so there are at most a few dozen.
_pages: dict[tuple[str, str, str], tuple[object, str]] = {}
_lock = threading.Lock()


def _shareable(request: HttpRequest) -> bool:
    return (
        request.method in ("GET", "HEAD")
        and not request.META.get("QUERY_STRING")
        and not request.user.is_authenticated
        and len(messages.get_messages(request)) == 0  # counted, not shown: they stay
    )


def shared_render(
    request: HttpRequest,
    template_name: str,
    context: dict[str, Any],
    *,
    depends_on: object = None,
) -> HttpResponse:
    """Answer as `render()` would; a page that is the same for every visitor not logged in
    is rendered once (while `depends_on` stays the same object) and given this visitor's
    CSRF token."""
    if not _shareable(request):
        return render(request, template_name, context)
    key = (template_name, request.path, get_language())
    kept = _pages.get(key)
    if kept is not None and kept[0] is depends_on:
        page = kept[1]
    else:
        page = render_to_string(template_name, {**context, "csrf_token": _TOKEN_MARK}, request)
        with _lock:
            _pages[key] = (depends_on, page)
    # get_token() also has CsrfViewMiddleware set the cookie, as {% csrf_token %} would.
    return HttpResponse(page.replace(_TOKEN_MARK, get_token(request)))


def shared_pages_forget() -> None:
    """Forget every kept page (for tests that change templates or translations)."""
    with _lock:
        _pages.clear()
