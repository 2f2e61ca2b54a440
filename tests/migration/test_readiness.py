"""Readiness figures, their daily history and the forecast, against hand-computed values."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from migration import readiness
from migration.models import Milestone, MilestoneKind, ReadinessSnapshot
from participants.models import Terminal, UserStatus
from tests import factories

pytestmark = pytest.mark.django_db

HKT = dt.timezone(dt.timedelta(hours=8))
TODAY = dt.date(2027, 3, 10)


@pytest.fixture
def firm(db):
    """Golden Harbour: 6 active users (2 of them DAs) and one suspended, in every state."""
    firm = factories.ParticipantFactory(participant_id="B50000")
    now = timezone.now()
    make = factories.UserFactory
    # 1: set up with the app, has logged in with OTP.
    app = make(participant=firm, login_id="B50000U01", two_factor_ready_at=now)
    factories.TOTPDeviceFactory(user=app)
    app.first_otp_login_at = now
    app.save()
    # 2: set up with email, never logged in with OTP.
    emailed = make(participant=firm, login_id="B50000U02", two_factor_ready_at=now)
    factories.EmailOTPDeviceFactory(user=emailed)
    # 3: email registered, not set up, still has a working card.
    factories.SmartcardFactory(user=make(participant=firm, login_id="B50000U03"))
    # 4: no email, an expired card.
    factories.SmartcardFactory(
        user=make(participant=firm, login_id="B50000U04", email=""),
        valid_to=now - dt.timedelta(days=1),
    )
    # DAs: one with an email (set up), one without.
    da = factories.DAFactory(participant=firm, login_id="B50000DA1", two_factor_ready_at=now)
    factories.TOTPDeviceFactory(user=da)
    factories.DAFactory(participant=firm, login_id="B50000DA2", email="")
    # Suspended users do not count.
    make(participant=firm, login_id="B50000U09", status=UserStatus.SUSPENDED)
    return firm


def test_the_figures_of_a_firm_are_those_counted_by_hand(firm, django_assert_num_queries):
    with django_assert_num_queries(1):
        figures = readiness.figures_by_firm(participants=[firm])[firm.pk]
    assert figures == readiness.Figures(
        users=6,
        with_email=4,  # U01, U02, U03, DA1
        das=2,
        das_with_email=1,
        set_up=3,  # U01, U02, DA1
        set_up_app=2,  # U01, DA1
        logged_in_otp=1,
        smartcard_only=1,  # U03: not set up, a usable card
        need_action=3,  # U03 (not set up), U04 (no email), DA2 (no email)
    )
    assert figures.set_up_email == 1


def test_a_terminal_total_adds_its_firms_and_no_others(firm):
    other = factories.ParticipantFactory(participant_id="B50001")
    factories.UserFactory(participant=other, login_id="B50001U01")
    ccms = factories.ParticipantFactory(
        participant_id="C50000", terminal=Terminal.objects.get(code="CCMS")
    )
    factories.UserFactory(participant=ccms, login_id="C50000U01")
    by_firm = readiness.figures_by_firm(terminal=Terminal.objects.get(code="CCASS"))
    assert set(by_firm) == {firm.pk, other.pk}
    total = readiness.totals(by_firm.values())
    assert (total.users, total.with_email, total.set_up) == (7, 5, 3)


def test_the_snapshot_is_written_once_a_day(firm):
    empty = factories.ParticipantFactory(participant_id="B50002")
    assert readiness.readiness_snapshot_take(day=TODAY) == 2
    assert readiness.readiness_snapshot_take(day=TODAY) == 0
    row = ReadinessSnapshot.objects.get(participant=firm, day=TODAY)
    assert (row.users, row.set_up, row.need_action) == (6, 3, 3)
    assert ReadinessSnapshot.objects.get(participant=empty, day=TODAY).users == 0
    assert readiness.readiness_snapshot_take(day=TODAY + dt.timedelta(days=1)) == 2


def _snapshot(firm, days_ago: int, **figures) -> ReadinessSnapshot:
    values = dict.fromkeys(readiness.FIGURES, 0) | figures
    return ReadinessSnapshot(participant=firm, day=TODAY - dt.timedelta(days=days_ago), **values)


def _deadline(kind: MilestoneKind, day: dt.date) -> readiness.Deadline:
    return readiness.Deadline(kind, dt.datetime.combine(day, dt.time(9), tzinfo=HKT))


def test_the_forecast_is_the_pace_of_the_last_seven_days(firm):
    current = readiness.Figures(users=100, set_up=40)
    history = [
        _snapshot(firm, 10, users=100, set_up=0),  # older than the window: not used
        _snapshot(firm, 7, users=100, set_up=26),
        _snapshot(firm, 3, users=100, set_up=33),
    ]
    # 14 set up in 7 days: 2 a day; 60 to go: 30 days, on 9 April.
    on_time = readiness.forecast(
        current=current,
        history=history,
        deadline=_deadline(MilestoneKind.PARALLEL_RUN_ENDS, dt.date(2027, 4, 9)),
        today=TODAY,
    )
    assert on_time.pace_per_day == 2.0
    assert on_time.remaining == 60
    assert on_time.ready_on == dt.date(2027, 4, 9)
    assert not on_time.at_risk
    late = readiness.forecast(
        current=current,
        history=history,
        deadline=_deadline(MilestoneKind.PARALLEL_RUN_ENDS, dt.date(2027, 4, 8)),
        today=TODAY,
    )
    assert late.at_risk


def test_the_forecast_follows_the_figure_of_the_next_deadline(firm):
    current = readiness.Figures(users=10, with_email=10, das=4, das_with_email=1, set_up=0)
    emails = readiness.forecast(
        current=current,
        history=[],
        deadline=_deadline(MilestoneKind.EMAIL_REGISTRATION_DEADLINE, dt.date(2027, 4, 1)),
        today=TODAY,
    )
    assert (emails.figure, emails.is_ready, emails.at_risk) == ("with_email", True, False)
    das = readiness.forecast(
        current=current,
        history=[_snapshot(firm, 7, das=4, das_with_email=1)],
        deadline=_deadline(MilestoneKind.DA_EMAIL_REGISTRATION_DEADLINE, dt.date(2027, 4, 1)),
        today=TODAY,
    )
    # No progress in a week: not ready at this pace, so at risk.
    assert (das.figure, das.remaining, das.pace_per_day, das.ready_on) == (
        "das_with_email",
        3,
        0.0,
        None,
    )
    assert das.at_risk


def test_a_firm_with_no_history_and_work_to_do_is_at_risk(firm):
    forecast = readiness.forecast(
        current=readiness.Figures(users=5, set_up=1),
        history=[],
        deadline=_deadline(MilestoneKind.PARALLEL_RUN_ENDS, dt.date(2027, 4, 1)),
        today=TODAY,
    )
    assert forecast.pace_per_day is None and forecast.ready_on is None and forecast.at_risk


def test_the_terminal_lists_the_firms_at_risk_first(firm):
    ready = factories.ParticipantFactory(participant_id="B00001")
    factories.UserFactory(
        participant=ready, login_id="B00001U01", two_factor_ready_at=timezone.now()
    )
    Milestone.objects.filter(
        programme__terminal__code="CCASS", kind=MilestoneKind.PARALLEL_RUN_ENDS
    ).update(planned_at=dt.datetime(2027, 4, 1, 9, tzinfo=HKT))
    with time_machine.travel(dt.datetime(2027, 3, 10, 12, tzinfo=HKT), tick=False):
        rows, deadline = readiness.terminal_readiness(terminal=Terminal.objects.get(code="CCASS"))
    assert deadline is not None and deadline.kind == MilestoneKind.PARALLEL_RUN_ENDS
    assert [row.participant.participant_id for row in rows][:2] == ["B50000", "B00001"]
    assert rows[0].forecast.at_risk and not rows[1].forecast.at_risk


def test_the_users_who_need_action_and_what_they_need(firm):
    actions = {
        user.login_id: action for user, action in readiness.users_needing_action(participant=firm)
    }
    assert actions == {
        "B50000DA2": "register_email",
        "B50000U03": "set_up_2fa",
        "B50000U04": "register_email",
    }


def test_the_pace_starts_from_each_firms_oldest_snapshot_of_the_week(firm):
    late_joiner = factories.ParticipantFactory(participant_id="B00002", terminal=firm.terminal)
    elsewhere = factories.ParticipantFactory(
        participant_id="B00003", terminal=Terminal.objects.exclude(pk=firm.terminal_id).first()
    )
    ReadinessSnapshot.objects.bulk_create(
        [
            _snapshot(firm, 10, set_up=1),  # before the window
            _snapshot(firm, 6, set_up=2),
            _snapshot(firm, 2, set_up=3),
            _snapshot(firm, 0, set_up=4),  # today's: not history
            _snapshot(late_joiner, 3, set_up=5),
            _snapshot(late_joiner, 1, set_up=6),
            _snapshot(elsewhere, 5, set_up=7),
        ]
    )
    history = readiness.history_by_firm(terminal=firm.terminal, today=TODAY)
    assert {pk: [(past.day, past.set_up) for past in pasts] for pk, pasts in history.items()} == {
        firm.pk: [(TODAY - dt.timedelta(days=6), 2)],
        late_joiner.pk: [(TODAY - dt.timedelta(days=3), 5)],
    }
