"""The audit trail as CSV: streamed when small enough, otherwise written in the background.

One row source serves both: `values_list` rows (no model instances) read from a server-side
cursor on PostgreSQL (`iterator(chunk_size=...)`), labels looked up in dicts built once, and
CSV text yielded a chunk of rows at a time rather than a row at a time.

An export covers a fixed set of rows, those up to the newest audit row when it was asked
for, so that what the DA was told to expect is what the file holds.

A stream that cannot finish is never passed off as complete. An error while streaming
propagates out of the response's iterator: gunicorn's sync worker (workers/sync.py,
handle_request) then skips `resp.close()`, which would write the chunked transfer's
terminating zero-length chunk, and closes the socket (util.close_graceful); nginx, which
talks HTTP/1.1 to gunicorn (deploy/nginx.conf), sees the upstream end early and cuts the
client's transfer too. A client or a browser reports a failed download, not a short file.
The same holds when gunicorn's timeout kills the worker (SystemExit in the same place).
The stream also stops itself short of that timeout, so that the worker survives it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from itertools import islice
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connections, transaction
from django.db.models import BigIntegerField, Func, Max, QuerySet
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from audit.models import (
    AuditAction,
    AuditEvent,
    AuditExport,
    ExportStatus,
    Outcome,
    Refusal,
)
from audit.selectors import TrailFilters, audit_trail
from common.csv_export import BOM, safe_cell
from participants.models import LoginMethod, Participant, Scope, User

logger = logging.getLogger("portal.audit")

# Rows per fetch from the cursor, and per piece of CSV text handed to the server or the file.
CHUNK_ROWS = 2000
# gunicorn's sync worker is killed after 30 s (deploy/gunicorn.conf.py `timeout`): a stream
# still running after this long stops with an error, cut, rather than be killed.
STREAM_SECONDS = 25.0
# A running export with no progress for this long has lost its worker: it may be retried.
STALLED_AFTER_SECONDS = 10 * 60

_COLUMNS = (
    "at",
    "action",
    "outcome",
    "login_id",
    "actor__login_id",
    "scope",
    "method",
    "ip",
    "reason",
)


class StreamTooSlow(Exception):
    """Raised inside a stream that would outlast the app server's timeout."""


def newest_id() -> int:
    """The id of the newest audit row: an export covers the rows up to it."""
    return AuditEvent.objects.aggregate(newest=Max("id"))["newest"] or 0


def count_at_most(rows: QuerySet[AuditEvent], limit: int) -> int:
    """Count the rows, but no further than `limit + 1`: enough to tell 'more than limit'."""
    return rows.order_by().values("pk")[: limit + 1].count()


def export_rows(
    *, participant: Participant, filters: TrailFilters, up_to_id: int
) -> QuerySet[AuditEvent]:
    """The rows an export of the firm's trail holds, oldest first, as a spreadsheet reads."""
    trail = audit_trail(participant=participant, filters=filters)
    return trail.rows().filter(id__lte=up_to_id).order_by("at", "id")


def _header() -> list[str]:
    return [
        _("Time"),
        _("Action"),
        _("Outcome"),
        _("Login ID"),
        _("By"),
        _("Function"),
        _("Method"),
        _("IP address"),
        _("Reason"),
        _("Action code"),
    ]


def _labels(choices: Iterable[tuple[str, Any]]) -> dict[str, str]:
    return {value: str(label) for value, label in choices}


class EpochMicroseconds(Func):
    """A timestamp as whole microseconds since 1970, computed by the database. Parsing a
    million timestamps from text took a quarter of an export's time; an integer becomes a
    datetime in a fraction of that."""

    output_field = BigIntegerField()
    template = "(EXTRACT(EPOCH FROM %(expressions)s) * 1000000)::bigint"

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # Django writes 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC: the seconds, then the six
        # digits after the point (none when the microseconds are 0). '%%%%s' is strftime's
        # %s once through the template and then Django's SQLite placeholders.
        return super().as_sql(
            compiler,
            connection,
            template=(
                "(CAST(strftime('%%%%s', %(expressions)s) AS INTEGER) * 1000000"
                " + CAST(substr(%(expressions)s, 21) AS INTEGER))"
            ),
            **extra,
        )


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _fetch(rows: QuerySet[AuditEvent]) -> Iterator[tuple[Any, ...]]:
    """The rows' columns, from a server-side cursor on PostgreSQL; the time as microseconds
    since 1970 (EpochMicroseconds)."""
    return (
        rows.annotate(at_us=EpochMicroseconds("at"))
        .values_list("at_us", *_COLUMNS[1:])
        .iterator(chunk_size=CHUNK_ROWS)
    )


def csv_chunks(
    rows: QuerySet[AuditEvent], *, language: str, deadline: float | None = None
) -> Iterator[tuple[str, int]]:
    """Yield the CSV's text a chunk of rows at a time, with the number of rows in each.

    The first chunk is the byte order mark and the header. Whatever fails while reading
    propagates: a caller never sees a normal end after an error. With `deadline` (a
    `time.monotonic()` value), reading past it raises StreamTooSlow.
    """
    with translation.override(language):
        # A DA reads the export in a spreadsheet: labels in their language, as the page
        # shows them; the action's code stays in the last column for sorting or filtering.
        actions = _labels(AuditAction.choices)
        outcomes = _labels(Outcome.choices)
        scopes = _labels(Scope.choices)
        methods = _labels(LoginMethod.choices)
        reasons = _labels(Refusal.choices)
        header = _header()
    zone = ZoneInfo(settings.TIME_ZONE)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    yield BOM + buffer.getvalue(), 0
    buffer.seek(0)
    buffer.truncate()
    # Free text (a login ID as typed, a checker's reason) and unknown codes go through
    # safe_cell: a spreadsheet must not run them as formulas. The labels are made safe once.
    scopes = {code: safe_cell(label) for code, label in scopes.items()}
    methods = {code: safe_cell(label) for code, label in methods.items()}
    reasons = {code: safe_cell(label) for code, label in reasons.items()}

    def line(row: tuple[Any, ...]) -> tuple[str, ...]:
        at, action, outcome, login_id, by, scope, method, ip, reason = row
        return (
            # Hong Kong time, as the audit page shows it.
            (_EPOCH + dt.timedelta(microseconds=at)).astimezone(zone).isoformat(),
            actions.get(action, action),
            outcomes.get(outcome, outcome),
            safe_cell(login_id),
            safe_cell(by or ""),
            scopes.get(scope) or safe_cell(scope),
            methods.get(method) or safe_cell(method),
            ip or "",
            reasons.get(reason) or safe_cell(reason),
            action,
        )

    fetched = _fetch(rows)
    while True:
        chunk = list(islice(fetched, CHUNK_ROWS))
        if not chunk:
            return
        writer.writerows(map(line, chunk))
        if len(chunk) == CHUNK_ROWS and deadline is not None and time.monotonic() > deadline:
            raise StreamTooSlow("the export outlasted the stream's time limit")
        yield buffer.getvalue(), len(chunk)
        buffer.seek(0)
        buffer.truncate()


def _reading(using: str) -> AbstractContextManager[Any]:
    # On PostgreSQL a transaction lets the server-side cursor hand rows over as it reads
    # them; in autocommit Django declares it WITH HOLD, and PostgreSQL computes the whole
    # result before the first row (measured: 15% slower over a million rows). Not on
    # SQLite, whose transactions here begin IMMEDIATE and would hold off every writer.
    connection = connections[using]
    return transaction.atomic(using=using) if connection.vendor == "postgresql" else nullcontext()


def stream(rows: QuerySet[AuditEvent], *, language: str) -> Iterator[str]:
    """The CSV's text for a streaming response, cut (by an error) if it cannot finish."""
    deadline = time.monotonic() + STREAM_SECONDS
    started = time.monotonic()
    written = 0
    try:
        with _reading(rows.db):
            for text, count in csv_chunks(rows, language=language, deadline=deadline):
                written += count
                yield text
    except GeneratorExit:
        raise
    except BaseException:
        logger.exception(
            "audit CSV stream cut after %d rows, %.1f s", written, time.monotonic() - started
        )
        raise


# Exports written in the background ----------------------------------------------------------


def export_root() -> Path:
    root = Path(settings.EXPORT_ROOT)
    root.mkdir(parents=True, exist_ok=True)
    return root


def export_path(export: AuditExport) -> Path | None:
    """Where a finished export's file is, or None if it has none."""
    if not export.file_name:
        return None
    return export_root() / export.file_name


def is_stalled(export: AuditExport, now: Any = None) -> bool:
    """Whether a running export has made no progress for so long that its worker is gone."""
    if export.status != ExportStatus.RUNNING:
        return False
    now = now or timezone.now()
    return (now - export.updated_at).total_seconds() > STALLED_AFTER_SECONDS


def can_retry(export: AuditExport) -> bool:
    return export.status == ExportStatus.FAILED or is_stalled(export)


@transaction.atomic
def audit_export_request(
    *,
    participant: Participant,
    acting_user: User,
    filters: TrailFilters,
    language: str,
    up_to_id: int,
    rows_expected: int,
) -> AuditExport:
    """Record a DA's export of the firm's trail and have it written in the background."""
    export = AuditExport.objects.create(
        participant=participant,
        requested_by=acting_user,
        filters=filters.as_json(),
        language=language,
        up_to_id=up_to_id,
        rows_expected=rows_expected,
    )
    _queue(export.pk)
    return export


@transaction.atomic
def audit_export_retry(*, export: AuditExport, acting_user: User) -> AuditExport:
    """Queue a failed (or stalled) export again, from the start."""
    export = AuditExport.objects.select_for_update().get(pk=export.pk)
    if not can_retry(export):
        return export
    export.status = ExportStatus.QUEUED
    export.rows_written = 0
    export.error = ""
    export.save(update_fields=["status", "rows_written", "error", "updated_at"])
    logger.info("audit export %s queued again by user %s", export.pk, acting_user.pk)
    _queue(export.pk)
    return export


def _queue(export_id: int) -> None:
    from audit.tasks import audit_export_write

    if settings.CELERY_TASK_ALWAYS_EAGER and not settings.TESTING:
        # The embedded default has no worker: write in a thread, so that the request
        # returns and the page shows progress as it would with one.
        transaction.on_commit(lambda: _write_in_thread(export_id))
    else:
        transaction.on_commit(lambda: audit_export_write.delay(export_id))


def _write_in_thread(export_id: int) -> None:
    def write() -> None:
        try:
            audit_export_write(export_id=export_id)
        except Exception:
            logger.exception("audit export %s failed", export_id)
        finally:
            connections.close_all()

    threading.Thread(target=write, name=f"audit-export-{export_id}", daemon=True).start()


def audit_export_write(*, export_id: int) -> AuditExport:
    """Write an export's CSV file; mark it done only once the whole file is in place.

    The file is written under a temporary name and renamed at the end: a half-written file
    is never offered. Any failure marks the export failed (and retryable) and propagates. A
    worker that dies outright leaves it running; Celery hands the task to another worker
    (acks late), which starts it again, and the page offers a retry once it has stalled.
    """
    with transaction.atomic():
        export = (
            AuditExport.objects.select_for_update().select_related("participant").get(pk=export_id)
        )
        if export.status == ExportStatus.DONE:
            return export  # Written already: never twice.
        export.status = ExportStatus.RUNNING
        export.rows_written = 0
        export.error = ""
        export.save(update_fields=["status", "rows_written", "error", "updated_at"])
    name = f"audit-{export.pk}-{secrets.token_hex(8)}.csv"
    root = export_root()
    partial = root / f".{name}.part"
    rows = export_rows(
        participant=export.participant,
        filters=TrailFilters.from_json(export.filters),
        up_to_id=export.up_to_id,
    )
    written = 0
    try:
        with partial.open("w", encoding="utf-8", newline="") as out:
            for text, count in csv_chunks(rows, language=export.language or "en"):
                out.write(text)
                if count:
                    written += count
                    AuditExport.objects.filter(pk=export.pk).update(
                        rows_written=written, updated_at=timezone.now()
                    )
            out.flush()
            os.fsync(out.fileno())
        partial.replace(root / name)
    except BaseException as error:
        partial.unlink(missing_ok=True)
        AuditExport.objects.filter(pk=export.pk).update(
            status=ExportStatus.FAILED,
            error=f"{type(error).__name__}: {error}"[:255],
            updated_at=timezone.now(),
        )
        raise
    AuditExport.objects.filter(pk=export.pk).update(
        status=ExportStatus.DONE,
        rows_written=written,
        file_name=name,
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )
    export.refresh_from_db()
    return export
