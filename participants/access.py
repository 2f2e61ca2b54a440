"""Tenant-scoped lookups: another participant's object is answered 404, never 403."""

from __future__ import annotations

from django.http import Http404, HttpRequest

from participants.models import ChangeRequest, Participant, ReportFile, User


def request_participant(request: HttpRequest) -> Participant:
    user = request.user
    if not isinstance(user, User) or user.participant is None:
        raise Http404
    return user.participant


def get_report_for_user(request: HttpRequest, report_id: int) -> ReportFile:
    report = (
        ReportFile.objects.for_participant(request_participant(request))
        .filter(pk=report_id)
        .first()
    )
    if report is None:
        raise Http404
    return report


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
    change = (
        ChangeRequest.objects.for_participant(request_participant(request))
        .select_related("maker", "checker", "target", "participant")
        .filter(pk=request_id)
        .first()
    )
    if change is None:
        raise Http404
    return change
