"""Staff's readiness dashboard and connectivity-test results (behind the admin's 2FA:
ccass/urls.py wraps them)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import heapq
import itertools
from collections.abc import Iterator

from django.contrib import admin, messages
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods

from common.csv_export import csv_response
from migration import charts, connectivity, readiness, services
from migration.models import (
    ConnectivityCheck,
    ConnectivityEvent,
    ConnectivityRegistration,
    ConnectivitySession,
)
from participants.models import Participant, Scope, Terminal, User

# Firms per page of the table: the page renders the same whatever the number of firms.
# As the DMS lists: a page a person reads, and a render that stays small beside the query.
PAGE_SIZE = 50

# Sort keys: the table's columns.
SORTS = {
    "firm": lambda row: row.participant.participant_id,
    "readiness": lambda row: row.figures.ready_share,
    "users": lambda row: row.figures.users,
    "with_email": lambda row: row.figures.with_email,
    "set_up": lambda row: row.figures.set_up,
    "need_action": lambda row: row.figures.need_action,
    "ready_on": lambda row: row.forecast.ready_on or dt.date.max,
}


def _chosen(
    request: HttpRequest, rows: list[readiness.FirmReadiness]
) -> list[readiness.FirmReadiness]:
    """The rows the filters keep, in the order asked for (the firms at risk first if none)."""
    if request.GET.get("risk") == "1":
        rows = [row for row in rows if row.forecast.at_risk]
    query = request.GET.get("q", "").strip().casefold()
    if query:
        rows = [
            row
            for row in rows
            if row.participant.participant_id.casefold().startswith(query)
            or query in row.participant.name.casefold()
        ]
    sort = request.GET.get("sort", "")
    key = SORTS.get(sort.lstrip("-"))
    if key is not None:  # otherwise: at risk first, as terminal_readiness gives them
        rows = sorted(rows, key=key, reverse=sort.startswith("-"))
    return rows


def _csv_rows(rows: list[readiness.FirmReadiness]) -> Iterator[list[object]]:
    yield [
        "participant_id",
        "name",
        *readiness.FIGURES,
        "set_up_share",
        "deadline",
        "remaining",
        "pace_per_day",
        "ready_on",
        "at_risk",
    ]
    for row in rows:
        forecast = row.forecast
        yield [
            row.participant.participant_id,
            row.participant.name,
            *row.figures.as_dict().values(),
            f"{row.figures.ready_share:.3f}",
            forecast.deadline.kind.value if forecast.deadline else "",
            forecast.remaining,
            "" if forecast.pace_per_day is None else f"{forecast.pace_per_day:.2f}",
            forecast.ready_on.isoformat() if forecast.ready_on else "",
            "yes" if forecast.at_risk else "no",
        ]


def _remind(
    request: HttpRequest, terminal: Terminal, rows: list[readiness.FirmReadiness]
) -> HttpResponseBase:
    """Send the reminder staff asked for: to the firms ticked, or to every firm at risk."""
    if request.POST.get("which") == "at_risk":
        chosen = [row.participant for row in rows if row.forecast.at_risk]
    else:
        ticked = set(request.POST.getlist("firm"))
        chosen = [row.participant for row in rows if row.participant.participant_id in ticked]
    if not chosen:
        messages.warning(request, _("Choose the firms to remind first."))
    else:
        emails = services.reminders_send(participants=chosen, acting_user=request.user)  # type: ignore[arg-type]
        messages.success(
            request,
            ngettext(
                "A reminder is on its way to the DAs of %(firms)d firm (%(emails)d emails).",
                "A reminder is on its way to the DAs of %(firms)d firms (%(emails)d emails).",
                len(chosen),
            )
            % {"firms": len(chosen), "emails": emails},
        )
    return HttpResponseRedirect(request.get_full_path())


@require_http_methods(["GET", "HEAD", "POST"])
def readiness_dashboard(request: HttpRequest) -> HttpResponseBase:
    """Readiness of every firm of a terminal: charts over time, the firms at risk first;
    a reminder to the DAs of the firms staff choose."""
    terminals = list(Terminal.objects.order_by("code"))
    code = request.GET.get("terminal", terminals[0].code if terminals else "").upper()
    terminal = next((t for t in terminals if t.code == code), None)
    if terminal is None:
        raise Http404
    all_rows, deadline = readiness.terminal_readiness(terminal=terminal)
    if request.method == "POST":
        return _remind(request, terminal, all_rows)
    rows = _chosen(request, all_rows)
    today = readiness.hong_kong_today()
    if request.GET.get("format") == "csv":
        return csv_response(
            _csv_rows(rows), filename=f"readiness-{terminal.code}-{today.isoformat()}.csv"
        )
    total = readiness.totals(row.figures for row in all_rows)
    history = readiness.terminal_history(terminal=terminal)
    # Today's figures end each line, whether or not today's snapshot was taken yet.
    points = [*[(day, figures) for day, figures in history if day < today], (today, total)]
    series = [
        charts.Series(key, label, css, [(day, getattr(figures, key)) for day, figures in points])
        for key, label, css in (
            ("with_email", _("Users with a designated email"), "series-email"),
            ("das_with_email", _("DAs with a designated email"), "series-da-email"),
            ("set_up", _("Users set up for 2FA"), "series-setup"),
            ("logged_in_otp", _("Users who have logged in with OTP"), "series-otp"),
            ("smartcard_only", _("Users still smartcard-only"), "series-card"),
            ("need_action", _("Users who need action"), "series-action"),
        )
    ]
    chart = charts.line_chart(
        title=_("Readiness of %(terminal)s over time") % {"terminal": terminal.get_code_display()},
        series=series,
        ceiling=total.users,
        deadline=deadline.at.date() if deadline else None,
        deadline_label=deadline.label if deadline else "",
    )
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    try:
        page = min(max(1, int(request.GET.get("page", "1"))), pages)
    except ValueError:
        page = 1
    shown = rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "migration/readiness_dashboard.html",
        {
            "terminals": terminals,
            "terminal": terminal,
            "rows": shown,
            "first": (page - 1) * PAGE_SIZE + 1 if shown else 0,
            "last": (page - 1) * PAGE_SIZE + len(shown),
            "count": len(rows),
            "previous_page": page - 1 if page > 1 else None,
            "next_page": page + 1 if page < pages else None,
            "query": query.urlencode(),
            "total": total,
            "deadline": deadline,
            "chart": chart,
            "at_risk": sum(1 for row in all_rows if row.forecast.at_risk),
            "params": request.GET,
            "title": _("Readiness"),
            **admin.site.each_context(request),
        },
    )


# Connectivity-test results ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Check:
    method: str
    scope: str
    at: dt.datetime


@dataclasses.dataclass(frozen=True)
class _UserChecks:
    user: User
    # One list per session of the event, in the sessions' order.
    sessions: list[list[_Check]]


@dataclasses.dataclass(frozen=True)
class _FirmChecks:
    participant: Participant
    users: list[_UserChecks]


def _by_firm(
    checks: list[ConnectivityCheck], sessions: list[ConnectivitySession]
) -> list[_FirmChecks]:
    """The checks (ordered firm by firm, user by user) as firm -> users -> sessions."""
    column = {session.pk: index for index, session in enumerate(sessions)}
    scopes = dict(Scope.choices)
    firms = []
    for _pk, firm_checks in itertools.groupby(checks, key=lambda check: check.participant_id):
        users = []
        participant = None
        for _user, user_checks in itertools.groupby(firm_checks, key=lambda check: check.user_id):
            cells: list[list[_Check]] = [[] for _session in sessions]
            user = None
            for check in user_checks:
                participant, user = check.participant, check.user
                cells[column[check.session_id]].append(
                    _Check(
                        method=check.get_method_display(),
                        scope=str(scopes.get(check.scope, check.scope)),
                        at=check.at,
                    )
                )
            assert user is not None
            users.append(_UserChecks(user=user, sessions=cells))
        assert participant is not None
        firms.append(_FirmChecks(participant=participant, users=users))
    return firms


CSV_COLUMNS = [
    "participant_id",
    "firm",
    "login_id",
    "session",
    "data_centre",
    "method",
    "scope",
    "completed_at",
]


def _results_csv_rows(
    event: ConnectivityEvent, without_check: list[ConnectivityRegistration]
) -> Iterator[list[str]]:
    """One row per check, and one with empty check columns per registered firm without any,
    firm by firm (both come ordered by participant ID)."""
    yield CSV_COLUMNS
    checks = (
        [
            check.participant.participant_id,
            check.participant.name,
            check.user.login_id,
            check.session.name,
            check.session.data_centre,
            check.method,
            check.scope,
            timezone.localtime(check.at, connectivity.HONG_KONG).strftime("%Y-%m-%d %H:%M:%S"),
        ]
        for check in connectivity.event_checks(event).iterator(chunk_size=2000)
    )
    firms = (
        [r.participant.participant_id, r.participant.name, "", "", "", "", "", ""]
        for r in without_check
    )
    yield from heapq.merge(checks, firms, key=lambda row: row[0])


@require_http_methods(["GET", "HEAD"])
def connectivity_results(request: HttpRequest, event_id: int) -> HttpResponseBase:
    """Which checks each firm's users completed in each session of the event, the totals,
    and the registered firms none of whose users completed one; or all of it as CSV."""
    event = get_object_or_404(ConnectivityEvent.objects.select_related("terminal"), pk=event_id)
    registrations = list(connectivity.registered_firms(event))
    if request.GET.get("format") == "csv":
        # Which firms have checks, in one query, rather than holding every check for it.
        checked = set(
            connectivity.event_checks(event)
            .order_by()
            .values_list("participant_id", flat=True)
            .distinct()
        )
        without = [r for r in registrations if r.participant_id not in checked]
        return csv_response(
            _results_csv_rows(event, without),
            filename=f"connectivity-{event.terminal.code}-{event.day.isoformat()}.csv",
        )
    totals = connectivity.session_totals(event)
    sessions = [total.session for total in totals]
    checks = list(connectivity.event_checks(event))
    checked = {check.participant_id for check in checks}
    return render(
        request,
        "migration/connectivity_results.html",
        {
            "event": event,
            "totals": totals,
            "sessions": sessions,
            "firms": _by_firm(checks, sessions),
            "registrations": registrations,
            "without_check": [r for r in registrations if r.participant_id not in checked],
            "title": _("Results of the connectivity test"),
            "opts": ConnectivityEvent._meta,
            **admin.site.each_context(request),
        },
    )
