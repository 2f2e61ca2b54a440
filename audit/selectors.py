"""Reads of the audit trail: a firm's rows, filtered as its DAs filter them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Q, QuerySet
from django.db.models.functions import Lower

from audit.models import AuditEvent
from common.keyset import Order
from participants.models import Participant, User

# Newest first; the id sorts the rows that share a time. Every index of the trail ends so.
NEWEST_FIRST = Order(keys=("at", "id"), descending=True)


@dataclass(frozen=True)
class TrailFilters:
    """What a DA filters the trail by; the dates are days in the portal's time zone."""

    login_id: str = ""
    action: str = ""
    date_from: dt.date | None = None
    date_to: dt.date | None = None

    def as_json(self) -> dict[str, str]:
        return {
            "login_id": self.login_id,
            "action": self.action,
            "date_from": self.date_from.isoformat() if self.date_from else "",
            "date_to": self.date_to.isoformat() if self.date_to else "",
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrailFilters:
        def day(value: object) -> dt.date | None:
            return dt.date.fromisoformat(value) if isinstance(value, str) and value else None

        return cls(
            login_id=str(data.get("login_id", "")),
            action=str(data.get("action", "")),
            date_from=day(data.get("date_from")),
            date_to=day(data.get("date_to")),
        )


@dataclass(frozen=True)
class Trail:
    """A firm's filtered audit rows: `events`, narrowed to those matching any of `branches`."""

    events: QuerySet[AuditEvent]
    # A login ID that names a user of the firm: the rows about them, and the rows by them.
    # Kept apart so that a page reads each through its own index (common.keyset).
    branches: tuple[Q, ...] = ()

    def rows(self) -> QuerySet[AuditEvent]:
        """Every row of the trail in one queryset (for an export: read whole, in any order)."""
        if not self.branches:
            return self.events
        either = Q()
        for branch in self.branches:
            either |= branch
        return self.events.filter(either)


def _day_start(day: dt.date) -> dt.datetime:
    # A range on `at` from the day's first instant in Hong Kong: `at__date` would wrap the
    # column in a function and read no index.
    return dt.datetime.combine(day, dt.time.min, tzinfo=ZoneInfo(settings.TIME_ZONE))


def audit_trail(*, participant: Participant, filters: TrailFilters) -> Trail:
    """Return the firm's audit rows that the filters select, in no particular order yet."""
    events = AuditEvent.objects.for_participant(participant)
    if filters.action:
        events = events.filter(action=filters.action)
    if filters.date_from:
        events = events.filter(at__gte=_day_start(filters.date_from))
    if filters.date_to:
        events = events.filter(at__lt=_day_start(filters.date_to + dt.timedelta(days=1)))
    if not filters.login_id:
        return Trail(events)
    # Only the firm's own users are looked up: another firm's ID reads as one that names
    # nobody, so that the filter cannot probe which IDs exist elsewhere.
    person = (
        User.objects.for_participant(participant)
        .by_login_id(filters.login_id)
        .values_list("pk", flat=True)
        .first()
    )
    if person is not None:
        return Trail(events, (Q(user_id=person), Q(actor_id=person)))
    # Nobody of the firm has that ID: the rows that recorded it as typed (failed logins).
    typed = filters.login_id.strip().lower()
    return Trail(events.alias(login_id_lower=Lower("login_id")).filter(login_id_lower=typed))
