"""DMS pages for connectivity-test events: the firm's registration and what to do in each session.

Registering is a DA's own act for its firm: it takes effect at once, with no checker (the
circular asks firms to register themselves, and withdrawing undoes it up to the deadline), and
the service writes the audit row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from django.contrib import messages
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.shortcuts import render
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from dms.views import SAFE_METHODS, _acting, dms_required
from migration import connectivity
from migration.connectivity import ConnectivityError
from migration.models import ConnectivityEvent, ConnectivitySession, TestEntry
from participants.access import request_participant
from participants.models import Participant, Scope

# The users' OTP entries, in the circular's order; the DAs' is OTP_DMS.
USER_OTP_ENTRIES = (TestEntry.OTP_ONLINE, TestEntry.OTP_REPORTS)


@dataclasses.dataclass(frozen=True)
class Procedure:
    """What one kind of person does through one kind of login entry in a session."""

    title: str
    steps: list[str]


@dataclasses.dataclass(frozen=True)
class SessionPlan:
    session: ConnectivitySession
    procedures: list[Procedure]


@dataclasses.dataclass(frozen=True)
class _Landings:
    """Where the steps start, and the day of the test."""

    day: dt.date
    terminal: str
    functions_url: str
    dms_url: str


def _event_for_da(participant: Participant, event_id: int) -> ConnectivityEvent:
    """The published event of the DA's terminal; any other answers 404, like a missing one."""
    event = connectivity.published_event_for_firm(event_id, participant)
    if event is None:
        raise Http404
    return event


def _click(entries: list[TestEntry]) -> str:
    if len(entries) == 1:
        return _("Click “%(entry)s”.") % {"entry": entries[0].label}
    return _("Click “%(first)s” or “%(second)s”.") % {
        "first": entries[0].label,
        "second": entries[1].label,
    }


def _done(place: str) -> list[str]:
    """The last steps, in CCASS, CCMS or DMS."""
    return [
        _(
            "Once you have logged in to %(place)s, “Function not available” is displayed: the "
            "connectivity check is complete."
        )
        % {"place": place},
        _("Log out from %(place)s.") % {"place": place},
    ]


def _procedures(
    session: ConnectivitySession, earlier: list[ConnectivitySession], landings: _Landings
) -> list[Procedure]:
    """The circular's steps for each login entry the session opens."""
    opens = {TestEntry(entry) for entry in session.entries or [] if entry in TestEntry.values}
    open_functions = _("Open the %(terminal)s landing page: %(url)s") % {
        "terminal": landings.terminal,
        "url": landings.functions_url,
    }
    open_dms = _("Open the Security Management Functions (DMS) landing page: %(url)s") % {
        "url": landings.dms_url
    }
    # Changes of a session carried forward hold in the next; the others are undone at its end.
    kept = [s for s in earlier if s.carried_forward]
    if kept:
        card_password = _(
            "Log in with your production smartcard and the same password you used in %(session)s."
        ) % {"session": kept[-1].name}
    else:
        day_before = landings.day - dt.timedelta(days=1)
        card_password = _(
            "Log in with your production smartcard and the password you used on %(day)s, the "
            "day before the test."
        ) % {"day": formats.date_format(day_before, "DATE_FORMAT")}
    set_up_in = [s for s in kept if s.opens(TestEntry.INITIATION)]
    if set_up_in:
        otp_password = _(
            "Log in with your user ID, the password you set up in %(session)s, and an OTP."
        ) % {"session": set_up_in[-1].name}
    else:
        otp_password = _("Log in with your user ID, your password and an OTP.")
    set_up = _(
        "If you have not set up 2FA yet, set up your password and OTP channel through the link "
        "in your activation email."
    )
    log_in_set_up = _("Log in with your user ID, the password you set up, and an OTP.")
    done_functions = _done(landings.terminal)
    done_dms = _done("DMS")

    procedures: list[Procedure] = []
    if TestEntry.SMARTCARD_FUNCTIONS in opens:
        procedures.append(
            Procedure(
                _("By smartcard (users)"),
                [open_functions, _click([TestEntry.SMARTCARD_FUNCTIONS]), card_password]
                + done_functions,
            )
        )
    if TestEntry.SMARTCARD_DMS in opens:
        procedures.append(
            Procedure(
                _("By smartcard (DAs)"),
                [open_dms, _click([TestEntry.SMARTCARD_DMS]), card_password] + done_dms,
            )
        )
    user_otp = [entry for entry in USER_OTP_ENTRIES if entry in opens]
    if TestEntry.INITIATION in opens:
        if user_otp:
            procedures.append(
                Procedure(
                    _("By 2FA, initiation of 2FA (users)"),
                    [open_functions, _click(user_otp), set_up, log_in_set_up] + done_functions,
                )
            )
        if TestEntry.OTP_DMS in opens:
            procedures.append(
                Procedure(
                    _("By 2FA, initiation of 2FA (DAs)"),
                    [open_dms, _click([TestEntry.OTP_DMS]), set_up, log_in_set_up] + done_dms,
                )
            )
    else:
        if user_otp:
            procedures.append(
                Procedure(
                    _("By 2FA (users)"),
                    [open_functions, _click(user_otp), otp_password] + done_functions,
                )
            )
        if TestEntry.OTP_DMS in opens:
            procedures.append(
                Procedure(
                    _("By 2FA (DAs)"),
                    [open_dms, _click([TestEntry.OTP_DMS]), otp_password] + done_dms,
                )
            )
    return procedures


def _plans(request: HttpRequest, event: ConnectivityEvent, terminal: str) -> list[SessionPlan]:
    landings = _Landings(
        day=event.day,
        terminal=terminal,
        functions_url=request.build_absolute_uri(reverse("authn:landing")),
        dms_url=request.build_absolute_uri(reverse("authn:dms-landing")),
    )
    sessions = list(event.sessions.all())
    return [
        SessionPlan(session, _procedures(session, sessions[:index], landings))
        for index, session in enumerate(sessions)
    ]


@dms_required
@require_safe
def event_list(request: HttpRequest) -> HttpResponse:
    participant = request_participant(request)
    events = list(connectivity.published_events(participant.terminal))
    registrations = connectivity.firm_registrations(participant, events)
    now = timezone.now()
    return render(
        request,
        "dms/events.html",
        {
            "participant": participant,
            "rows": [
                (event, registrations.get(event.pk), event.registration_open(now))
                for event in events
            ],
        },
    )


@dms_required
def event_detail(request: HttpRequest, event_id: int) -> HttpResponse:
    participant = request_participant(request)
    event = _event_for_da(participant, event_id)
    if request.method not in SAFE_METHODS:
        return HttpResponseNotAllowed(SAFE_METHODS)
    scopes = dict(Scope.choices)
    return render(
        request,
        "dms/event_detail.html",
        {
            "participant": participant,
            "event": event,
            "registration": connectivity.firm_registrations(participant, [event]).get(event.pk),
            "open": event.registration_open(timezone.now()),
            "plans": _plans(request, event, participant.terminal.code),
            "checks": [
                (check, scopes.get(check.scope, check.scope))
                for check in connectivity.event_checks(event, participant)
            ],
        },
    )


@dms_required
def event_register(request: HttpRequest, event_id: int) -> HttpResponse:
    """Register the DA's firm for the event: at once, no checker; the service audits it."""
    participant = request_participant(request)
    event = _event_for_da(participant, event_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        connectivity.registration_register(
            event_id=event.pk, participant=participant, acting_user=_acting(request)
        )
    except ConnectivityEvent.DoesNotExist:  # unpublished since the lookup
        raise Http404 from None
    except ConnectivityError as refused:
        messages.error(request, str(refused))
    else:
        messages.success(request, _("Your firm is registered for the connectivity test."))
    return HttpResponseRedirect(reverse("dms:event-detail", args=[event.pk]))


@dms_required
def event_withdraw(request: HttpRequest, event_id: int) -> HttpResponse:
    """Withdraw the DA's firm from the event: at once, no checker; the service audits it."""
    participant = request_participant(request)
    event = _event_for_da(participant, event_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        withdrawn = connectivity.registration_withdraw(
            event_id=event.pk, participant=participant, acting_user=_acting(request)
        )
    except ConnectivityEvent.DoesNotExist:
        raise Http404 from None
    except ConnectivityError as refused:
        messages.error(request, str(refused))
    else:
        if withdrawn:
            messages.success(
                request, _("Your firm's registration for the connectivity test is withdrawn.")
            )
        else:
            messages.info(request, _("Your firm was not registered for the connectivity test."))
    return HttpResponseRedirect(reverse("dms:event-detail", args=[event.pk]))
