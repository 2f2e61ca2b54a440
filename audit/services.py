"""Write the audit trail."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from audit.models import AuditEvent
from participants.models import Participant, User


def client_ip(request: HttpRequest | None) -> str | None:
    """Return the address the request came from (the proxy's own, never a forwarded header)."""
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def audit_record(
    *,
    action: str,
    outcome: str,
    request: HttpRequest | None = None,
    user: User | None = None,
    actor: User | None = None,
    login_id: str = "",
    participant: Participant | None = None,
    scope: str = "",
    method: str = "",
    reason: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one row to the audit trail."""
    if participant is None and user is not None:
        participant = user.participant
    return AuditEvent.objects.create(
        action=action,
        outcome=outcome,
        user=user,
        actor=actor,
        login_id=(login_id or (user.login_id if user else ""))[:64],
        participant=participant,
        scope=scope,
        method=method,
        ip=client_ip(request),
        reason=reason,
        detail=detail or {},
    )
