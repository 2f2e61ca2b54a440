"""Write the audit trail."""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from audit.models import AuditEvent
from participants.models import Participant, User


def client_ip(request: HttpRequest | None) -> str | None:
    """Return the client's address: X-Real-IP when a trusted front proxy set it, else the peer's.

    A header from anybody else is ignored: a client could put any address in it.
    """
    if request is None:
        return None
    peer = request.META.get("REMOTE_ADDR") or None
    forwarded = request.META.get("HTTP_X_REAL_IP", "").strip()
    if peer in settings.TRUSTED_PROXIES and forwarded:
        try:
            return str(ipaddress.ip_address(forwarded))
        except ValueError:
            return peer
    return peer


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
