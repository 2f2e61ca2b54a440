"""The DMS's tenant-scoped lookups: another firm's object answers 404, whether it exists or not."""

from __future__ import annotations

from django.http import Http404, HttpRequest

from dms.models import BulkEmailBatch, ChangeRequest
from participants.access import request_participant
from participants.models import User


def get_user_for_da(request: HttpRequest, user_id: int) -> User:
    """Return a user of the DA's own firm; any other answers 404, whether it exists or not."""
    user = (
        User.objects.for_participant(request_participant(request))
        .select_related("participant__terminal__programme", "email_registered_by")
        .filter(pk=user_id)
        .first()
    )
    if user is None:
        raise Http404
    return user


def get_request_for_da(request: HttpRequest, request_id: int) -> ChangeRequest:
    """Return a request of the DA's own firm; any other answers 404."""
    change = (
        ChangeRequest.objects.for_participant(request_participant(request))
        .select_related("maker", "checker", "target", "participant")
        .filter(pk=request_id)
        .first()
    )
    if change is None:
        raise Http404
    return change


def get_batch_for_da(request: HttpRequest, batch_id: int) -> BulkEmailBatch:
    """Return a bulk registration of the DA's own firm, without its file; any other answers 404."""
    batch = (
        BulkEmailBatch.objects.filter(participant=request_participant(request), pk=batch_id)
        .select_related("maker", "change_request")
        .defer("source")
        .first()
    )
    if batch is None:
        raise Http404
    return batch
