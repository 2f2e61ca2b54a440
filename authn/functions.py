"""The pages a participant's login is for: Online Functions and Overnight Report Download.

(The Security Management Functions are the `dms` app.)
"""

from __future__ import annotations

from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import render

from audit.models import AuditAction, Outcome
from audit.services import audit_record
from authn import sessions
from authn.decorators import scope_required
from participants.access import get_report_for_user, request_participant
from participants.models import ReportFile, Scope


@scope_required(Scope.ONLINE)
def online_home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "authn/online_home.html",
        {"participant": request_participant(request), "method": sessions.session_method(request)},
    )


@scope_required(Scope.REPORTS)
def report_list(request: HttpRequest) -> HttpResponse:
    participant = request_participant(request)
    reports = ReportFile.objects.for_participant(participant)
    return render(
        request, "authn/report_list.html", {"participant": participant, "reports": reports}
    )


@scope_required(Scope.REPORTS)
def report_download(request: HttpRequest, report_id: int) -> FileResponse:
    report = get_report_for_user(request, report_id)
    audit_record(
        action=AuditAction.REPORT_DOWNLOAD,
        outcome=Outcome.SUCCESS,
        request=request,
        user=request.user,  # type: ignore[arg-type]
        participant=report.participant,
        scope=Scope.REPORTS,
        method=sessions.session_method(request),
        detail={"report": report.pk, "title": report.title},
    )
    return FileResponse(
        report.file.open("rb"),
        as_attachment=True,
        filename=(report.file.name or "report").rsplit("/", 1)[-1],
    )
