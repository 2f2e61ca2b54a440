"""A decision's audit row says which request it decided and what that request changes."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from dms import bulk
from dms.models import RequestKind
from dms.services import request_approve, request_make, request_reject

pytestmark = pytest.mark.django_db


def test_an_approved_email_change_records_the_request_and_the_change(maker_da, checker_da, user):
    old = user.email
    change = request_make(
        kind=RequestKind.EMAIL_REGISTER,
        acting_user=maker_da,
        target=user,
        payload={"email": "new.desk@firm.example", "previous_email": old},
    )
    request_approve(change=change, acting_user=checker_da)
    row = AuditEvent.objects.get(action="request_approved")
    assert (row.user, row.actor) == (user, checker_da)
    assert row.detail == {
        "request": change.pk,
        "kind": "email_register",
        "email": "new.desk@firm.example",
        "previous_email": old,
    }


def test_a_rejection_records_what_would_have_changed(maker_da, checker_da, user):
    change = request_make(kind=RequestKind.USER_SUSPEND, acting_user=maker_da, target=user)
    request_reject(change=change, acting_user=checker_da, reason="Not this one")
    row = AuditEvent.objects.get(action="request_rejected")
    assert row.detail == {"request": change.pk, "kind": "user_suspend"}
    assert row.reason == "Not this one"


def test_an_approved_bulk_file_records_the_file_and_its_counts(maker_da, checker_da, user):
    batch = bulk.bulk_check(
        batch_id=bulk.bulk_upload(
            acting_user=maker_da,
            filename="desk.csv",
            raw=f"{user.login_id},d@firm.example\n".encode(),
        ).pk
    )
    change = bulk.bulk_submit(batch=batch, acting_user=maker_da)
    request_approve(change=change, acting_user=checker_da)
    row = AuditEvent.objects.get(action="request_approved")
    assert row.detail == {
        "request": change.pk,
        "kind": "bulk_email",
        "batch": batch.pk,
        "filename": "desk.csv",
        "register": 0,
        "change": 1,
    }


def test_the_audit_trail_page_says_which_request_and_what_changed(
    maker, checker, checker_da, maker_da, user
):
    from django.urls import reverse

    old = user.email
    change = request_make(
        kind=RequestKind.EMAIL_REGISTER,
        acting_user=maker_da,
        target=user,
        payload={"email": "new.desk@firm.example", "previous_email": old},
    )
    request_approve(change=change, acting_user=checker_da)
    page = checker.get(reverse("dms:audit-list")).content.decode()
    assert f"Request {change.pk}: Register or change designated email" in page
    assert f"{old} → new.desk@firm.example" in page
