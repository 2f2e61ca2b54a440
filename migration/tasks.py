"""The programme's schedule as a task: beat runs it every minute."""

from __future__ import annotations

from celery import shared_task

from migration.readiness import readiness_snapshot_take
from migration.services import milestones_carry_out, reminders_before_deadlines


# No retry: the next minute's run carries out whatever this one did not, and a milestone
# is claimed in the database, so a run that overlaps another does nothing twice.
@shared_task(ignore_result=True)
def milestones_carry_out_task() -> list[str]:
    """Carry out every due milestone; return what was carried out ("CCASS launch", ...)."""
    return [
        f"{milestone.programme.terminal.code} {milestone.kind}"
        for milestone in milestones_carry_out()
    ]


@shared_task(ignore_result=True)
def readiness_snapshot_task() -> int:
    """Write today's readiness figures of every firm (once a day; a second run writes none)."""
    return readiness_snapshot_take()


@shared_task(ignore_result=True)
def reminders_before_deadlines_task() -> int:
    """Remind the firms not ready for a deadline that is near, each once per deadline."""
    return reminders_before_deadlines()
