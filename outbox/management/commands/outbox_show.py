"""`manage.py outbox_show`: how many emails wait, and the failed ones, for an operator."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from outbox.models import EmailStatus, OutboxEmail
from outbox.selectors import oldest_pending_age, outbox_counts


class Command(BaseCommand):
    help = (
        "Show the outbox: emails by status, how long the oldest due one has waited, and the"
        " failed ones (retry them with outbox_retry)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=50, help="failed emails listed (50)")

    def handle(self, *args: Any, **options: Any) -> None:
        counts = outbox_counts()
        self.stdout.write(", ".join(f"{status}: {n}" for status, n in counts.items()))
        age = oldest_pending_age()
        self.stdout.write(
            "nothing due" if age is None else f"oldest due: waiting {int(age.total_seconds())} s"
        )
        failed = OutboxEmail.objects.filter(status=EmailStatus.FAILED).order_by("-created_at")
        for row in failed[: options["limit"]]:
            queued = timezone.localtime(row.created_at).strftime("%Y-%m-%d %H:%M")
            # The address and the error, never the parameters (an email may carry a secret).
            self.stdout.write(
                f"failed #{row.pk} {row.kind} to {row.to} queued {queued}"
                f" after {row.attempts} attempt(s): {row.last_error}"
            )
