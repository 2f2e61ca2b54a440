"""Give an exchange staff member a working authenticator-app device, for /admin/."""

from __future__ import annotations

import io
from base64 import b32encode
from typing import Any

import qrcode
from django.core.management.base import BaseCommand, CommandError, CommandParser

from authn.devices import staff_totp_create
from participants.models import User


class Command(BaseCommand):
    help = (
        "Create a confirmed TOTP device (and backup codes) for a staff member, replacing any "
        "they had, and print the QR code and key to add to an authenticator app."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("login_id")

    def handle(self, *args: Any, login_id: str, **options: Any) -> None:
        user = User.objects.filter(login_id=login_id).first()
        if user is None:
            raise CommandError(f"No user with login ID {login_id!r}")
        try:
            device, codes = staff_totp_create(user=user)
        except ValueError as error:
            raise CommandError(str(error)) from error
        qr = qrcode.QRCode(border=1)
        qr.add_data(device.config_url)
        art = io.StringIO()
        qr.print_ascii(out=art, invert=True)
        self.stdout.write(art.getvalue())
        self.stdout.write(f"Key: {b32encode(device.bin_key).decode()}")
        self.stdout.write(f"URI: {device.config_url}")
        self.stdout.write("Backup codes (each works once; keep them safe):")
        for code in codes:
            self.stdout.write(f"  {code}")
        self.stdout.write(
            self.style.SUCCESS(f"{login_id} can now log in at /staff/login/ for /admin/.")
        )
