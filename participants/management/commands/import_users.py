"""Create or update participants' users and DAs from a CSV file."""

from __future__ import annotations

from participants.management.commands._csv_import import CsvImportCommand
from participants.provisioning import users_import


class Command(CsvImportCommand):
    help = (
        "Create or update users from a CSV file with the columns login_id, participant_id, name, "
        "role (user or da), da_duty (maker, checker or both for a DA, empty for a user) and "
        "optionally email, scope_online and scope_reports (yes or no; yes for a new user, empty "
        "keeps the current value). A login ID of another participant is refused. New users "
        "have no usable password until they set up 2FA. All rows or none are written."
    )
    importer = staticmethod(users_import)
