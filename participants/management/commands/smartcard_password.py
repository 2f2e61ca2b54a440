"""Set a smartcard's password."""

from __future__ import annotations

import getpass
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from participants.provisioning import (
    ProvisioningError,
    smartcard_for_key,
    smartcard_password_set,
)


class Command(BaseCommand):
    help = (
        "Set the smartcard password of the card with this serial number or SHA-256 fingerprint. "
        "The password is asked twice, or read as one line from stdin with --password-stdin."
    )
    # Tests pass their own stdin, as to Django's createsuperuser.
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("card", metavar="SERIAL_OR_FINGERPRINT")
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from the first line of stdin, for automation",
        )

    def handle(self, *args: Any, card: str, password_stdin: bool, **options: Any) -> None:
        try:
            smartcard = smartcard_for_key(card)
        except ProvisioningError as error:
            raise CommandError(str(error)) from error
        if password_stdin:
            stdin = options.get("stdin") or sys.stdin
            password = stdin.readline().rstrip("\r\n")
        else:
            password = getpass.getpass("Smartcard password: ")
            if password != getpass.getpass("Smartcard password (again): "):
                raise CommandError("The two passwords differ; nothing was changed.")
        if not password:
            raise CommandError("The smartcard password is empty; nothing was changed.")
        smartcard_password_set(card=smartcard, password=password)
        revoked = " (the card is revoked)" if smartcard.revoked_at else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Smartcard password set for card {smartcard.serial} of "
                f"{smartcard.user.login_id}{revoked}, "
                f"fingerprint {smartcard.fingerprint_sha256}."
            )
        )
