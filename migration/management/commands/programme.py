"""`manage.py programme show` and `manage.py programme carry-out`: the schedule by hand."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from migration.models import Milestone, Programme
from migration.readiness import readiness_snapshot_take
from migration.services import milestones_carry_out


def _when(value: Any) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M HKT") if value else "not scheduled"


class Command(BaseCommand):
    help = (
        "Show each terminal's programme and what is due (show), carry out the due milestones"
        " now (carry-out), or take today's readiness snapshot now (snapshot)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["show", "carry-out", "snapshot"])

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "snapshot":
            written = readiness_snapshot_take()
            self.stdout.write(f"readiness snapshot: {written} firms written")
            return
        if options["action"] == "carry-out":
            done = milestones_carry_out()
            for milestone in done:
                terminal = milestone.programme.terminal.code
                self.stdout.write(f"carried out: {terminal} {milestone.get_kind_display()}")
            if not done:
                self.stdout.write("nothing is due")
            return
        now = timezone.now()
        programmes = Programme.objects.select_related("terminal").order_by("terminal__code")
        milestones = Milestone.objects.select_related("approved_by").order_by("position")
        for programme in programmes:
            self.stdout.write(f"{programme.terminal.code}: {programme.get_phase_display()}")
            next_found = False
            for milestone in milestones.filter(programme=programme):
                if milestone.carried_out_at is not None:
                    state = f"carried out {_when(milestone.carried_out_at)}"
                elif next_found:
                    state = "after the next one"
                else:
                    next_found = True
                    if milestone.is_due(now):
                        state = "NEXT, due: carried out at the next run"
                    elif milestone.planned_at is not None and milestone.planned_at <= now:
                        state = "NEXT, waits for regulatory approval"
                    else:
                        state = "NEXT"
                approval = " (subject to regulatory approval)" if milestone.needs_approval else ""
                self.stdout.write(
                    f"  {milestone.position + 1}. {milestone.get_kind_display()}{approval}:"
                    f" {_when(milestone.planned_at)} - {state}"
                )
