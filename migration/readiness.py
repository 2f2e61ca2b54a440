"""Readiness: how far each firm is on the way to 2FA, its history, and its forecast.

The figures of every firm come from one grouped query over the users; the history from
`ReadinessSnapshot`, one row per firm per day. The forecast takes each firm's pace over
the last seven days on the figure that the terminal's next deadline is about (emails
before the email deadlines, 2FA setups before the end of the parallel run) and says when
the firm will be ready at that pace, and whether that is after the deadline.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from django.db import connections, transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from migration.models import Milestone, MilestoneKind, ReadinessSnapshot
from participants.models import Participant, Role, Smartcard, Terminal, User, UserStatus

PACE_DAYS = 7
FIGURES = (
    "users",
    "with_email",
    "das",
    "das_with_email",
    "set_up",
    "set_up_app",
    "logged_in_otp",
    "smartcard_only",
    "need_action",
)


@dataclasses.dataclass(frozen=True)
class Figures:
    """One firm's (or a terminal's) readiness. Users are the active ones."""

    users: int = 0
    with_email: int = 0
    das: int = 0
    das_with_email: int = 0
    set_up: int = 0
    set_up_app: int = 0
    logged_in_otp: int = 0
    smartcard_only: int = 0
    need_action: int = 0

    @property
    def ready_share(self) -> float:
        """The share of users set up for 2FA, 0 to 1 (1 for a firm with no user)."""
        return self.set_up / self.users if self.users else 1.0

    @property
    def set_up_email(self) -> int:
        # A user who has set up 2FA has one channel: the app, or else email.
        return self.set_up - self.set_up_app

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in FIGURES}


def _active_users() -> QuerySet[User]:
    return User.objects.filter(participant__isnull=False, status=UserStatus.ACTIVE)


def figures_by_firm(
    *, terminal: Terminal | None = None, participants: Iterable[Participant] | None = None
) -> dict[int, Figures]:
    """Return each firm's figures by participant id, in one query; firms with no active
    user are missing from it (their figures are all zero)."""
    users = _active_users()
    if terminal is not None:
        users = users.filter(participant__terminal=terminal)
    if participants is not None:
        users = users.filter(participant__in=[p.pk for p in participants])
    now = timezone.now()
    app = Exists(TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True))
    card = Exists(Smartcard.objects.filter(user=OuterRef("pk")).usable(now))
    not_set_up = Q(two_factor_ready_at__isnull=True)
    rows = (
        users.annotate(has_app=app, has_card=card)
        .values("participant_id")
        .order_by()
        .annotate(
            users=Count("pk"),
            with_email=Count("pk", filter=~Q(email="")),
            das=Count("pk", filter=Q(role=Role.DA)),
            das_with_email=Count("pk", filter=Q(role=Role.DA) & ~Q(email="")),
            set_up=Count("pk", filter=~not_set_up),
            set_up_app=Count("pk", filter=~not_set_up & Q(has_app=True)),
            logged_in_otp=Count("pk", filter=Q(first_otp_login_at__isnull=False)),
            smartcard_only=Count("pk", filter=not_set_up & Q(has_card=True)),
            need_action=Count("pk", filter=not_set_up | Q(email="")),
        )
    )
    return {row["participant_id"]: _figures(row) for row in rows}


def _figures(row: Any) -> Figures:
    return Figures(**{name: int(row[name] or 0) for name in FIGURES})


def totals(figures: Iterable[Figures]) -> Figures:
    sums = dict.fromkeys(FIGURES, 0)
    for each in figures:
        for name in FIGURES:
            sums[name] += getattr(each, name)
    return Figures(**sums)


def hong_kong_today(now: dt.datetime | None = None) -> dt.date:
    return timezone.localdate(now or timezone.now())


@transaction.atomic
def readiness_snapshot_take(*, day: dt.date | None = None) -> int:
    """Write today's figures of every firm, once: a second run the same day writes nothing.
    Return the number of rows written."""
    day = day or hong_kong_today()
    figures = figures_by_firm()
    rows = [
        ReadinessSnapshot(participant_id=pk, day=day, **figures.get(pk, Figures()).as_dict())
        for pk in Participant.objects.order_by("pk").values_list("pk", flat=True)
    ]
    before = ReadinessSnapshot.objects.filter(day=day).count()
    ReadinessSnapshot.objects.bulk_create(rows, ignore_conflicts=True, batch_size=2000)
    return ReadinessSnapshot.objects.filter(day=day).count() - before


# The forecast -----------------------------------------------------------------------------

# Which figure each deadline is about, and the figure it must reach.
_DEADLINE_FIGURE = {
    MilestoneKind.EMAIL_REGISTRATION_DEADLINE: ("with_email", "users"),
    MilestoneKind.DA_EMAIL_REGISTRATION_DEADLINE: ("das_with_email", "das"),
    MilestoneKind.PARALLEL_RUN_ENDS: ("set_up", "users"),
}


@dataclasses.dataclass(frozen=True)
class Deadline:
    kind: MilestoneKind
    at: dt.datetime

    @property
    def label(self) -> str:
        return str(self.kind.label)


def next_deadlines(terminals: Iterable[Terminal]) -> dict[int, Deadline]:
    """Return, by terminal id, the next deadline not yet passed that has a date: one query."""
    found: dict[int, Deadline] = {}
    pending = (
        Milestone.objects.filter(
            programme__terminal__in=[t.pk for t in terminals],
            kind__in=list(_DEADLINE_FIGURE),
            carried_out_at__isnull=True,
            planned_at__isnull=False,
        )
        .select_related("programme")
        .order_by("programme_id", "position")
    )
    for milestone in pending:
        terminal_id = milestone.programme.terminal_id
        if terminal_id not in found and milestone.planned_at is not None:
            found[terminal_id] = Deadline(MilestoneKind(milestone.kind), milestone.planned_at)
    return found


@dataclasses.dataclass(frozen=True)
class Forecast:
    figure: str  # what the deadline is about: "with_email", "das_with_email" or "set_up"
    done: int
    target: int
    pace_per_day: float | None  # None: no history to measure a pace from
    ready_on: dt.date | None  # None: not at this pace
    deadline: Deadline | None
    at_risk: bool

    @property
    def remaining(self) -> int:
        return max(0, self.target - self.done)

    @property
    def is_ready(self) -> bool:
        return self.remaining == 0


def forecast(
    *,
    current: Figures,
    history: Sequence[Past | ReadinessSnapshot],
    deadline: Deadline | None,
    today: dt.date,
) -> Forecast:
    """Forecast when the firm is ready for `deadline` at its pace of the last seven days.

    The pace is the gain in the deadline's figure from the oldest snapshot of the last
    PACE_DAYS days to now, per day. A firm behind with no gain, or no history, will not be
    ready at its pace; it is at risk if the deadline is still to come.
    """
    return forecaster(deadline=deadline, today=today)(current, history)


def forecaster(
    *, deadline: Deadline | None, today: dt.date
) -> Callable[[Figures, Sequence[Past | ReadinessSnapshot]], Forecast]:
    """forecast() for many firms against one deadline: what they share is worked out once."""
    figure, of = _DEADLINE_FIGURE[deadline.kind] if deadline is not None else ("set_up", "users")
    since = today - dt.timedelta(days=PACE_DAYS)
    deadline_day = timezone.localdate(deadline.at) if deadline is not None else None

    def one(current: Figures, history: Sequence[Past | ReadinessSnapshot]) -> Forecast:
        done, target = getattr(current, figure), getattr(current, of)
        remaining = max(0, target - done)
        first = min(
            (snap for snap in history if since <= snap.day < today),
            key=lambda snap: snap.day,
            default=None,
        )
        pace: float | None = None
        if first is not None:
            days = (today - first.day).days
            pace = max(0.0, (done - getattr(first, figure)) / days) if days > 0 else None
        if remaining == 0:
            ready_on: dt.date | None = today
        elif pace:
            ready_on = today + dt.timedelta(days=math.ceil(remaining / pace))
        else:
            ready_on = None
        at_risk = (
            deadline_day is not None
            and remaining > 0
            and (ready_on is None or ready_on > deadline_day)
        )
        return Forecast(
            figure=figure,
            done=done,
            target=target,
            pace_per_day=pace,
            ready_on=ready_on,
            deadline=deadline,
            at_risk=at_risk,
        )

    return one


@dataclasses.dataclass(frozen=True)
class Past:
    """The figures a forecast's pace is measured from, on one earlier day."""

    day: dt.date
    with_email: int
    das_with_email: int
    set_up: int


def history_by_firm(
    *, participants: Iterable[int] | None = None, terminal: Terminal | None = None, today: dt.date
) -> dict[int, list[Past]]:
    """Return, by participant id, the oldest snapshot of the last PACE_DAYS days before
    `today` (what the forecast's pace starts from), of these firms or of the terminal's:
    one query, no model instances."""
    snapshots = ReadinessSnapshot.objects.filter(
        day__gte=today - dt.timedelta(days=PACE_DAYS), day__lt=today
    ).order_by("participant_id", "day")
    if participants is not None:
        snapshots = snapshots.filter(participant_id__in=list(participants))
    if terminal is not None:
        snapshots = snapshots.filter(participant__terminal=terminal)
    if connections[snapshots.db].features.can_distinct_on_fields:
        # PostgreSQL sends only each firm's oldest row: a thousand, not seven thousand.
        snapshots = snapshots.distinct("participant_id")
    found: dict[int, list[Past]] = {}
    for pk, day, with_email, das_with_email, set_up in snapshots.values_list(
        "participant_id", "day", "with_email", "das_with_email", "set_up"
    ):
        if pk not in found:
            found[pk] = [Past(day, with_email, das_with_email, set_up)]
    return found


@dataclasses.dataclass(frozen=True)
class Firm:
    """What the readiness table shows of a firm, read without a model instance."""

    pk: int
    participant_id: str
    name: str


@dataclasses.dataclass(frozen=True)
class FirmReadiness:
    participant: Participant | Firm
    figures: Figures
    forecast: Forecast


def firm_readiness(*, participant: Participant, today: dt.date | None = None) -> FirmReadiness:
    """Return one firm's figures and forecast (the DMS home): a fixed number of queries."""
    today = today or hong_kong_today()
    figures = figures_by_firm(participants=[participant]).get(participant.pk, Figures())
    history = history_by_firm(participants=[participant.pk], today=today)
    deadline = next_deadlines([participant.terminal]).get(participant.terminal_id)
    return FirmReadiness(
        participant=participant,
        figures=figures,
        forecast=forecast(
            current=figures,
            history=history.get(participant.pk, []),
            deadline=deadline,
            today=today,
        ),
    )


def terminal_readiness(
    *, terminal: Terminal, today: dt.date | None = None
) -> tuple[list[FirmReadiness], Deadline | None]:
    """Return every firm of the terminal with its figures and forecast, the firms at risk
    first, and the terminal's next deadline: a fixed number of queries for any number."""
    today = today or hong_kong_today()
    # Only what the table shows of each firm: a thousand model instances cost more than the
    # figures.
    firms = [
        Firm(*row)
        for row in Participant.objects.filter(terminal=terminal)
        .order_by("participant_id")
        .values_list("pk", "participant_id", "name")
    ]
    figures = figures_by_firm(terminal=terminal)
    history = history_by_firm(terminal=terminal, today=today)
    deadline = next_deadlines([terminal]).get(terminal.pk)
    forecast_of = forecaster(deadline=deadline, today=today)
    nothing = Figures()
    rows = []
    for firm in firms:
        current = figures.get(firm.pk, nothing)
        rows.append(FirmReadiness(firm, current, forecast_of(current, history.get(firm.pk, []))))
    rows.sort(key=lambda row: (not row.forecast.at_risk, row.participant.participant_id))
    return rows, deadline


def terminal_history(*, terminal: Terminal, days: int = 90) -> list[tuple[dt.date, Figures]]:
    """Return the terminal's daily totals from the snapshots of the last `days` days."""
    since = hong_kong_today() - dt.timedelta(days=days)
    sums = (
        ReadinessSnapshot.objects.filter(participant__terminal=terminal, day__gte=since)
        .values("day")
        .order_by("day")
        .annotate(**{name: Sum(name) for name in FIGURES})
    )
    return [(row["day"], _figures(row)) for row in sums]


def users_needing_action(*, participant: Participant, limit: int = 50) -> list[tuple[User, str]]:
    """Return the firm's active users who still need action, with the action, first `limit`."""
    users = (
        _active_users()
        .filter(participant=participant)
        .filter(Q(email="") | Q(two_factor_ready_at__isnull=True))
        .order_by("login_id")[:limit]
    )
    return [
        (
            user,
            "register_email" if not user.email else "set_up_2fa",
        )
        for user in users
    ]
