"""The programme's emails to DAs, through the outbox: the kick-off, a moved date, a reminder,
and a connectivity-test event published or moved."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Any

from django.conf import settings

from outbox.composers import Composer, register, row_subject
from outbox.models import OutboxEmail

MILESTONE_KICKOFF = "milestone-kickoff"
MILESTONE_RESCHEDULED = "milestone-rescheduled"
READINESS_REMINDER = "readiness-reminder"
CONNECTIVITY_PUBLISHED = "connectivity-published"
CONNECTIVITY_RESCHEDULED = "connectivity-rescheduled"


def _milestone(row: OutboxEmail) -> Any:
    from migration.models import Milestone

    return row_subject(
        row,
        Milestone.objects.select_related("programme__terminal"),
        param="milestone_id",
        gone="The milestone no longer exists",
    )


def _kickoff_context(row: OutboxEmail) -> dict[str, Any]:
    from migration.models import MilestoneKind

    milestone = _milestone(row)
    deadline = milestone.programme.milestones.filter(
        kind=MilestoneKind.EMAIL_REGISTRATION_DEADLINE
    ).first()
    return {
        "terminal": milestone.programme.terminal,
        "deadline": deadline.planned_at if deadline is not None else None,
        "link": settings.SITE_URL + "/dms/",
    }


def _when(value: str) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _rescheduled_context(row: OutboxEmail) -> dict[str, Any]:
    milestone = _milestone(row)
    return {
        "terminal": milestone.programme.terminal,
        "milestone": milestone,
        "old": _when(row.params.get("old", "")),
        "new": _when(row.params.get("new", "")),
    }


def _reminder_context(row: OutboxEmail) -> dict[str, Any]:
    from migration import readiness
    from participants.models import Participant

    participant = row_subject(
        row,
        Participant.objects.select_related("terminal"),
        param="participant_id",
        gone="The firm no longer exists",
    )
    # What is missing now, when the email goes out, and the deadline it is for.
    firm = readiness.firm_readiness(participant=participant)
    figures = firm.figures
    return {
        "participant": participant,
        "deadline": firm.forecast.deadline,
        "missing_email": figures.users - figures.with_email,
        "missing_da_email": figures.das - figures.das_with_email,
        "not_set_up": figures.users - figures.set_up,
        "link": settings.SITE_URL + "/dms/",
    }


# Connectivity-test events ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _ScheduledSession:
    session: Any
    # The entries' labels, lazy: each language block of the template shows its own.
    entries: list[Any]
    # Its end as a time alone when it ends on the day it starts, else with its date.
    ends_format: str


def _event(row: OutboxEmail) -> Any:
    from migration.models import ConnectivityEvent

    return row_subject(
        row,
        ConnectivityEvent.objects.select_related("terminal")
        .prefetch_related("sessions")
        .filter(published_at__isnull=False),
        param="event_id",
        gone="The connectivity-test event no longer exists",
    )


def _schedule_context(event: Any) -> dict[str, Any]:
    """The event's schedule as it is when the email goes out, whatever it was when queued."""
    from django.utils import timezone

    from migration.models import TestEntry

    labels = dict(TestEntry.choices)
    sessions = [
        _ScheduledSession(
            session=session,
            entries=[labels[entry] for entry in session.entries if entry in labels],
            ends_format=(
                "H:i"
                if timezone.localdate(session.starts_at) == timezone.localdate(session.ends_at)
                else "j F Y H:i"
            ),
        )
        for session in sorted(event.sessions.all(), key=lambda s: (s.position, s.starts_at))
    ]
    return {
        "terminal": event.terminal,
        "event": event,
        "day": event.day,
        "deadline": event.registration_deadline,
        "sessions": sessions,
        "link": f"{settings.SITE_URL}/dms/events/{event.pk}/",
    }


def _connectivity_published_context(row: OutboxEmail) -> dict[str, Any]:
    return _schedule_context(_event(row))


def _connectivity_rescheduled_context(row: OutboxEmail) -> dict[str, Any]:
    event = _event(row)
    changes = []
    for change in json.loads(row.params.get("changes") or "[]"):
        parse = dt.date.fromisoformat if change["what"] == "day" else dt.datetime.fromisoformat
        changes.append({**change, "old": parse(change["old"]), "new": parse(change["new"])})
    return {**_schedule_context(event), "changes": changes}


def register_emails() -> None:
    register(MILESTONE_KICKOFF, Composer(template="milestone-kickoff", context=_kickoff_context))
    register(
        MILESTONE_RESCHEDULED,
        Composer(template="milestone-rescheduled", context=_rescheduled_context),
    )
    register(READINESS_REMINDER, Composer(template="readiness-reminder", context=_reminder_context))
    register(
        CONNECTIVITY_PUBLISHED,
        Composer(template="connectivity-published", context=_connectivity_published_context),
    )
    register(
        CONNECTIVITY_RESCHEDULED,
        Composer(template="connectivity-rescheduled", context=_connectivity_rescheduled_context),
    )
