"""Queue emails in the caller's transaction; wake the relay once it commits."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import BigIntegerField, DateTimeField, Expression, F, QuerySet, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.utils import timezone

from common.sql import insert_from_select
from outbox.composers import composer_for
from outbox.models import EmailStatus, OutboxEmail

logger = logging.getLogger(__name__)


def email_queue(
    *, kind: str, to: str | Iterable[str], params: dict[str, Any] | None = None
) -> list[OutboxEmail]:
    """Queue one email of `kind` to each address (blank ones skipped); sent after commit."""
    composer = composer_for(kind)
    addresses = [to] if isinstance(to, str) else list(to)
    now = timezone.now()
    rows = [
        OutboxEmail(
            kind=kind,
            to=address,
            params=params or {},
            created_at=now,
            next_attempt_at=now,
            deadline=composer.deadline_from(now),
        )
        for address in dict.fromkeys(addresses)
        if address
    ]
    if rows:
        OutboxEmail.objects.bulk_create(rows)
        relay_wake()
    return rows


def email_queue_many(
    *, kind: str, source: QuerySet[Any], to: Expression | F, params: Expression
) -> int:
    """Queue one email of `kind` for each row of `source`, in one INSERT ... SELECT.

    `to` and `params` are expressions over `source` (e.g. F("email") and a JSONObject()).
    Return the number of emails queued.
    """
    now = timezone.now()
    queued = insert_from_select(
        OutboxEmail,
        source=source,
        columns={
            "kind": Value(kind),
            "to": to,
            "params": params,
            "status": Value(EmailStatus.PENDING.value),
            "created_at": Value(now, output_field=DateTimeField()),
            "next_attempt_at": Value(now, output_field=DateTimeField()),
            "deadline": Value(composer_for(kind).deadline_from(now), output_field=DateTimeField()),
            "attempts": Value(0),
            "last_error": Value(""),
        },
    )
    if queued:
        relay_wake()
    return queued


def emails_cancel(*, kind: str, **params: Any) -> int:
    """Cancel the emails of `kind` still waiting whose parameters include `params`."""
    pending = OutboxEmail.objects.filter(status=EmailStatus.PENDING, kind=kind)
    for key, value in params.items():
        pending = pending.filter(**{f"params__{key}": value})
    return pending.update(status=EmailStatus.CANCELLED, last_error="Replaced by a newer email")


def emails_cancel_many(*, kind: str, key: str, values: QuerySet[Any]) -> int:
    """Cancel the emails of `kind` still waiting whose integer parameter `key` is one of
    `values` (a one-column queryset of integers), in one UPDATE."""
    return (
        OutboxEmail.objects.filter(status=EmailStatus.PENDING, kind=kind)
        .annotate(_param=Cast(KeyTextTransform(key, "params"), BigIntegerField()))
        .filter(_param__in=values)
        .update(status=EmailStatus.CANCELLED, last_error="Replaced by a newer email")
    )


def relay_wake() -> None:
    """Have the relay run once the current transaction commits.

    A web request never waits on the broker: if it is down, the failure is logged and the
    beat's sweep (every minute) sends the email instead.
    """
    transaction.on_commit(_wake)


def _wake() -> None:
    from outbox.tasks import outbox_relay

    try:
        outbox_relay.delay()
    except Exception as error:  # the broker is down or unreachable: the sweep takes over
        logger.warning(
            "outbox relay not woken; the sweep will send",
            extra={"event": {"error": f"{type(error).__name__}: {error}"}},
        )


def emails_retry(*, ids: Iterable[int] | None = None) -> int:
    """Put failed emails (all, or those with these ids) back in the queue, due now."""
    failed = OutboxEmail.objects.filter(status=EmailStatus.FAILED)
    if ids is not None:
        failed = failed.filter(pk__in=list(ids))
    now = timezone.now()
    retried = 0
    for row in failed:
        if not composer_for(row.kind).retryable:
            continue
        # A fresh deadline of the kind's own length: a retried OTP email is still short-lived.
        row.status = EmailStatus.PENDING
        row.next_attempt_at = now
        row.deadline = composer_for(row.kind).deadline_from(now)
        row.save(update_fields=["status", "next_attempt_at", "deadline"])
        retried += 1
    if retried:
        relay_wake()
    return retried
