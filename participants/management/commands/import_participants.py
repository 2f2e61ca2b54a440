"""Create or update participants from a CSV file."""

from __future__ import annotations

from participants.management.commands._csv_import import CsvImportCommand
from participants.provisioning import participants_import


class Command(CsvImportCommand):
    help = (
        "Create or update participants from a CSV file with the columns participant_id, name, "
        "kind (CP or DB), terminal (CCASS or CCMS) and optionally single_da_allowed (yes or no; "
        "empty keeps the current value, no for a new participant). An existing participant "
        "cannot change terminal. All rows or none are written."
    )
    importer = staticmethod(participants_import)
