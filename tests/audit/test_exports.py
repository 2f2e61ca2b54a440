"""Audit trail exports: a stream never passes a cut file off as complete, and a background
export is offered only once its whole file is written."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.db import DatabaseError
from django.utils import timezone

from audit import exports
from audit.models import AuditEvent, AuditExport, ExportStatus
from audit.selectors import TrailFilters
from common.csv_export import csv_stream

pytestmark = pytest.mark.django_db


@pytest.fixture
def trail(firm, user, maker_da):
    start = timezone.now() - dt.timedelta(days=1)
    AuditEvent.objects.bulk_create(
        AuditEvent(
            at=start + dt.timedelta(seconds=n),
            action="login",
            outcome="success",
            user=user,
            login_id=user.login_id,
            actor=maker_da if n % 2 else None,
            participant=firm,
        )
        for n in range(50)
    )
    return AuditEvent.objects.filter(participant=firm)


def _rows(firm) -> object:
    return exports.export_rows(
        participant=firm, filters=TrailFilters(), up_to_id=exports.newest_id()
    )


def _failing_after(count: int, monkeypatch) -> None:
    """Make the row source fail (as a dropped database connection would) after `count` rows."""
    real = exports._fetch

    def fetch(rows):
        for n, row in enumerate(real(rows)):
            if n == count:
                raise DatabaseError("server closed the connection unexpectedly")
            yield row

    monkeypatch.setattr(exports, "_fetch", fetch)


def test_rows_are_written_a_chunk_at_a_time(firm, trail, monkeypatch):
    monkeypatch.setattr(exports, "CHUNK_ROWS", 20)
    chunks = list(exports.csv_chunks(_rows(firm), language="en"))
    assert [count for _text, count in chunks] == [0, 20, 20, 10]
    content = "".join(text for text, _count in chunks)
    rows = list(csv.reader(io.StringIO(content.removeprefix("\ufeff"))))
    assert len(rows) == 51
    # Oldest first; the acting DA's login ID through the join.
    assert rows[1][0] < rows[-1][0]
    assert {r[4] for r in rows[1:]} == {"", "B10000DA1"}


def test_a_stream_that_fails_raises_to_the_server_and_is_not_a_whole_file(firm, trail, monkeypatch):
    monkeypatch.setattr(exports, "CHUNK_ROWS", 10)
    _failing_after(25, monkeypatch)
    response = csv_stream(exports.stream(_rows(firm), language="en"), filename="a.csv")
    received = []
    with pytest.raises(DatabaseError):
        for piece in response.streaming_content:
            received.append(piece)
    # What reached the client before the cut: whole chunks, and fewer rows than the trail.
    rows = list(csv.reader(io.StringIO(b"".join(received).decode().removeprefix("\ufeff"))))
    assert len(rows) - 1 == 20 < trail.count()


def test_a_stream_stops_itself_before_the_app_servers_timeout(firm, trail, monkeypatch):
    monkeypatch.setattr(exports, "CHUNK_ROWS", 10)
    monkeypatch.setattr(exports, "STREAM_SECONDS", -1.0)
    with pytest.raises(exports.StreamTooSlow):
        list(exports.stream(_rows(firm), language="en"))


def test_the_export_covers_the_rows_up_to_the_newest_when_it_began(firm, trail, user):
    up_to = exports.newest_id()
    AuditEvent.objects.create(action="logout", outcome="success", user=user, participant=firm)
    rows = exports.export_rows(participant=firm, filters=TrailFilters(), up_to_id=up_to)
    assert rows.count() == 50


def test_the_count_stops_past_the_limit(firm, trail):
    assert exports.count_at_most(trail, 10) == 11
    assert exports.count_at_most(trail, 100) == 50


def _export(firm, maker_da, **fields) -> AuditExport:
    return AuditExport.objects.create(
        participant=firm,
        requested_by=maker_da,
        up_to_id=exports.newest_id(),
        rows_expected=50,
        language="en",
        **fields,
    )


def test_a_background_export_that_fails_is_failed_with_no_file(
    firm, trail, maker_da, monkeypatch, settings, tmp_path
):
    settings.EXPORT_ROOT = tmp_path
    monkeypatch.setattr(exports, "CHUNK_ROWS", 10)
    _failing_after(25, monkeypatch)
    export = _export(firm, maker_da)
    with pytest.raises(DatabaseError):
        exports.audit_export_write(export_id=export.pk)
    export.refresh_from_db()
    assert export.status == ExportStatus.FAILED
    assert "server closed the connection" in export.error
    assert export.file_name == ""
    assert exports.can_retry(export)
    assert list(tmp_path.iterdir()) == []


def test_a_background_export_reports_progress_chunk_by_chunk(
    firm, trail, maker_da, monkeypatch, settings, tmp_path
):
    settings.EXPORT_ROOT = tmp_path
    monkeypatch.setattr(exports, "CHUNK_ROWS", 20)
    export = _export(firm, maker_da)
    seen: list[int] = []
    real = exports.csv_chunks

    def watched(rows, **kwargs):
        for text, count in real(rows, **kwargs):
            seen.append(AuditExport.objects.get(pk=export.pk).rows_written)
            yield text, count

    monkeypatch.setattr(exports, "csv_chunks", watched)
    done = exports.audit_export_write(export_id=export.pk)
    assert seen == [0, 0, 20, 40]
    assert (done.status, done.rows_written, done.progress_percent) == (ExportStatus.DONE, 50, 100)
    assert (tmp_path / done.file_name).read_text(encoding="utf-8").count("\n") == 51


def test_an_export_whose_worker_died_starts_again_and_a_done_one_is_not_rewritten(
    firm, trail, maker_da, settings, tmp_path
):
    settings.EXPORT_ROOT = tmp_path
    # A worker died mid-file: the row says running, with some rows written.
    export = _export(firm, maker_da, status=ExportStatus.RUNNING, rows_written=20)
    assert not exports.can_retry(export)
    AuditExport.objects.filter(pk=export.pk).update(
        updated_at=timezone.now() - dt.timedelta(hours=1)
    )
    export.refresh_from_db()
    assert exports.is_stalled(export) and exports.can_retry(export)

    done = exports.audit_export_write(export_id=export.pk)  # Celery's redelivery
    assert (done.status, done.rows_written) == (ExportStatus.DONE, 50)
    again = exports.audit_export_write(export_id=export.pk)
    assert again.file_name == done.file_name
    assert len(list(tmp_path.iterdir())) == 1


def test_the_staff_admin_never_counts_the_whole_trail(trail, monkeypatch):
    from audit.admin import AuditEventAdmin, EstimatedCountPaginator

    assert AuditEventAdmin.show_full_result_count is False
    assert AuditEventAdmin.paginator is EstimatedCountPaginator
    monkeypatch.setattr(EstimatedCountPaginator, "CAP", 10)
    paginator = EstimatedCountPaginator(AuditEvent.objects.filter(action="login"), 4)
    assert paginator.count == 10
    assert len(paginator.page(2).object_list) == 4
