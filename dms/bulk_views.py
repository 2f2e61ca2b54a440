"""DMS pages for bulk email registration: upload, preview with progress, submit, result CSV."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_safe

from common.csv_export import csv_response
from dms import bulk
from dms.access import get_batch_for_da
from dms.models import BulkEmailBatch, BulkOutcome, BulkStatus
from dms.refusals import RequestRefused
from dms.selectors import lookalike_lines
from dms.views import _acting, _refused, dms_required, progress_response
from participants.access import request_participant

PAGE_SIZE = 100


class UploadForm(forms.Form):
    file = forms.FileField(
        label=gettext_lazy("CSV file: login ID, email"),
        help_text=gettext_lazy(
            "UTF-8, with or without a byte order mark; comma- or tab-separated; a header row "
            "is optional."
        ),
    )


@dms_required
def bulk_upload(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            batch = bulk.bulk_upload(
                acting_user=_acting(request),
                filename=upload.name,
                raw=upload.read(),
                request=request,
            )
        except RequestRefused as refused:
            response = _refused(request, refused)
            if response is not None:
                return response
        else:
            return HttpResponseRedirect(reverse("dms:bulk-detail", args=[batch.pk]))
    batches = (
        BulkEmailBatch.objects.filter(participant=request_participant(request))
        .defer("source")
        .select_related("maker")[:20]
    )
    return render(request, "dms/bulk_upload.html", {"form": form, "batches": batches})


@dms_required
def bulk_detail(request: HttpRequest, batch_id: int) -> HttpResponse:
    batch = get_batch_for_da(request, batch_id)
    show = request.GET.get("show", BulkOutcome.REFUSED)
    if show not in BulkOutcome.values:
        show = BulkOutcome.REFUSED
    rows = Paginator(batch.rows.filter(outcome=show), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "dms/bulk_detail.html",
        {
            "batch": batch,
            "rows": rows,
            "show": show,
            "outcomes": BulkOutcome.choices,
            "lookalike_lines": lookalike_lines(batch_id=batch.pk),
            # A file that would change nothing is not put before a checker.
            "can_submit": batch.status == BulkStatus.READY
            and batch.maker_id == request.user.pk
            and bool(batch.register_count or batch.change_count),
            "changes_nothing": batch.status == BulkStatus.READY
            and not (batch.register_count or batch.change_count),
        },
    )


@dms_required
def bulk_progress(request: HttpRequest, batch_id: int) -> JsonResponse:
    batch = get_batch_for_da(request, batch_id)
    return progress_response(
        batch,
        processed=batch.processed_rows,
        total=batch.total_rows,
        done=batch.status != BulkStatus.VALIDATING,
    )


@dms_required
def bulk_submit(request: HttpRequest, batch_id: int) -> HttpResponse:
    batch = get_batch_for_da(request, batch_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        change = bulk.bulk_submit(batch=batch, acting_user=_acting(request), request=request)
    except RequestRefused as refused:
        response = _refused(request, refused)
        if response is not None:
            return response
        return HttpResponseRedirect(reverse("dms:bulk-detail", args=[batch.pk]))
    messages.success(request, _("Submitted. The emails are registered when a checker approves."))
    return HttpResponseRedirect(reverse("dms:request-detail", args=[change.pk]))


@dms_required
@require_safe
def bulk_result(request: HttpRequest, batch_id: int) -> StreamingHttpResponse:
    batch = get_batch_for_da(request, batch_id)
    return csv_response(bulk.bulk_result_rows(batch), filename=f"bulk-{batch.pk}-result.csv")
