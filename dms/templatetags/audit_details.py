"""{{ event|audit_details }}: what an audit row of the DMS is about, as a DA reads it."""

from __future__ import annotations

from django import template
from django.utils.translation import gettext as _

from audit.models import AuditEvent
from dms.models import RequestKind

register = template.Library()


@register.filter
def audit_details(event: AuditEvent) -> str:
    detail = event.detail or {}
    parts: list[str] = []
    if "request" in detail:
        kind = detail.get("kind", "")
        label = str(RequestKind(kind).label) if kind in RequestKind.values else ""
        parts.append(
            _("Request %(number)s: %(kind)s") % {"number": detail["request"], "kind": label}
            if label
            else _("Request %(number)s") % {"number": detail["request"]}
        )
    if detail.get("email"):
        previous = detail.get("previous_email")
        parts.append(f"{previous} → {detail['email']}" if previous else str(detail["email"]))
    if detail.get("login_id"):
        parts.append(str(detail["login_id"]))
    if "filename" in detail:
        parts.append(
            _("%(file)s: %(register)s to register, %(change)s to change")
            % {
                "file": detail["filename"],
                "register": detail.get("register", 0),
                "change": detail.get("change", 0),
            }
        )
    return " · ".join(parts)
