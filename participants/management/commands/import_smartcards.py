"""Register smartcards of participants' users from a CSV file."""

from __future__ import annotations

from participants.management.commands._csv_import import CsvImportCommand
from participants.provisioning import smartcards_import


class Command(CsvImportCommand):
    help = (
        "Register or update smartcards from a CSV file with the columns login_id, card_password "
        "and either certificate (a PEM file, relative to the CSV's folder or absolute) or "
        "serial, fingerprint_sha256, valid_from and valid_to (ISO 8601; without an offset, "
        "Hong Kong time). With a certificate, an empty serial or validity is taken from it. "
        "card_password may be empty for a registered card (it keeps its password). A "
        "fingerprint registered to another card is refused. All rows or none are written."
    )
    importer = staticmethod(smartcards_import)
