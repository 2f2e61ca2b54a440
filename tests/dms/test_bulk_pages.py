"""Bulk registration as the maker sees it: what is offered, and the check's progress."""

from __future__ import annotations

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from dms.models import BulkEmailBatch, BulkStatus


def _upload(maker, content: bytes, capture):
    with capture(execute=True):
        return maker.post(
            reverse("dms:bulk-upload"), {"file": SimpleUploadedFile("emails.csv", content)}
        )


@pytest.mark.django_db
def test_a_file_that_changes_nothing_is_not_offered_to_a_checker(
    maker, user, django_capture_on_commit_callbacks
):
    response = _upload(
        maker,
        f"{user.login_id},{user.email}\nNOSUCH,x@firm.example\n".encode(),
        django_capture_on_commit_callbacks,
    )
    page = maker.get(response["Location"]).content.decode()
    assert "No row of this file would change anything" in page
    assert "Submit to a checker" not in page
    batch = BulkEmailBatch.objects.get()
    refused = maker.post(reverse("dms:bulk-submit", args=[batch.pk]), follow=True)
    assert "No row of this file would change anything." in refused.content.decode()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_without_a_worker_the_file_is_checked_in_the_background(maker, firm, settings):
    from tests import factories

    settings.BULK_CHECK_IN_THREAD = True
    users = [factories.UserFactory(participant=firm, email="") for _ in range(5)]
    content = "".join(f"{u.login_id},{u.login_id.lower()}@new.example\n" for u in users)
    response = maker.post(
        reverse("dms:bulk-upload"), {"file": SimpleUploadedFile("e.csv", content.encode())}
    )
    # The upload answered at once; the page then follows the check until it is done.
    assert response.status_code == 302
    batch = BulkEmailBatch.objects.get()
    progress = reverse("dms:bulk-progress", args=[batch.pk])
    for _ in range(200):
        state = maker.get(progress).json()
        if state["done"]:
            break
        time.sleep(0.05)
    assert state["done"] and state["percent"] == 100
    batch.refresh_from_db()
    assert (batch.status, batch.register_count) == (BulkStatus.READY, 5)
