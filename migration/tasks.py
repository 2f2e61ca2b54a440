"""The programme's schedule as a task: beat runs it every minute."""

from __future__ import annotations

from celery import shared_task

from migration.services import milestones_carry_out


# No retry: the next minute's run carries out whatever this one did not, and a milestone
# is claimed in the database, so a run that overlaps another does nothing twice.
@shared_task(ignore_result=True)
def milestones_carry_out_task() -> list[str]:
    """Carry out every due milestone; return what was carried out ("CCASS launch", ...)."""
    return [
        f"{milestone.programme.terminal.code} {milestone.kind}"
        for milestone in milestones_carry_out()
    ]
