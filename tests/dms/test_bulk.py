"""Bulk email registration: check every row, preview, submit, approve all or nothing."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from authn.activation import activation_send
from dms import bulk
from dms.models import (
    BulkEmailBatch,
    BulkEmailRow,
    BulkStatus,
    ChangeRequest,
    RequestStatus,
)
from dms.refusals import RequestRefused
from dms.selectors import attach_user_flags
from dms.services import request_approve
from migration.models import Phase, Programme
from outbox.models import OutboxEmail
from participants.models import User, UserStatus
from tests import factories
from tests.helpers import activation_link, begin_setup, open_link
from tests.test_worker import live_worker  # noqa: F401 - the live Celery worker fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(firm, maker_da, checker_da):
    """Three users of the firm: one with an email, two without."""
    return [
        factories.UserFactory(participant=firm, login_id="B10000U11", email="old@firm.example"),
        factories.UserFactory(participant=firm, login_id="B10000U12", email=""),
        factories.UserFactory(participant=firm, login_id="B10000U13", email=""),
    ]


def upload(maker, content: bytes, filename: str = "emails.csv") -> BulkEmailBatch:
    batch = bulk.bulk_upload(acting_user=maker, filename=filename, raw=content)
    return bulk.bulk_check(batch_id=batch.pk)


def outcomes(batch: BulkEmailBatch) -> dict[str, tuple[str, str]]:
    return {
        row.login_id: (row.outcome, row.reason) for row in BulkEmailRow.objects.filter(batch=batch)
    }


def test_preview_sorts_rows_into_register_change_unchanged(maker_da, people):
    content = "login_id,email\nB10000U11,new@firm.example\nB10000U12,u12@firm.example\nB10000U13,\n"
    batch = upload(maker_da, content.encode())
    rows = outcomes(batch)
    assert rows["B10000U11"] == ("change", "")
    assert rows["B10000U12"] == ("register", "")
    assert rows["B10000U13"] == ("refused", "malformed")
    assert (batch.register_count, batch.change_count, batch.refused_count) == (1, 1, 1)
    assert batch.status == BulkStatus.READY
    people[0].refresh_from_db()
    assert people[0].email == "old@firm.example"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("NOSUCHUSER,a@firm.example", "unknown_login_id"),
        # Another firm's user reads exactly as an unknown ID: a file probes nothing.
        ("B20000U01,a@firm.example", "unknown_login_id"),
        ("B10000U12,not-an-email", "invalid_email"),
        ("B10000DA1,me@firm.example", "own_row"),
        ("B10000DA2,checker@firm.example", "da_not_open"),
        ("B10000U12,a@firm.example,extra", "malformed"),
    ],
)
def test_each_refusal_reason(maker_da, checker_da, people, other_firm_user, line, reason):
    batch = upload(maker_da, f"{line}\n".encode())
    row = BulkEmailRow.objects.get(batch=batch)
    assert (row.outcome, row.reason) == ("refused", reason)


def test_same_row_twice_is_refused_as_duplicate(maker_da, people):
    batch = upload(maker_da, b"B10000U12,a@firm.example\nb10000u12,b@firm.example\n")
    assert {row.reason for row in batch.rows.all()} == {"duplicate"}


def test_da_rows_pass_once_da_email_registration_is_open(maker_da, checker_da, people):
    Programme.objects.filter(terminal__code="CCASS").update(da_email_registration_open=True)
    batch = upload(maker_da, b"B10000DA2,checker@firm.example\n")
    assert outcomes(batch)["B10000DA2"][0] == "change"


def test_too_many_rows(maker_da, people, settings):
    settings.BULK_MAX_ROWS = 2
    batch = upload(
        maker_da, b"B10000U11,a@firm.example\nB10000U12,b@firm.example\nB10000U13,c@firm.example\n"
    )
    assert outcomes(batch)["B10000U13"] == ("refused", "too_many_rows")


def test_bom_file_is_read(maker_da, people):
    batch = upload(maker_da, "\ufefflogin id,email\nB10000U12,u12@firm.example\n".encode())
    assert outcomes(batch) == {"B10000U12": ("register", "")}


def test_tab_separated_file_is_read(maker_da, people):
    batch = upload(maker_da, b"B10000U12\tu12@firm.example\r\nB10000U13\tu13@firm.example\r\n")
    assert batch.register_count == 2


def test_wrong_encoding_is_refused_whole(maker_da, people):
    with pytest.raises(RequestRefused, match="not UTF-8"):
        bulk.bulk_upload(
            acting_user=maker_da, filename="x.csv", raw="B10000U12,é\n".encode("latin-1")
        )
    assert not BulkEmailBatch.objects.exists()


def test_checker_cannot_upload(checker_da, people):
    from dms.refusals import RequestForbidden

    with pytest.raises(RequestForbidden):
        bulk.bulk_upload(
            acting_user=checker_da, filename="x.csv", raw=b"B10000U12,a@firm.example\n"
        )


def _submit_and_approve(maker, checker, batch):
    change = bulk.bulk_submit(batch=batch, acting_user=maker)
    return request_approve(change=change, acting_user=checker)


def test_nothing_applies_until_a_checker_approves(
    maker_da, checker_da, people, mailoutbox, django_capture_on_commit_callbacks
):
    batch = upload(maker_da, b"B10000U11,new@firm.example\nB10000U12,u12@firm.example\n")
    change = bulk.bulk_submit(batch=batch, acting_user=maker_da)
    assert User.objects.get(login_id="B10000U12").email == ""
    with pytest.raises(RequestRefused):
        request_approve(change=change, acting_user=maker_da)
    with django_capture_on_commit_callbacks(execute=True):
        request_approve(change=change, acting_user=checker_da)
    changed, registered = (
        User.objects.get(login_id="B10000U11"),
        User.objects.get(login_id="B10000U12"),
    )
    assert (changed.email, registered.email) == ("new@firm.example", "u12@firm.example")
    assert registered.email_registered_by == maker_da
    batch.refresh_from_db()
    assert batch.status == BulkStatus.APPLIED
    assert AuditEvent.objects.filter(action="email_registered", user=registered).exists()
    # Old and new addresses of the changed user, and the new one of the registered user.
    assert sorted(
        address for mail in mailoutbox for address in mail.to if "Your designated" in mail.subject
    ) == [
        "new@firm.example",
        "old@firm.example",
        "u12@firm.example",
    ]


def test_apply_is_all_or_nothing(maker_da, checker_da, people, monkeypatch):
    batch = upload(maker_da, b"B10000U11,new@firm.example\nB10000U12,u12@firm.example\n")
    change = bulk.bulk_submit(batch=batch, acting_user=maker_da)

    def fail(**kwargs):
        raise RuntimeError("disk full")

    # The emails are already updated when the audit rows are written: fail there.
    monkeypatch.setattr(bulk, "audit_record_many", fail)
    with pytest.raises(RuntimeError):
        request_approve(change=change, acting_user=checker_da)
    assert User.objects.get(login_id="B10000U11").email == "old@firm.example"
    assert User.objects.get(login_id="B10000U12").email == ""
    change.refresh_from_db()
    assert change.status == RequestStatus.PENDING


def test_batch_whose_users_changed_is_refused_whole(maker_da, checker_da, people):
    batch = upload(maker_da, b"B10000U11,new@firm.example\nB10000U12,u12@firm.example\n")
    change = bulk.bulk_submit(batch=batch, acting_user=maker_da)
    User.objects.filter(login_id="B10000U12").update(version=99)
    outcome = request_approve(change=change, acting_user=checker_da)
    assert not outcome.applied
    assert "changed after the file was checked" in outcome.reason
    assert User.objects.get(login_id="B10000U11").email == "old@firm.example"
    change.refresh_from_db()
    batch.refresh_from_db()
    assert change.status == RequestStatus.OUTDATED
    assert batch.status == BulkStatus.FAILED


def test_rejection_marks_the_batch(maker_da, checker_da, people):
    from dms.services import request_reject

    batch = upload(maker_da, b"B10000U12,u12@firm.example\n")
    change = bulk.bulk_submit(batch=batch, acting_user=maker_da)
    request_reject(change=change, acting_user=checker_da, reason="wrong file")
    batch.refresh_from_db()
    assert batch.status == BulkStatus.REJECTED
    assert User.objects.get(login_id="B10000U12").email == ""


def _bulk_users(firm, count: int) -> bytes:
    User.objects.bulk_create(
        User(login_id=f"BULK{n:06d}", participant=firm, password="!") for n in range(count)
    )
    return "".join(f"BULK{n:06d},bulk{n}@firm.example\n" for n in range(count)).encode()


def _apply_queries(maker, checker, content: bytes) -> int:
    batch = upload(maker, content)
    change = bulk.bulk_submit(batch=batch, acting_user=maker)
    with CaptureQueriesContext(connection) as queries:
        request_approve(change=change, acting_user=checker)
    return len(queries)


def test_bulk_apply_query_count_does_not_grow_with_rows(maker_da, checker_da, firm):
    small = _apply_queries(maker_da, checker_da, _bulk_users(firm, 10))
    large_firm = factories.ParticipantFactory()
    large_maker = factories.DAFactory(participant=large_firm)
    large_checker = factories.DAFactory(participant=large_firm, da_duty="checker")
    large = _apply_queries(large_maker, large_checker, _bulk_users_for(large_firm, 1000))
    assert small == large
    assert User.objects.filter(participant=large_firm, email__startswith="bulk").count() == 1000


def _bulk_users_for(firm, count: int) -> bytes:
    User.objects.bulk_create(
        User(login_id=f"{firm.participant_id}X{n:05d}", participant=firm, password="!")
        for n in range(count)
    )
    return "".join(
        f"{firm.participant_id}X{n:05d},bulk{n}@firm.example\n" for n in range(count)
    ).encode()


# Through the pages ------------------------------------------------------------------------


def test_maker_uploads_previews_and_submits_through_the_pages(
    client, maker_da, people, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.helpers import log_in_with_app

    log_in_with_app(client, maker_da, scope="dms")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("dms:bulk-upload"),
            {
                "file": SimpleUploadedFile(
                    "emails.csv", b"B10000U12,u12@firm.example\nNOSUCH,x@firm.example\n"
                )
            },
        )
    batch = BulkEmailBatch.objects.get()
    assert response["Location"] == reverse("dms:bulk-detail", args=[batch.pk])
    page = client.get(response["Location"]).content.decode()
    assert "1 will be registered" in page and "1 refused" in page
    assert "Unknown login ID" in page
    progress = client.get(reverse("dms:bulk-progress", args=[batch.pk])).json()
    assert progress["done"] and progress["percent"] == 100
    result = b"".join(client.get(reverse("dms:bulk-result", args=[batch.pk])).streaming_content)
    assert result.decode("utf-8-sig").splitlines()[0] == "line,login_id,email,outcome,reason"
    submitted = client.post(reverse("dms:bulk-submit", args=[batch.pk]))
    change = ChangeRequest.objects.get()
    assert submitted["Location"] == reverse("dms:request-detail", args=[change.pk])


def test_other_firms_batch_is_404(client, other_firm_da, maker_da, people):
    from tests.helpers import log_in_with_app

    batch = upload(maker_da, b"B10000U12,u12@firm.example\n")
    log_in_with_app(client, other_firm_da, scope="dms")
    for name in ("dms:bulk-detail", "dms:bulk-progress", "dms:bulk-result"):
        assert client.get(reverse(name, args=[batch.pk])).status_code == 404
    assert client.post(reverse("dms:bulk-submit", args=[batch.pk])).status_code == 404
    batch.refresh_from_db()
    assert batch.status == BulkStatus.READY


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_twenty_thousand_rows_are_checked_by_the_worker(maker_da, firm, request):
    worker = request.getfixturevalue("live_worker")
    content = _bulk_users(firm, 20_000)
    batch = bulk.bulk_upload(acting_user=maker_da, filename="big.csv", raw=content)
    deadline = time.monotonic() + 120
    seen_progress = set()
    while time.monotonic() < deadline:
        batch.refresh_from_db()
        seen_progress.add(batch.processed_rows)
        if batch.status != BulkStatus.VALIDATING:
            break
        worker.check_alive()
        time.sleep(0.2)
    assert batch.status == BulkStatus.READY, worker.output()
    assert batch.register_count == 20_000
    assert len(seen_progress) > 2


def test_result_csv_neutralises_formulas_from_the_file(client, maker_da, people):
    from tests.helpers import log_in_with_app

    batch = upload(maker_da, b'=HYPERLINK("http://evil.example"),x@firm.example\n')
    log_in_with_app(client, maker_da, scope="dms")
    body = b"".join(client.get(reverse("dms:bulk-result", args=[batch.pk])).streaming_content)
    row = body.decode("utf-8-sig").splitlines()[1]
    assert row.startswith("2,\"'=HYPERLINK") or row.startswith("1,\"'=HYPERLINK")


def test_first_emails_bring_activation_emails_in_parallel_run(
    maker_da, checker_da, people, mailoutbox, django_capture_on_commit_callbacks
):
    batch = upload(maker_da, b"B10000U11,new@firm.example\nB10000U12,u12@firm.example\n")
    change = bulk.bulk_submit(batch=batch, acting_user=maker_da)
    with django_capture_on_commit_callbacks(execute=True):
        request_approve(change=change, acting_user=checker_da)
    activations = [mail for mail in mailoutbox if "/activate/" in mail.body]
    # Neither user has set up 2FA: the registered one and the changed one both get a link.
    assert sorted(mail.to for mail in activations) == [["new@firm.example"], ["u12@firm.example"]]


def _activation_mails(mailoutbox, address: str) -> list:
    return [mail for mail in mailoutbox if "/activate/" in mail.body and mail.to == [address]]


def _activation_sent(user) -> bool:
    """Whether the users list shows "Activation sent" for the user."""
    fresh = User.objects.get(pk=user.pk)
    attach_user_flags([fresh])
    return fresh.activation_open


def test_a_changed_email_retires_the_old_link_and_the_new_address_gets_one(
    maker_da, checker_da, people, firm, mailoutbox, django_capture_on_commit_callbacks
):
    changed = people[0]
    with django_capture_on_commit_callbacks(execute=True):
        activation_send(user=changed, acting_user=None)
    (sent,) = _activation_mails(mailoutbox, "old@firm.example")
    old_link = activation_link(sent.body)
    # A second one to the old address is still waiting in the outbox when the file applies.
    activation_send(user=changed, acting_user=None)
    assert _activation_sent(changed)

    batch = upload(maker_da, b"B10000U11,new@firm.example\nB10000U12,u12@firm.example\n")
    change = bulk.bulk_submit(batch=batch, acting_user=maker_da)
    with django_capture_on_commit_callbacks(execute=False) as relay:
        request_approve(change=change, acting_user=checker_da)
    # Before the new email goes: the old link no longer counts as "Activation sent".
    assert not _activation_sent(changed)
    assert open_link(Client(), old_link).status_code == 410
    for callback in relay:
        callback()

    assert open_link(Client(), old_link).status_code == 410
    assert begin_setup(Client(), old_link).status_code == 410
    # The waiting email never went to the old address; the new address has a working link.
    assert _activation_mails(mailoutbox, "old@firm.example") == [sent]
    (new,) = _activation_mails(mailoutbox, "new@firm.example")
    assert _activation_sent(changed)
    assert begin_setup(Client(), activation_link(new.body))["Location"] == reverse(
        "authn:setup-password"
    )


def test_a_changed_email_brings_no_link_to_who_is_set_up_or_suspended(
    maker_da, checker_da, people, mailoutbox, django_capture_on_commit_callbacks
):
    ready, away = people[0], people[1]
    User.objects.filter(pk=ready.pk).update(two_factor_ready_at=timezone.now())
    User.objects.filter(pk=away.pk).update(status=UserStatus.SUSPENDED)
    batch = upload(maker_da, b"B10000U11,new@firm.example\nB10000U12,u12@firm.example\n")
    change = bulk.bulk_submit(batch=batch, acting_user=maker_da)
    with django_capture_on_commit_callbacks(execute=True):
        request_approve(change=change, acting_user=checker_da)
    assert [mail for mail in mailoutbox if "/activate/" in mail.body] == []
    assert not OutboxEmail.objects.filter(kind="activation").exists()


def test_a_changed_email_brings_no_link_before_setup_opens(
    maker_da, checker_da, people, mailoutbox, django_capture_on_commit_callbacks
):
    factories.set_phase("CCASS", Phase.EMAIL_REGISTRATION)
    batch = upload(maker_da, b"B10000U11,new@firm.example\n")
    change = bulk.bulk_submit(batch=batch, acting_user=maker_da)
    with django_capture_on_commit_callbacks(execute=True):
        request_approve(change=change, acting_user=checker_da)
    assert User.objects.get(login_id="B10000U11").email == "new@firm.example"
    assert [mail for mail in mailoutbox if "/activate/" in mail.body] == []
