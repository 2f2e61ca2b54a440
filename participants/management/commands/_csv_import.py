"""What the import commands share: a CSV file, --dry-run, the report, exit status 1 on refusal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from django.core.management.base import BaseCommand, CommandError, CommandParser

from participants.provisioning import ProvisioningError, Report


class CsvImportCommand(BaseCommand):
    importer: ClassVar[Callable[..., Report]]

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="CSV file, UTF-8, with a header row")
        parser.add_argument(
            "--dry-run", action="store_true", help="check and report every row, write nothing"
        )

    def handle(self, *args: Any, file: Path, dry_run: bool, **options: Any) -> None:
        try:
            report = type(self).importer(path=file, dry_run=dry_run)
        except ProvisioningError as error:
            raise CommandError(f"{file}: {error}") from error
        for line in report.lines():
            self.stdout.write(line)
        if report.refused:
            raise CommandError(report.summary())
        self.stdout.write(self.style.SUCCESS(report.summary()))
