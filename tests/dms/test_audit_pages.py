"""The audit trail's pages read by cursor, the same few queries at any size and depth, and its
CSV: streamed when small, written in the background when too large to stream."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
from django.urls import reverse

from audit.models import AuditEvent, AuditExport, ExportStatus
from audit.selectors import NEWEST_FIRST
from common.keyset import cursor_for
from dms.views import PAGE_SIZE
from tests.dms.test_pages import table_rows
from tests.helpers import log_in_with_app, page_queries

pytestmark = pytest.mark.django_db

HKT = dt.timezone(dt.timedelta(hours=8))
START = dt.datetime(2026, 1, 5, 9, 0, tzinfo=HKT)


def _add(firm, user, actor, count: int, *, start: int = 0, action: str = "login") -> None:
    """Rows one minute apart, made in bulk as a busy firm's trail grows."""
    AuditEvent.objects.bulk_create(
        AuditEvent(
            at=START + dt.timedelta(minutes=start + n),
            action=action if n % 3 else "request_made",
            outcome="success",
            user=user,
            login_id=user.login_id,
            actor=actor if n % 2 else None,
            participant=firm,
        )
        for n in range(count)
    )


def _page(client, **query: str) -> str:
    response = client.get(reverse("dms:audit-list"), query)
    assert response.status_code == 200
    return response.content.decode()


def _queries(client, **query: str) -> int:
    queries, response = page_queries(client, reverse("dms:audit-list"), query)
    assert response.status_code == 200
    return queries


def _deep_cursor(**filters) -> str:
    rows = AuditEvent.objects.filter(**filters).order_by("-at", "-id")
    return cursor_for(rows[rows.count() * 9 // 10], NEWEST_FIRST)


def _older(page: str) -> str | None:
    found = re.search(r'href="\?([^"]*)" rel="next"', page)
    return found.group(1).replace("&amp;", "&") if found else None


def test_queries_per_page_do_not_grow_with_the_trail_or_the_depth(
    maker, firm, maker_da, checker_da, user
):
    def counts() -> dict[str, int]:
        return {
            "first": _queries(maker),
            "deep": _queries(maker, after=_deep_cursor(participant=firm)),
            "by user": _queries(maker, user=user.login_id),
            "by user, deep": _queries(
                maker, user=user.login_id, after=_deep_cursor(participant=firm, user=user)
            ),
            "by the acting DA": _queries(maker, user=checker_da.login_id),
            "by action": _queries(maker, action="login"),
            "by action, deep": _queries(
                maker, action="login", after=_deep_cursor(participant=firm, action="login")
            ),
            "by date": _queries(maker, date_from="2026-01-05", date_to="2026-02-01"),
        }

    _add(firm, user, checker_da, 1_000)
    at_a_thousand = counts()
    _add(firm, user, checker_da, 20_000, start=1_000)
    assert AuditEvent.objects.filter(participant=firm).count() > 20_000
    assert counts() == at_a_thousand


def test_older_links_walk_the_whole_trail_once_newest_first(maker, firm, maker_da, user):
    _add(firm, user, maker_da, PAGE_SIZE * 2 + 7)
    expected = list(
        AuditEvent.objects.filter(participant=firm).order_by("-at", "-id").values_list("at")
    )
    page, seen, pages = _page(maker), 0, 0
    while True:
        pages += 1
        seen += len(table_rows(page, "audit"))
        query = _older(page)
        if query is None:
            break
        assert "Newest" in page or pages == 1
        page = maker.get(reverse("dms:audit-list") + "?" + query).content.decode()
    assert seen == len(expected)
    assert pages == 3
    # No total over the trail: it could be millions.
    assert "Page 1 of" not in _page(maker)


def test_the_pages_keep_the_filters(maker, firm, maker_da, user):
    _add(firm, user, maker_da, PAGE_SIZE * 3, action="logout")
    page = _page(maker, action="logout")
    query = _older(page)
    assert query is not None and "action=logout" in query
    older = maker.get(reverse("dms:audit-list") + "?" + query).content.decode()
    assert {row[1] for row in table_rows(older, "audit")} == {"Logout"}
    assert 'rel="prev"' in older


def test_a_login_id_that_names_nobody_in_the_firm_finds_what_was_typed(
    maker, firm, user, other_firm_user
):
    for typed in ("ghost01", "GHOST01"):
        AuditEvent.objects.create(
            action="login", outcome="failure", login_id=typed, participant=firm, reason="x"
        )
    rows = table_rows(_page(maker, user="Ghost01"), "audit")
    assert sorted(r[3] for r in rows) == ["GHOST01", "ghost01"]
    # Another firm's user reads as nobody: nothing of theirs, nothing about them.
    AuditEvent.objects.create(
        action="login", outcome="success", user=other_firm_user, participant=firm
    )
    assert table_rows(_page(maker, user=other_firm_user.login_id), "audit") == []


def test_days_are_hong_kong_days(maker, firm, user):
    for hour, minute in ((0, 10), (23, 50)):
        AuditEvent.objects.create(
            at=dt.datetime(2026, 3, 2, hour, minute, tzinfo=HKT),
            action="logout",
            outcome="success",
            user=user,
            participant=firm,
        )
    AuditEvent.objects.create(
        at=dt.datetime(2026, 3, 3, 0, 0, tzinfo=HKT),
        action="logout",
        outcome="success",
        user=user,
        participant=firm,
    )
    rows = table_rows(
        _page(maker, action="logout", date_from="2026-03-02", date_to="2026-03-02"), "audit"
    )
    assert [r[0] for r in rows] == ["2026-03-02 23:50", "2026-03-02 00:10"]


def test_an_empty_trail_says_nothing_is_recorded(maker, firm):
    page = _page(maker, action="otp_reset")
    assert table_rows(page, "audit") == []
    assert "Nothing recorded." in page
    assert 'rel="next"' not in page


# The CSV, streamed or in the background ----------------------------------------------------


def _csv_rows(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8").removeprefix("\ufeff"))))


def test_a_small_export_streams(maker, firm, maker_da, user, settings):
    _add(firm, user, maker_da, 30)
    settings.AUDIT_EXPORT_STREAM_ROWS = 1_000
    response = maker.get(reverse("dms:audit-csv"))
    assert response.status_code == 200 and response.streaming
    rows = _csv_rows(b"".join(response.streaming_content))
    assert len(rows) - 1 == AuditEvent.objects.filter(participant=firm).count()
    assert not AuditExport.objects.exists()


def test_an_export_too_large_to_stream_is_written_in_the_background(
    maker, firm, maker_da, user, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.AUDIT_EXPORT_STREAM_ROWS = 10
    _add(firm, user, maker_da, 25, action="logout")
    with django_capture_on_commit_callbacks(execute=True):
        response = maker.get(reverse("dms:audit-csv"), {"action": "logout"})
    export = AuditExport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("dms:audit-export", args=[export.pk])
    assert (export.status, export.requested_by, export.participant) == (
        ExportStatus.DONE,
        maker_da,
        firm,
    )
    assert export.rows_written == AuditEvent.objects.filter(action="logout").count()
    # Told "more than 10": counted no further than the limit.
    assert export.rows_expected == 11

    page = maker.get(reverse("dms:audit-export", args=[export.pk])).content.decode()
    assert "Ready" in page and reverse("dms:audit-export-download", args=[export.pk]) in page
    download = maker.get(reverse("dms:audit-export-download", args=[export.pk]))
    assert download.status_code == 200
    assert download["Content-Disposition"] == (
        f'attachment; filename="audit-trail-{export.pk}.csv"'
    )
    rows = _csv_rows(b"".join(download.streaming_content))
    assert rows[0][0] == "Time"
    assert {r[-1] for r in rows[1:]} == {"logout"}
    assert len(rows) - 1 == export.rows_written
    # Nothing half-written is left beside it.
    assert [p.name for p in (tmp_path / "exports").iterdir()] == [export.file_name]

    listed = table_rows(_page(maker), "exports")
    assert listed[0][1:] == [maker_da.login_id, "Ready", str(export.rows_written)]
    progress = maker.get(reverse("dms:audit-export-progress", args=[export.pk])).json()
    assert progress["done"] and progress["percent"] == 100


def test_an_export_waiting_for_a_worker_shows_its_progress(
    maker, firm, maker_da, user, settings, tmp_path
):
    settings.EXPORT_ROOT = tmp_path / "exports"
    settings.AUDIT_EXPORT_STREAM_ROWS = 10
    _add(firm, user, maker_da, 25)
    # No on-commit callbacks run here: the task is queued, not run.
    response = maker.get(reverse("dms:audit-csv"), follow=True)
    export = AuditExport.objects.get()
    assert export.status == ExportStatus.QUEUED
    page = response.content.decode()
    assert "being written as a file" in page
    assert "0 rows written (at least 11 expected)" in page
    assert reverse("dms:audit-export-download", args=[export.pk]) not in page
    assert maker.get(reverse("dms:audit-export-download", args=[export.pk])).status_code == 404
    progress = maker.get(reverse("dms:audit-export-progress", args=[export.pk])).json()
    assert (progress["done"], progress["processed"], progress["total"]) == (False, 0, 11)


@pytest.mark.parametrize("name", ["audit-export", "audit-export-progress", "audit-export-download"])
def test_another_firms_export_is_not_found(
    client, name, other_firm_da, firm, maker_da, settings, tmp_path
):
    settings.EXPORT_ROOT = tmp_path
    (tmp_path / "theirs.csv").write_text("secret")
    export = AuditExport.objects.create(
        participant=firm,
        requested_by=maker_da,
        status=ExportStatus.DONE,
        file_name="theirs.csv",
    )
    log_in_with_app(client, other_firm_da, scope="dms")
    assert client.get(reverse(f"dms:{name}", args=[export.pk])).status_code == 404
    assert client.get(reverse(f"dms:{name}", args=[export.pk + 1000])).status_code == 404
    if name == "audit-export":
        assert client.post(reverse(f"dms:{name}", args=[export.pk])).status_code == 404


@pytest.mark.parametrize("name", ["audit-export", "audit-export-progress", "audit-export-download"])
def test_export_pages_need_a_dms_login_and_refuse_other_methods(
    client, maker, name, firm, maker_da
):
    export = AuditExport.objects.create(participant=firm, requested_by=maker_da)
    url = reverse(f"dms:{name}", args=[export.pk])
    assert maker.put(url).status_code == 405
    assert maker.delete(url).status_code == 405
    maker.logout()
    response = client.get(url)
    assert response.status_code == 302 and "next=" in response["Location"]


def test_a_failed_export_can_be_tried_again(
    maker, firm, maker_da, user, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.EXPORT_ROOT = tmp_path
    export = AuditExport.objects.create(
        participant=firm, requested_by=maker_da, status=ExportStatus.FAILED, up_to_id=10**9
    )
    _add(firm, user, maker_da, 5)
    page = maker.get(reverse("dms:audit-export", args=[export.pk])).content.decode()
    assert "could not be written" in page and "Try again" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = maker.post(reverse("dms:audit-export", args=[export.pk]))
    assert response.status_code == 302
    export.refresh_from_db()
    assert export.status == ExportStatus.DONE
    assert export.rows_written == AuditEvent.objects.filter(participant=firm).count()
