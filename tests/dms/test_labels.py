"""A DA reads labels, never the codes the portal records: users list, audit trail, its CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.urls import reverse

from audit.models import AuditEvent
from tests import factories
from tests.dms.test_pages import table_rows

pytestmark = pytest.mark.django_db

HKT = dt.timezone(dt.timedelta(hours=8))
RAW_CODES = [
    "otp",
    "backup_code",
    "smartcard_demo",
    "smartcard",
    "password",
    "request_made",
    "success",
    "failure",
    "bad_credentials",
    "online",
]


def _cells(rows: list[list[str]]) -> set[str]:
    """Every word a person reads in the rows' cells."""
    return {word.strip("·,()") for row in rows for cell in row for word in cell.split()}


@pytest.fixture
def recorded(firm, user):
    at = dt.datetime(2026, 3, 5, 9, 15, tzinfo=HKT)
    factories.UserFactory(
        participant=firm, login_id="B10000BACK", last_login=at, last_login_method="backup_code"
    )
    factories.UserFactory(
        participant=firm, login_id="B10000DEMO", last_login=at, last_login_method="smartcard_demo"
    )

    def row(action: str, outcome: str, **extra) -> None:
        AuditEvent.objects.create(
            at=at, action=action, outcome=outcome, user=user, login_id=user.login_id,
            participant=firm, **extra,
        )  # fmt: skip

    row("login", "failure", method="password", scope="online", reason="bad_credentials")
    row("login", "success", method="smartcard_demo", scope="online,reports")
    row("request_made", "success", method="backup_code", scope="dms")


def test_users_list_shows_how_each_user_last_logged_in(maker, recorded):
    page = maker.get(reverse("dms:user-list")).content.decode()
    rows = {r[0]: r for r in table_rows(page, "users")}
    assert rows["B10000BACK"][-1] == "2026-03-05 09:15 · Password and backup code"
    assert rows["B10000DEMO"][-1] == "2026-03-05 09:15 · Smartcard (demo card)"
    methods = {row[-1].split(" · ")[-1] for row in rows.values()}
    assert "Password and one-time password" in methods  # the maker's own login
    assert methods & set(RAW_CODES) == set()


def test_audit_trail_shows_labels_not_codes(maker, recorded):
    page = maker.get(reverse("dms:audit-list"), {"user": "B10000U01"}).content.decode()
    rows = table_rows(page, "audit")
    assert [(r[1], r[2], r[5]) for r in rows] == [
        ("Request made", "Success", "Password and backup code"),
        ("Login", "Success", "Smartcard (demo card)"),
        ("Login", "Failure", "Password"),
    ]
    assert _cells(rows) & set(RAW_CODES) == set()


def test_audit_csv_exports_labels_and_keeps_the_action_code_apart(maker, recorded):
    response = maker.get(reverse("dms:audit-csv"), {"user": "B10000U01"})
    content = b"".join(response.streaming_content).decode("utf-8").removeprefix("\ufeff")
    rows = list(csv.reader(io.StringIO(content)))
    assert rows[0][-1] == "Action code"
    body = {(r[1], r[2], r[6]): r for r in rows[1:]}
    failed = body[("Login", "Failure", "Password")]
    assert failed[5] == "Online Functions"
    assert failed[8] == "Wrong login ID or password"
    assert body[("Request made", "Success", "Password and backup code")][5] == (
        "Security Management Functions"
    )
    assert body[("Login", "Success", "Smartcard (demo card)")][5] == "online,reports"
    read = {cell for row in rows[1:] for cell in row[:-1]}
    assert read & set(RAW_CODES) == set()
    assert [r[-1] for r in rows[1:]] == ["login", "login", "request_made"]


def test_audit_csv_in_chinese(maker, recorded, settings):
    maker.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hant"
    response = maker.get(reverse("dms:audit-csv"), {"user": "B10000U01"})
    content = b"".join(response.streaming_content).decode("utf-8").removeprefix("\ufeff")
    rows = list(csv.reader(io.StringIO(content)))
    assert rows[0][:3] == ["時間", "操作", "結果"]
    assert "密碼及後備代碼" in {row[6] for row in rows[1:]}
