"""`manage.py connectivity_undo`: undo a connectivity-test session's account changes now.

Beat does it within a minute of the session's end; this is for staff who cannot wait, or
whose beat was down. The undo is claimed in the database: running it again, or beside
beat, changes nothing more.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from authn.rehearsal import session_undo, sessions_due_for_undo
from migration.models import ConnectivitySession


class Command(BaseCommand):
    help = (
        "Undo the account changes made in ended connectivity-test sessions whose changes are"
        " not carried forward: every such session that is due, or only --session ID."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--session", type=int, help="the id of one session")

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        if options["session"] is not None:
            session = ConnectivitySession.objects.filter(pk=options["session"]).first()
            if session is None:
                raise CommandError(f"no connectivity-test session {options['session']}")
            if session.carried_forward:
                raise CommandError(f"{session}: its changes are carried forward, nothing to undo")
            if session.ends_at > now:
                raise CommandError(f"{session}: it has not ended yet")
            if session.undone_at is not None:
                undone = timezone.localtime(session.undone_at)
                self.stdout.write(f"{session}: already undone at {undone:%Y-%m-%d %H:%M}")
                return
            ids = [session.pk]
        else:
            ids = sessions_due_for_undo(now)
        if not ids:
            self.stdout.write("nothing is due")
        for session_id in ids:
            counts = session_undo(session_id=session_id, now=now)
            if counts is None:
                self.stdout.write(f"session {session_id}: undone by another run")
                continue
            self.stdout.write(
                f"session {session_id}: {counts['accounts']} accounts put back,"
                f" {counts['devices']} devices restored, {counts['emails']} users told"
            )
