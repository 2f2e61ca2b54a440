"""Security Management Functions (DMS): a firm's DAs manage its users under maker-checker."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db.models import Count, Q
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
    JsonResponse,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_safe

from authn.decorators import scope_required
from common.idn import review_email
from dms import services
from dms.access import get_request_for_da, get_user_for_da
from dms.forms import (
    EmailRequestForm,
    RejectForm,
    UserCreateForm,
    UserFilterForm,
)
from dms.models import RequestKind, RequestStatus
from dms.refusals import RequestForbidden, RequestRefused
from dms.selectors import (
    lookalike_lines,
    requests_for_dms,
    requests_page_for_dms,
    users_for_dms,
    users_page_for_dms,
)
from migration import phases, readiness
from participants.access import request_participant
from participants.models import Scope, User, normalize_email

dms_required = scope_required(Scope.DMS)

PAGE_SIZE = 50
# A page that only shows something answers other methods 405. A page about one object looks
# the object up first, so that another firm's id answers 404 whatever the method.
SAFE_METHODS = ["GET", "HEAD"]
# The requests a DA files from a user's page; each is one button or one small form.
USER_REQUEST_KINDS = {
    RequestKind.EMAIL_REGISTER,
    RequestKind.USER_SUSPEND,
    RequestKind.USER_RESTORE,
    RequestKind.OTP_RESET,
    RequestKind.ACTIVATION_RESEND,
}


def _acting(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)
    return user


def progress_response(record: Any, *, processed: int, total: int, done: bool) -> JsonResponse:
    """What static/js/progress.js polls for, for work done in the background (a bulk file's
    check, an audit export): a record with a status and a progress_percent, and its counts."""
    return JsonResponse(
        {
            "status": record.status,
            "status_label": record.get_status_display(),
            "processed": processed,
            "total": total,
            "percent": record.progress_percent,
            "done": done,
        }
    )


def _refused(request: HttpRequest, refused: RequestRefused) -> HttpResponse | None:
    """Answer 403 for a role that may not act; otherwise say why and let the view go on."""
    if isinstance(refused, RequestForbidden):
        return render(request, "dms/forbidden.html", {"message": refused.message}, status=403)
    messages.error(request, refused.message)
    return None


def _flag_lookalike(request: HttpRequest, email: str) -> None:
    """Warn the maker of a domain that mixes scripts: it may imitate the real one."""
    reviewed = review_email(email)
    if reviewed.mixed_scripts:
        messages.warning(
            request,
            _(
                "The domain of %(email)s mixes scripts (%(ascii)s): it may imitate another "
                "domain. Check it letter by letter; the checker is shown the same warning."
            )
            % {"email": reviewed.address, "ascii": reviewed.ascii},
        )


@dms_required
@require_safe
def home(request: HttpRequest) -> HttpResponse:
    participant = request_participant(request)
    counts = users_for_dms(participant=participant).aggregate(
        users=Count("pk"),
        needs_email=Count("pk", filter=Q(email="")),
        not_set_up=Count("pk", filter=Q(two_factor_ready_at__isnull=True)),
    )
    pending = requests_for_dms(participant=participant, status=RequestStatus.PENDING).count()
    next_milestone = phases.next_milestones([participant.terminal]).get(participant.terminal_id)
    return render(
        request,
        "dms/home.html",
        {
            "participant": participant,
            "counts": counts,
            "pending": pending,
            "next_milestone": next_milestone,
            "readiness": readiness.firm_readiness(participant=participant),
            "needing_action": readiness.users_needing_action(participant=participant),
        },
    )


@dms_required
@require_safe
def user_list(request: HttpRequest) -> HttpResponse:
    participant = request_participant(request)
    form = UserFilterForm(request.GET or None)
    filter_name = search = ""
    if form.is_valid():
        filter_name = form.cleaned_data["filter"]
        search = form.cleaned_data["q"]
    page = users_page_for_dms(
        participant=participant,
        params=request.GET,
        size=PAGE_SIZE,
        filter_name=filter_name,
        search=search,
    )
    return render(
        request, "dms/user_list.html", {"participant": participant, "form": form, "page": page}
    )


@dms_required
def user_detail(request: HttpRequest, user_id: int) -> HttpResponse:
    target = get_user_for_da(request, user_id)
    if request.method not in SAFE_METHODS:
        return HttpResponseNotAllowed(SAFE_METHODS)
    acting = _acting(request)
    # The user's firm, with its terminal and programme, came with the user (get_user_for_da).
    firm = target.participant
    assert firm is not None
    return render(
        request,
        "dms/user_detail.html",
        {
            "target": target,
            "is_self": target.pk == acting.pk,
            "can_make": acting.is_maker and target.pk != acting.pk,
            "email_form": EmailRequestForm(initial={"email": target.email}),
            "da_email_closed": target.is_da and not phases.da_email_registration_open(firm),
            "launch_at": phases.launch_planned_at(firm.terminal),
            "pending": requests_for_dms(participant=request_participant(request)).filter(
                target=target, status=RequestStatus.PENDING
            ),
        },
    )


@dms_required
def user_request(request: HttpRequest, user_id: int, kind: str) -> HttpResponse:
    """File a request about one user: register/change email, suspend, restore, reset, resend."""
    target = get_user_for_da(request, user_id)
    if kind not in USER_REQUEST_KINDS:
        raise Http404
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    payload: dict[str, Any] = {}
    if kind == RequestKind.EMAIL_REGISTER:
        form = EmailRequestForm(request.POST)
        if not form.is_valid():
            messages.error(request, _("Enter a valid email address."))
            return HttpResponseRedirect(reverse("dms:user-detail", args=[target.pk]))
        payload["email"] = normalize_email(form.cleaned_data["email"])
        payload["previous_email"] = target.email
    try:
        services.request_make(
            kind=kind, acting_user=_acting(request), target=target, payload=payload, request=request
        )
    except RequestRefused as refused:
        response = _refused(request, refused)
        if response is not None:
            return response
    else:
        messages.success(request, _("Request made. It takes effect when a checker approves it."))
        _flag_lookalike(request, payload.get("email", ""))
    return HttpResponseRedirect(reverse("dms:user-detail", args=[target.pk]))


@dms_required
@require_http_methods(["GET", "HEAD", "POST"])
def user_create(request: HttpRequest) -> HttpResponse:
    participant = request_participant(request)
    if not _acting(request).is_maker:
        # The form would only end in a refusal: a checker cannot make requests.
        message = _("Only a maker DA can make requests.")
        return render(request, "dms/forbidden.html", {"message": message}, status=403)
    form = UserCreateForm(request.POST or None, participant=participant)
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        if data.get("email"):
            data["email"] = normalize_email(data["email"])
        try:
            services.request_make(
                kind=RequestKind.USER_CREATE,
                acting_user=_acting(request),
                payload=data,
                request=request,
            )
        except RequestRefused as refused:
            response = _refused(request, refused)
            if response is not None:
                return response
        else:
            messages.success(
                request, _("Request made. It takes effect when a checker approves it.")
            )
            _flag_lookalike(request, data.get("email", ""))
            return HttpResponseRedirect(reverse("dms:request-list"))
    return render(request, "dms/user_create.html", {"participant": participant, "form": form})


@dms_required
@require_safe
def request_list(request: HttpRequest) -> HttpResponse:
    participant = request_participant(request)
    status = request.GET.get("status", RequestStatus.PENDING)
    if status not in RequestStatus.values and status != "all":
        status = RequestStatus.PENDING
    page = requests_page_for_dms(
        participant=participant,
        params=request.GET,
        size=PAGE_SIZE,
        status="" if status == "all" else status,
    )
    return render(
        request,
        "dms/request_list.html",
        {
            "participant": participant,
            "page": page,
            "status": status,
            "statuses": [*RequestStatus.choices, ("all", _("All"))],
        },
    )


@dms_required
def request_detail(request: HttpRequest, request_id: int) -> HttpResponse:
    change = get_request_for_da(request, request_id)
    if request.method not in SAFE_METHODS:
        return HttpResponseNotAllowed(SAFE_METHODS)
    acting = _acting(request)
    return render(
        request,
        "dms/request_detail.html",
        {
            "change": change,
            "can_check": change.is_pending and services.can_check(change, acting),
            "lookalike_lines": lookalike_lines(batch_id=change.payload["batch"])
            if change.kind == RequestKind.BULK_EMAIL and change.payload.get("batch")
            else [],
            "reject_form": RejectForm(),
        },
    )


@dms_required
def request_decide(request: HttpRequest, request_id: int, decision: str) -> HttpResponse:
    change = get_request_for_da(request, request_id)
    if decision not in ("approve", "reject"):
        raise Http404
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        if decision == "approve":
            outcome = services.request_approve(
                change=change, acting_user=_acting(request), request=request
            )
            if outcome.applied:
                messages.success(request, _("Request approved; it has taken effect."))
            else:
                messages.error(request, outcome.reason)
        else:
            form = RejectForm(request.POST)
            reason = form.cleaned_data["reason"] if form.is_valid() else ""
            services.request_reject(
                change=change, acting_user=_acting(request), reason=reason, request=request
            )
            messages.success(request, _("Request rejected."))
    except RequestRefused as refused:
        response = _refused(request, refused)
        if response is not None:
            return response
    return HttpResponseRedirect(reverse("dms:request-detail", args=[change.pk]))
