"""Write the audit trail."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Any

from django.conf import settings
from django.db import connection
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


# The columns audit_record_many fills, in the order of its INSERT.
_MANY_COLUMNS = [
    "at",
    "action",
    "outcome",
    "login_id",
    "user_id",
    "actor_id",
    "participant_id",
    "scope",
    "method",
    "ip",
    "reason",
    "detail",
]


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
    detail: dict[str, Any] | None = None,
    at: dt.datetime | None = None,
) -> int:
    """Append one audit row for each of `rows`, about the user its `user_field` names.

    One INSERT ... SELECT whatever the number of rows: the rows are selected by the
    caller's queryset (compiled by the ORM), the rest is the same for every row.
    Return the number of rows written.
    """
    constants: dict[str, Any] = {
        "at": Value(at or timezone.now(), output_field=DateTimeField()),
        "action": Value(action, output_field=CharField()),
        "outcome": Value(outcome, output_field=CharField()),
        "login_id": F(login_id_field),
        "user_id": F(user_field),
        "actor_id": Value(actor.pk if actor else None, output_field=IntegerField()),
        "participant_id": Value(
            participant.pk if participant else None, output_field=IntegerField()
        ),
        "scope": Value("", output_field=CharField()),
        "method": Value("", output_field=CharField()),
        "ip": Value(client_ip(request), output_field=GenericIPAddressField()),
        "reason": Value("", output_field=CharField()),
        "detail": Value(detail or {}, output_field=JSONField()),
    }
    # Aliases that cannot clash with the source model's own field names.
    aliases = {f"audit_{column}": expression for column, expression in constants.items()}
    select = rows.order_by().annotate(**aliases).values_list(*aliases)
    sql, params = select.query.sql_with_params()
    table = AuditEvent._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(_MANY_COLUMNS)}) {sql}",  # noqa: S608 - names are ours
            params,
        )
        return cursor.rowcount
