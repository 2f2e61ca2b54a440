"""The programme's emails to DAs, through the outbox: the kick-off, and a moved date."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings

from outbox.composers import Composer, NothingToSend, register
from outbox.models import OutboxEmail

MILESTONE_KICKOFF = "milestone-kickoff"
MILESTONE_RESCHEDULED = "milestone-rescheduled"
READINESS_REMINDER = "readiness-reminder"


def _milestone(row: OutboxEmail) -> Any:
    from migration.models import Milestone

    milestone = (
        Milestone.objects.select_related("programme__terminal")
        .filter(pk=row.params.get("milestone_id"))
        .first()
    )
    if milestone is None:
        raise NothingToSend("The milestone no longer exists")
    return milestone


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

    participant = (
        Participant.objects.select_related("terminal")
        .filter(pk=row.params.get("participant_id"))
        .first()
    )
    if participant is None:
        raise NothingToSend("The firm no longer exists")
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


def register_emails() -> None:
    register(MILESTONE_KICKOFF, Composer(template="milestone-kickoff", context=_kickoff_context))
    register(
        MILESTONE_RESCHEDULED,
        Composer(template="milestone-rescheduled", context=_rescheduled_context),
    )
    register(READINESS_REMINDER, Composer(template="readiness-reminder", context=_reminder_context))
