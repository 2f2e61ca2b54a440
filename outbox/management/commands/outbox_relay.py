"""Send the due outbox emails now, in this process: `manage.py outbox_relay`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from outbox.relay import relay


class Command(BaseCommand):
    help = "Send the outbox emails that are due, here and now (what the beat's sweep does)."

    def handle(self, *args: Any, **options: Any) -> None:
        report = relay()
        self.stdout.write(
            f"Sent {report.sent}, retrying later {report.retrying}, failed {report.failed}, "
            f"cancelled {report.cancelled}."
        )
