"""Queue failed emails again: `manage.py outbox_retry` (all) or `manage.py outbox_retry 12 15`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from outbox.services import emails_retry


class Command(BaseCommand):
    help = "Queue failed outbox emails again (all of them, or those with the given ids)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("ids", nargs="*", type=int, help="outbox email ids (default: all)")

    def handle(self, *args: Any, **options: Any) -> None:
        retried = emails_retry(ids=options["ids"] or None)
        self.stdout.write(f"Queued again: {retried} failed email(s).")
