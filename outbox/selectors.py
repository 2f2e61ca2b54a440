"""Reads of the outbox for staff and for the readiness probe."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, Min
from django.utils import timezone

from outbox.models import EmailStatus, OutboxEmail


def oldest_pending_age(*, now: dt.datetime | None = None) -> dt.timedelta | None:
    """Return how long the oldest email due for sending has waited, or None if none waits."""
    now = now or timezone.now()
    oldest = OutboxEmail.objects.due(now).aggregate(oldest=Min("created_at"))["oldest"]
    return None if oldest is None else now - oldest


def outbox_counts() -> dict[str, int]:
    """Return how many emails are in each status."""
    counts = dict.fromkeys(EmailStatus.values, 0)
    for row in OutboxEmail.objects.order_by().values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    return counts
