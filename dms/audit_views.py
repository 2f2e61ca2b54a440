"""The firm's audit trail for its DAs: pages read by cursor, and its CSV, streamed or in the
background when too large to stream inside the app server's timeout."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from audit import exports
from audit.models import AuditExport
from audit.selectors import NEWEST_FIRST, audit_trail
from common.csv_export import csv_stream
from common.keyset import keyset_page
from dms.forms import AuditFilterForm
from dms.views import PAGE_SIZE, _acting, dms_required, progress_response
from participants.access import request_participant

# The exports listed on the audit page: the latest few.
RECENT_EXPORTS = 5


def _export_for_da(request: HttpRequest, export_id: int) -> AuditExport:
    """Return an export of the DA's own firm; any other answers 404, whether it exists or not."""
    export = (
        AuditExport.objects.filter(participant=request_participant(request), pk=export_id)
        .select_related("requested_by")
        .first()
    )
    if export is None:
        raise Http404
    return export


@dms_required
@require_safe
def audit_list(request: HttpRequest) -> HttpResponse:
    participant = request_participant(request)
    form = AuditFilterForm(request.GET or None)
    trail = audit_trail(participant=participant, filters=form.filters())
    # No count: a firm's trail grows to millions of rows, and counting them on every page
    # would cost more than the page. The pages are newer and older from a cursor.
    page = keyset_page(
        trail.events.select_related("actor"),
        order=NEWEST_FIRST,
        params=request.GET,
        size=PAGE_SIZE,
        branches=trail.branches,
    )
    query = request.GET.copy()
    for key in ("after", "before", "page"):
        query.pop(key, None)
    return render(
        request,
        "dms/audit_list.html",
        {
            "page": page,
            "form": form,
            "query": query.urlencode(),
            "exports": AuditExport.objects.filter(participant=participant).select_related(
                "requested_by"
            )[:RECENT_EXPORTS],
        },
    )


@dms_required
@require_safe
def audit_csv(request: HttpRequest) -> HttpResponseBase:
    participant = request_participant(request)
    filters = AuditFilterForm(request.GET or None).filters()
    up_to_id = exports.newest_id()
    rows = exports.export_rows(participant=participant, filters=filters, up_to_id=up_to_id)
    limit = settings.AUDIT_EXPORT_STREAM_ROWS
    # Counted no further than the limit: enough to know it is too large to stream.
    counted = exports.count_at_most(rows, limit)
    language = translation.get_language() or settings.LANGUAGE_CODE
    if counted > limit:
        if request.method == "HEAD":
            # Asking what the link would answer queues nothing.
            return HttpResponse(status=202)
        export = exports.audit_export_request(
            participant=participant,
            acting_user=_acting(request),
            filters=filters,
            language=language,
            up_to_id=up_to_id,
            rows_expected=counted,
        )
        messages.info(
            request,
            _(
                "The export has more than %(limit)s rows: it is being written as a file. "
                "Download it from this page when it is ready."
            )
            % {"limit": f"{limit:,}"},
        )
        return HttpResponseRedirect(reverse("dms:audit-export", args=[export.pk]))
    return csv_stream(exports.stream(rows, language=language), filename="audit-trail.csv")


@dms_required
def audit_export(request: HttpRequest, export_id: int) -> HttpResponse:
    export = _export_for_da(request, export_id)
    if request.method == "POST":
        if exports.can_retry(export):
            exports.audit_export_retry(export=export, acting_user=_acting(request))
            messages.info(request, _("The export is being written again."))
        return HttpResponseRedirect(reverse("dms:audit-export", args=[export.pk]))
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD", "POST"])
    return render(
        request,
        "dms/audit_export.html",
        {
            "export": export,
            "stalled": exports.is_stalled(export),
            "can_retry": exports.can_retry(export),
        },
    )


@dms_required
@require_safe
def audit_export_progress(request: HttpRequest, export_id: int) -> JsonResponse:
    export = _export_for_da(request, export_id)
    return progress_response(
        export,
        processed=export.rows_written,
        total=export.rows_expected,
        done=not export.is_pending or exports.is_stalled(export),
    )


@dms_required
@require_safe
def audit_export_download(request: HttpRequest, export_id: int) -> StreamingHttpResponse:
    export = _export_for_da(request, export_id)
    path = exports.export_path(export)
    if not export.is_done or path is None or not path.is_file():
        raise Http404
    return FileResponse(
        path.open("rb"),
        as_attachment=True,
        filename=f"audit-trail-{export.pk}.csv",
        content_type="text/csv; charset=utf-8",
    )
