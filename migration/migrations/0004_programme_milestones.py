"""Give each programme its seven milestones, those its phase has passed done.

A programme keeps the phase staff had set: the milestones up to the one that opened that
phase (and DAs' email registration, if staff had opened it) are marked carried out, so
that the scheduler goes on from there. The planned launch moves to the launch milestone;
the other dates are staff's to set in the admin.
"""

from django.db import migrations
from django.utils import timezone

KINDS = [
    "email_registration_opens",
    "email_registration_deadline",
    "da_email_registration_opens",
    "da_email_registration_deadline",
    "launch",
    "parallel_run_ends",
    "decommissioning",
]
# The position of the milestone that opens each phase.
PHASE_OPENED_AT = {
    "preparation": -1,
    "email_registration": 0,
    "parallel_run": 4,
    "2fa_only": 5,
    "decommissioned": 6,
}


def create_milestones(apps, schema_editor):
    Programme = apps.get_model("migration", "Programme")
    Milestone = apps.get_model("migration", "Milestone")
    now = timezone.now()
    for programme in Programme.objects.all():
        done_up_to = PHASE_OPENED_AT.get(programme.phase, -1)
        if programme.da_email_registration_open:
            done_up_to = max(done_up_to, 2)
        for position, kind in enumerate(KINDS):
            Milestone.objects.get_or_create(
                programme=programme,
                kind=kind,
                defaults={
                    "position": position,
                    # The launch date staff had set on the programme moves to its milestone.
                    "planned_at": programme.planned_launch_at if kind == "launch" else None,
                    # The circulars: the launch is "subject to regulatory approval".
                    "needs_approval": kind == "launch",
                    "carried_out_at": now if position <= done_up_to else None,
                },
            )


class Migration(migrations.Migration):
    dependencies = [("migration", "0003_milestones")]
    operations = [migrations.RunPython(create_milestones, migrations.RunPython.noop)]
