"""Tenant-scoped lookups: another participant's object is answered 404, never 403."""

from __future__ import annotations

from django.http import Http404, HttpRequest

from participants.models import Participant, ReportFile, User


def request_participant(request: HttpRequest) -> Participant:
    """Return the logged-in user's firm; a request without one answers 404."""
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
