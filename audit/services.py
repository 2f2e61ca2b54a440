"""Write the audit trail."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
from typing import Any

from django.db import transaction
from django.db.models import (
    CharField,
    DateTimeField,
    F,
    GenericIPAddressField,
    IntegerField,
    JSONField,
    QuerySet,
    Value,
)
from django.http import HttpRequest
from django.utils import timezone

from audit.models import AuditEvent
from common.proxy import from_front_proxy
from common.sql import insert_from_select, insert_instance
from participants.models import Participant, User

logger = logging.getLogger("portal.audit")


def client_ip(request: HttpRequest | None) -> str | None:
    """Return the client's address: X-Real-IP when the front proxy set it, else the peer's.

    A header from anybody else is ignored: a client could put any address in it. The proxy
    proves itself with the secret it shares with the portal (common.proxy).
    """
    if request is None:
        return None
    peer = request.META.get("REMOTE_ADDR") or None
    forwarded = request.META.get("HTTP_X_REAL_IP", "").strip()
    if forwarded and from_front_proxy(request):
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
    """Append one row to the audit trail, and log it once it is committed."""
    if participant is None and user is not None:
        participant = user.participant
    event = AuditEvent(
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
    # Every login writes one: a plain INSERT, not the ORM's (an append-only row has no
    # save() logic to run and no signal receivers).
    insert_instance(event)
    # The row's columns but not `detail`, which may hold what a log reader should not see
    # (an email address, a report's title); a rolled-back row is not logged.
    fields = {
        "audit_id": event.pk,
        "action": event.action,
        "outcome": event.outcome,
        "login_id": event.login_id,
        "user_id": event.user_id,
        "actor_id": event.actor_id,
        "participant": participant.participant_id if participant else None,
        "scope": event.scope,
        "method": event.method,
        "ip": event.ip,
        "reason": event.reason,
    }
    transaction.on_commit(
        lambda: logger.info("audit %s %s", action, outcome, extra={"event": fields})
    )
    return event


def audit_record_many(
    *,
    rows: QuerySet[Any],
    user_field: str,
    login_id_field: str,
    action: str,
    outcome: str,
    request: HttpRequest | None = None,
    actor: User | None = None,
    participant: Participant | None = None,
    participant_field: str | None = None,
    detail: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> int:
    """Append one audit row for each of `rows`, about the user its `user_field` names.

    One INSERT ... SELECT whatever the number of rows: the rows are selected by the
    caller's queryset, the rest is the same for every row, but for the firm, which
    `participant_field` may name per row (rows of many firms). Return the number written.
    """
    return insert_from_select(
        AuditEvent,
        source=rows,
        columns={
            "at": Value(at or timezone.now(), output_field=DateTimeField()),
            "action": Value(action, output_field=CharField()),
            "outcome": Value(outcome, output_field=CharField()),
            "login_id": F(login_id_field),
            "user_id": F(user_field),
            "actor_id": Value(actor.pk if actor else None, output_field=IntegerField()),
            "participant_id": (
                F(participant_field)
                if participant_field
                else Value(participant.pk if participant else None, output_field=IntegerField())
            ),
            "scope": Value("", output_field=CharField()),
            "method": Value("", output_field=CharField()),
            "ip": Value(client_ip(request), output_field=GenericIPAddressField()),
            "reason": Value("", output_field=CharField()),
            "detail": Value(detail or {}, output_field=JSONField()),
        },
    )
