"""The programme: milestones carried out on a schedule, in order, once, with their effects."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from migration import services
from migration.models import Milestone, MilestoneKind, Phase, Programme
from outbox.models import OutboxEmail
from participants.models import Smartcard, Terminal, UserStatus
from tests import factories
from tests.helpers import staff_logs_in

pytestmark = pytest.mark.django_db

HKT = dt.timezone(dt.timedelta(hours=8))
START = dt.datetime(2027, 3, 1, 9, 0, tzinfo=HKT)


def _milestone(kind: MilestoneKind, terminal: str = "CCASS") -> Milestone:
    return Milestone.objects.get(programme__terminal__code=terminal, kind=kind)


def _plan(kind: MilestoneKind, days: float, terminal: str = "CCASS", **fields) -> Milestone:
    Milestone.objects.filter(programme__terminal__code=terminal, kind=kind).update(
        planned_at=START + dt.timedelta(days=days), **fields
    )
    return _milestone(kind, terminal)


def _schedule(terminal: str = "CCASS") -> None:
    """The circulars' order, a week apart, the launch subject to regulatory approval."""
    for days, kind in enumerate(MilestoneKind):
        _plan(kind, days * 7, terminal)


def _phase(terminal: str = "CCASS") -> Phase:
    return Phase(Programme.objects.get(terminal__code=terminal).phase)


def _carry_out(days: float) -> list[str]:
    with time_machine.travel(START + dt.timedelta(days=days), tick=False):
        return [m.kind for m in services.milestones_carry_out()]


@pytest.fixture
def ccass_firm(db):
    return factories.ParticipantFactory(participant_id="B20000")


@pytest.fixture
def ccms_firm(db):
    return factories.ParticipantFactory(
        participant_id="C20000", terminal=Terminal.objects.get(code="CCMS")
    )


@pytest.fixture
def staff_member(db):
    return factories.StaffFactory(login_id="hkex.ops2")


def test_every_programme_starts_with_the_seven_milestones_in_order():
    kinds = list(
        Milestone.objects.filter(programme__terminal__code="CCASS")
        .order_by("position")
        .values_list("kind", "needs_approval", "planned_at", "carried_out_at")
    )
    assert [kind for kind, *_ in kinds] == [kind.value for kind in MilestoneKind]
    # The launch is "subject to regulatory approval" in the circulars; nothing is dated yet.
    assert [approval for _kind, approval, *_ in kinds].count(True) == 1
    assert _milestone(MilestoneKind.LAUNCH).needs_approval
    assert all(planned is None and done is None for *_, planned, done in kinds)


def test_nothing_is_carried_out_before_its_time():
    _schedule()
    assert _carry_out(-0.01) == []
    assert _phase() == Phase.PREPARATION


def test_email_registration_opens_and_tells_the_das_of_that_terminal_only(ccass_firm, ccms_firm):
    da = factories.DAFactory(participant=ccass_firm, login_id="B20000DA1")
    factories.DAFactory(participant=ccass_firm, login_id="B20000DA2", email="")
    factories.DAFactory(participant=ccass_firm, login_id="B20000DA3", status=UserStatus.SUSPENDED)
    factories.UserFactory(participant=ccass_firm, login_id="B20000U01")
    factories.DAFactory(participant=ccms_firm, login_id="C20000DA1")
    _schedule()
    _schedule("CCMS")
    Milestone.objects.filter(programme__terminal__code="CCMS").update(
        planned_at=START + dt.timedelta(days=365)
    )
    assert _carry_out(0) == [MilestoneKind.EMAIL_REGISTRATION_OPENS]
    assert _phase() == Phase.EMAIL_REGISTRATION
    assert _phase("CCMS") == Phase.PREPARATION
    kickoff = OutboxEmail.objects.filter(kind="milestone-kickoff")
    assert list(kickoff.values_list("to", flat=True)) == [da.email]
    audit = AuditEvent.objects.get(action=AuditAction.MILESTONE_CARRIED_OUT)
    assert audit.detail == {
        "terminal": "CCASS",
        "milestone": "email_registration_opens",
        "phase": "email_registration",
        "kickoff_emails": 1,
    }


def test_the_kickoff_email_names_the_deadline_in_both_languages(ccass_firm, mailoutbox):
    factories.DAFactory(participant=ccass_firm, login_id="B20000DA1")
    _schedule()
    _carry_out(0)
    from outbox.relay import relay

    with time_machine.travel(START, tick=False):
        relay()
    (message,) = mailoutbox
    body = message.body
    assert message.to == ["b20000da1@firm.example"]
    assert "8 March 2027 09:00" in body  # the deadline, a week later, in Hong Kong time
    # English first, then Traditional Chinese.
    assert body.index("Registration of your users") < body.index("登記")
    assert message.subject.startswith("CCASS Terminal: email registration for 2FA has started / ")


def test_milestones_are_carried_out_in_order_and_each_once(ccass_firm):
    _schedule()
    # A beat that was down for two weeks: both overdue milestones, in order, at once.
    assert _carry_out(7.5) == [
        MilestoneKind.EMAIL_REGISTRATION_OPENS,
        MilestoneKind.EMAIL_REGISTRATION_DEADLINE,
    ]
    assert _carry_out(7.5) == []
    assert _carry_out(8) == []
    assert AuditEvent.objects.filter(action=AuditAction.MILESTONE_CARRIED_OUT).count() == 2


def test_da_email_registration_opens_at_its_milestone():
    _schedule()
    _carry_out(13)
    assert not Programme.objects.get(terminal__code="CCASS").da_email_registration_open
    _carry_out(14)
    assert Programme.objects.get(terminal__code="CCASS").da_email_registration_open


def test_an_unapproved_launch_waits_and_so_do_the_milestones_after_it(ccass_firm, staff_member):
    ready = factories.UserFactory(participant=ccass_firm, login_id="B20000U01")
    done = factories.UserFactory(
        participant=ccass_firm, login_id="B20000U02", two_factor_ready_at=timezone.now()
    )
    factories.UserFactory(participant=ccass_firm, login_id="B20000U03", email="")
    factories.UserFactory(participant=ccass_firm, login_id="B20000U04", status=UserStatus.SUSPENDED)
    _schedule()
    # Everything is due, even the decommissioning: the launch, unapproved, holds them all.
    assert MilestoneKind.LAUNCH not in _carry_out(60)
    assert _phase() == Phase.EMAIL_REGISTRATION
    assert not OutboxEmail.objects.filter(kind="activation").exists()
    with time_machine.travel(START + dt.timedelta(days=61), tick=False):
        services.milestone_approve(
            milestone=_milestone(MilestoneKind.LAUNCH), acting_user=staff_member
        )
    # A past milestone runs as soon as it is approved, then those after it.
    assert _carry_out(61) == [
        MilestoneKind.LAUNCH,
        MilestoneKind.PARALLEL_RUN_ENDS,
        MilestoneKind.DECOMMISSIONING,
    ]
    assert _phase() == Phase.DECOMMISSIONED
    activations = OutboxEmail.objects.filter(kind="activation")
    assert list(activations.values_list("to", flat=True)) == [ready.email]
    assert activations.get().params == {"user_id": ready.pk}
    sent = AuditEvent.objects.filter(action=AuditAction.ACTIVATION_SENT)
    assert list(sent.values_list("user_id", "participant_id")) == [(ready.pk, ccass_firm.pk)]
    assert done.pk not in activations.values_list("params__user_id", flat=True)
    approval = AuditEvent.objects.get(action=AuditAction.MILESTONE_APPROVED)
    assert approval.actor == staff_member


def test_at_launch_every_user_to_invite_is_invited_once(ccass_firm, staff_member):
    for n in range(5):
        factories.UserFactory(participant=ccass_firm, login_id=f"B20000U{n:02d}")
    _schedule()
    services.milestone_approve(milestone=_milestone(MilestoneKind.LAUNCH), acting_user=staff_member)
    _carry_out(28)
    _carry_out(29)
    _carry_out(28)
    assert OutboxEmail.objects.filter(kind="activation").count() == 5
    launch = AuditEvent.objects.get(
        action=AuditAction.MILESTONE_CARRIED_OUT, detail__milestone="launch"
    )
    assert launch.detail["activation_emails"] == 5
    assert _phase() == Phase.PARALLEL_RUN


def test_decommissioning_revokes_every_card_of_the_terminal(
    ccass_firm, ccms_firm, staff_member, client
):
    cards = [
        factories.SmartcardFactory(
            user=factories.UserFactory(participant=ccass_firm, login_id=f"B20000U{n:02d}")
        )
        for n in range(6)
    ]
    other = factories.SmartcardFactory(
        user=factories.UserFactory(participant=ccms_firm, login_id="C20000U01")
    )
    _schedule()
    services.milestone_approve(milestone=_milestone(MilestoneKind.LAUNCH), acting_user=staff_member)
    _carry_out(35)
    assert _phase() == Phase.TWO_FA_ONLY
    assert not Smartcard.objects.filter(revoked_at__isnull=False).exists()
    with time_machine.travel(START + dt.timedelta(days=42), tick=False):
        services.milestones_carry_out()
    assert Smartcard.objects.filter(pk__in=[c.pk for c in cards], revoked_at=None).count() == 0
    assert Smartcard.objects.get(pk=other.pk).revoked_at is None
    audit = AuditEvent.objects.get(detail__milestone="decommissioning")
    assert audit.detail["cards_revoked"] == 6
    landing = client.get(reverse("authn:landing")).content.decode()
    section = landing[landing.index('id="terminal-ccass"') :]
    section = section[: section.index("</section>")]
    assert "Login with Smartcard" not in section


def test_the_queries_of_carrying_out_do_not_grow_with_the_accounts(ccass_firm, staff_member):
    def run_with(users: int, prefix: str) -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        firm = factories.ParticipantFactory(participant_id=prefix)
        for n in range(users):
            person = factories.UserFactory(participant=firm, login_id=f"{prefix}U{n:03d}")
            factories.SmartcardFactory(user=person)
        with CaptureQueriesContext(connection) as captured:
            _carry_out(days)
        return len(captured.captured_queries)

    _schedule()
    services.milestone_approve(milestone=_milestone(MilestoneKind.LAUNCH), acting_user=staff_member)
    days = 28
    few = run_with(2, "B30000")
    Milestone.objects.filter(programme__terminal__code="CCASS").update(carried_out_at=None)
    Programme.objects.filter(terminal__code="CCASS").update(phase=Phase.PREPARATION)
    OutboxEmail.objects.all().delete()
    many = run_with(40, "B30001")
    assert few == many


# Rescheduling -----------------------------------------------------------------------------


def test_moving_a_date_is_audited_and_tells_the_das_of_that_terminal(
    ccass_firm, ccms_firm, staff_member
):
    da = factories.DAFactory(participant=ccass_firm, login_id="B20000DA1")
    factories.DAFactory(participant=ccms_firm, login_id="C20000DA1")
    _schedule()
    launch = _milestone(MilestoneKind.LAUNCH)
    old = launch.planned_at
    new = old + dt.timedelta(days=3)
    with time_machine.travel(START - dt.timedelta(days=1), tick=False):
        services.milestone_reschedule(milestone=launch, planned_at=new, acting_user=staff_member)
    assert _milestone(MilestoneKind.LAUNCH).planned_at == new
    audit = AuditEvent.objects.get(action=AuditAction.MILESTONE_RESCHEDULED)
    assert audit.actor == staff_member
    assert audit.detail == {
        "terminal": "CCASS",
        "milestone": "launch",
        "old": old.isoformat(),
        "new": new.isoformat(),
    }
    notices = OutboxEmail.objects.filter(kind="milestone-rescheduled")
    assert list(notices.values_list("to", flat=True)) == [da.email]


def test_the_notice_of_a_moved_date_gives_both_dates_in_both_languages(
    ccass_firm, staff_member, mailoutbox
):
    factories.DAFactory(participant=ccass_firm, login_id="B20000DA1")
    _schedule()
    launch = _milestone(MilestoneKind.LAUNCH)
    with time_machine.travel(START - dt.timedelta(days=1), tick=False):
        services.milestone_reschedule(
            milestone=launch,
            planned_at=launch.planned_at + dt.timedelta(days=2),
            acting_user=staff_member,
        )
        from outbox.relay import relay

        relay()
    (message,) = mailoutbox
    english, chinese = message.body.split("\n\n", 1)
    assert '"2FA launch (parallel run begins)" is now planned for 31 March 2027 09:00' in english
    assert "It was planned for 29 March 2027 09:00." in english
    assert "推出雙重認證（並行運作開始）" in chinese and "2027" in chinese
    assert message.subject.startswith("CCASS Terminal: a 2FA migration date has changed / ")


@pytest.mark.parametrize(
    ("days", "message"),
    [
        (-2, "cannot be moved into the past"),
        (6, "cannot come before DAs' email registration deadline"),
        (36, "cannot come after End of parallel run"),
    ],
)
def test_a_date_in_the_past_or_out_of_order_is_refused(staff_member, days, message):
    _schedule()
    launch = _milestone(MilestoneKind.LAUNCH)
    with (
        time_machine.travel(START - dt.timedelta(days=1), tick=False),
        pytest.raises(services.MilestoneError, match=message),
    ):
        services.milestone_reschedule(
            milestone=launch, planned_at=START + dt.timedelta(days=days), acting_user=staff_member
        )
    assert _milestone(MilestoneKind.LAUNCH).planned_at == launch.planned_at
    assert not AuditEvent.objects.filter(action=AuditAction.MILESTONE_RESCHEDULED).exists()
    assert not OutboxEmail.objects.filter(kind="milestone-rescheduled").exists()


def test_a_milestone_carried_out_cannot_be_moved(staff_member):
    _schedule()
    _carry_out(0)
    with (
        time_machine.travel(START + dt.timedelta(days=1), tick=False),
        pytest.raises(services.MilestoneError, match="carried out"),
    ):
        services.milestone_reschedule(
            milestone=_milestone(MilestoneKind.EMAIL_REGISTRATION_OPENS),
            planned_at=START + dt.timedelta(days=2),
            acting_user=staff_member,
        )


# Staff's screens and commands --------------------------------------------------------------


def test_staff_move_a_date_in_the_admin_through_the_service(client, staff):
    _schedule()
    launch = _milestone(MilestoneKind.LAUNCH)
    url = reverse("admin:migration_milestone_change", args=[launch.pk])
    with time_machine.travel(START - dt.timedelta(days=1), tick=True):
        staff_logs_in(client, staff)
        refused = client.post(url, {"planned_at_0": "2027-03-02", "planned_at_1": "09:00:00"})
        assert refused.status_code == 200
        assert "cannot come before" in refused.content.decode()
        moved = client.post(url, {"planned_at_0": "2027-03-31", "planned_at_1": "18:30:00"})
    assert moved.status_code == 302
    assert _milestone(MilestoneKind.LAUNCH).planned_at == dt.datetime(
        2027, 3, 31, 18, 30, tzinfo=HKT
    )
    assert AuditEvent.objects.get(action=AuditAction.MILESTONE_RESCHEDULED).actor == staff


def test_the_programme_command_shows_and_carries_out(capsys):
    _schedule()
    with time_machine.travel(START + dt.timedelta(days=1), tick=False):
        call_command("programme", "show")
        shown = capsys.readouterr().out
        call_command("programme", "carry-out")
        done = capsys.readouterr().out
        call_command("programme", "carry-out")
        again = capsys.readouterr().out
    assert "CCASS: Preparation" in shown
    assert "Users' email registration opens: 2027-03-01 09:00 HKT - NEXT, due" in shown
    assert "carried out: CCASS Users' email registration opens" in done
    assert again.strip() == "nothing is due"


def test_the_landing_and_the_dms_show_the_next_milestone(client, ccass_firm):
    _schedule()
    _carry_out(0)
    with time_machine.travel(START + dt.timedelta(days=1), tick=False):
        page = client.get(reverse("authn:landing")).content.decode()
    section = page[page.index('id="terminal-ccass"') :]
    assert "Next: <strong>Email registration deadline</strong>, 8 March 2027 09:00" in section


def test_beat_carries_out_milestones_every_minute(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["milestones-carry-out"]
    assert entry["task"] == "migration.tasks.milestones_carry_out_task"
    assert entry["schedule"] == 60.0


def test_staff_decide_which_milestones_wait_for_regulatory_approval(staff_member):
    _schedule()
    end = _milestone(MilestoneKind.PARALLEL_RUN_ENDS)
    services.milestone_approval_require(milestone=end, required=True, acting_user=staff_member)
    audit = AuditEvent.objects.get(action=AuditAction.MILESTONE_APPROVAL_REQUIRED)
    assert audit.actor == staff_member and audit.detail["needs_approval"] is True
    # Now the end of the parallel run waits for its approval, like the launch.
    services.milestone_approve(milestone=_milestone(MilestoneKind.LAUNCH), acting_user=staff_member)
    assert MilestoneKind.PARALLEL_RUN_ENDS not in _carry_out(40)
    services.milestone_approve(milestone=end, acting_user=staff_member)
    with pytest.raises(services.MilestoneError, match="approved already"):
        services.milestone_approval_require(milestone=end, required=False, acting_user=staff_member)
    assert _carry_out(42) == [MilestoneKind.PARALLEL_RUN_ENDS, MilestoneKind.DECOMMISSIONING]


def test_staff_set_the_approval_requirement_in_the_admin(client, staff):
    _schedule()
    end = _milestone(MilestoneKind.PARALLEL_RUN_ENDS)
    url = reverse("admin:migration_milestone_change", args=[end.pk])
    with time_machine.travel(START - dt.timedelta(days=1), tick=True):
        staff_logs_in(client, staff)
        response = client.post(
            url,
            {"planned_at_0": "2027-04-05", "planned_at_1": "09:00:00", "needs_approval": "on"},
        )
    assert response.status_code == 302
    assert _milestone(MilestoneKind.PARALLEL_RUN_ENDS).needs_approval
    assert AuditEvent.objects.filter(action=AuditAction.MILESTONE_APPROVAL_REQUIRED).count() == 1
    # The date did not change, so nobody was told of one.
    assert not AuditEvent.objects.filter(action=AuditAction.MILESTONE_RESCHEDULED).exists()
