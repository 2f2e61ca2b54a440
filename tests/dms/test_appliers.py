"""The approval table: one applier for each kind of request a DA can make."""

from __future__ import annotations

import pytest

from dms.appliers import APPLIERS
from dms.models import ChangeRequest, RequestKind, RequestStatus
from dms.services import request_approve, request_make

pytestmark = pytest.mark.django_db


def test_every_kind_of_request_has_an_applier():
    assert set(APPLIERS) == set(RequestKind.values)


def test_an_approval_that_cannot_apply_returns_why_after_recording_it(
    maker_da, checker_da, user, django_capture_on_commit_callbacks
):
    change = request_make(kind=RequestKind.USER_SUSPEND, acting_user=maker_da, target=user)
    user.status = "suspended"
    user.save(update_fields=["status"])
    with django_capture_on_commit_callbacks(execute=True):
        outcome = request_approve(change=change, acting_user=checker_da)
    assert not outcome.applied
    assert outcome.reason == "The user is already suspended."
    change.refresh_from_db()
    assert (change.status, change.reason) == (RequestStatus.OUTDATED, outcome.reason)


def test_an_approval_that_applies_says_so(maker_da, checker_da, user):
    change = request_make(kind=RequestKind.USER_SUSPEND, acting_user=maker_da, target=user)
    outcome = request_approve(change=change, acting_user=checker_da)
    assert outcome.applied and outcome.reason == ""
    assert ChangeRequest.objects.get(pk=change.pk).status == RequestStatus.APPROVED
    user.refresh_from_db()
    assert user.status == "suspended"
