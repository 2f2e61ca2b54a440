"""{% session_functions "online" %}: links to the functions this session may use.

A smartcard login for Online Functions also opens Overnight Report Download; an OTP login is
bound to the one scope it logged in for. Each home page links to the others its session holds.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.urls import reverse

from authn import sessions
from authn.decorators import session_allows
from participants.models import Scope

register = template.Library()

# Each function's home page, in the order the landing page lists the entries.
HOME_PAGES = {
    Scope.ONLINE: "authn:online-home",
    Scope.REPORTS: "authn:report-list",
    Scope.DMS: "dms:home",
}


@register.inclusion_tag("authn/_session_functions.html", takes_context=True)
def session_functions(context: template.Context, current: str) -> dict[str, Any]:
    request = context.get("request")
    if request is None:
        return {"links": []}
    held = sessions.session_scopes(request)
    links = [
        {"label": scope.label, "url": reverse(url_name), "current": scope == current}
        for scope, url_name in HOME_PAGES.items()
        # The page being shown has passed its own check; only the others are asked.
        if scope in held and (scope == current or session_allows(request, scope))
    ]
    # A session bound to one function has nowhere else to go.
    return {"links": links if len(links) > 1 else []}
