"""Reminders to the DAs of firms that are behind: chosen by staff, or before each deadline."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.utils import timezone

from audit.models import AuditAction, AuditEvent
from migration import services
from migration.models import Milestone, MilestoneKind, Reminder
from outbox.models import OutboxEmail
from tests import factories
from tests.helpers import staff_logs_in

pytestmark = pytest.mark.django_db

HKT = dt.timezone(dt.timedelta(hours=8))
DEADLINE = dt.datetime(2027, 4, 30, 18, 0, tzinfo=HKT)
DASHBOARD = "/admin/readiness/"


@pytest.fixture
def firms(db):
    """Behind: two users without email, one DA; Done: everyone set up; on CCASS."""
    behind = factories.ParticipantFactory(participant_id="B80001")
    done = factories.ParticipantFactory(participant_id="B80002")
    factories.DAFactory(participant=behind, login_id="B80001DA1", email="da1@behind.example")
    factories.DAFactory(participant=behind, login_id="B80001DA2", email="da2@behind.example")
    factories.UserFactory(participant=behind, login_id="B80001U01", email="")
    factories.UserFactory(participant=behind, login_id="B80001U02", email="")
    factories.DAFactory(participant=done, login_id="B80002DA1", two_factor_ready_at=timezone.now())
    Milestone.objects.filter(
        programme__terminal__code="CCASS", kind=MilestoneKind.EMAIL_REGISTRATION_DEADLINE
    ).update(planned_at=DEADLINE)
    return behind, done


def _remind_at(when: dt.datetime) -> int:
    with time_machine.travel(when, tick=False):
        return services.reminders_before_deadlines()


def test_firms_not_ready_are_reminded_once_within_the_days_before_a_deadline(firms, settings):
    settings.REMINDER_DAYS_BEFORE = 7
    behind, done = firms
    assert _remind_at(DEADLINE - dt.timedelta(days=8)) == 0
    assert _remind_at(DEADLINE - dt.timedelta(days=7)) == 2  # the two DAs of Behind
    assert _remind_at(DEADLINE - dt.timedelta(days=6)) == 0
    assert _remind_at(DEADLINE - dt.timedelta(days=1)) == 0
    reminders = Reminder.objects.all()
    assert [(r.participant_id, r.milestone.kind) for r in reminders] == [
        (behind.pk, MilestoneKind.EMAIL_REGISTRATION_DEADLINE)
    ]
    assert set(OutboxEmail.objects.values_list("to", flat=True)) == {
        "da1@behind.example",
        "da2@behind.example",
    }
    assert AuditEvent.objects.filter(action=AuditAction.REMINDER_SENT).count() == 1
    assert _remind_at(DEADLINE + dt.timedelta(hours=1)) == 0


def test_the_reminder_lists_what_is_missing_in_both_languages(firms, mailoutbox):
    _remind_at(DEADLINE - dt.timedelta(days=2))
    from outbox.relay import relay

    with time_machine.travel(DEADLINE - dt.timedelta(days=2), tick=False):
        relay()
    message = next(m for m in mailoutbox if m.to == ["da1@behind.example"])
    assert "Next deadline: Email registration deadline, 30 April 2027 18:00" in message.body
    assert "2 users without a designated email" in message.body
    assert "0 DAs without a designated email" in message.body
    assert "4 users who have not set up 2FA" in message.body
    # English first, then Traditional Chinese.
    assert message.body.index("Still to do for your firm:") < message.body.index("貴公司仍需完成：")
    assert "2 名用戶未登記指定電郵地址" in message.body
    assert message.subject.startswith("B80001: reminder to prepare your users for 2FA / ")


def test_staff_remind_the_firms_they_choose(client, staff, firms):
    behind, done = firms
    staff_logs_in(client, staff)
    response = client.post(DASHBOARD + "?terminal=CCASS", {"which": "chosen", "firm": ["B80002"]})
    assert response.status_code == 302
    assert list(OutboxEmail.objects.values_list("to", flat=True)) == ["b80002da1@firm.example"]
    audit = AuditEvent.objects.get(action=AuditAction.REMINDER_SENT)
    assert (audit.actor, audit.participant) == (staff, done)
    page = client.get(response["Location"]).content.decode()
    assert "A reminder is on its way to the DAs of 1 firm (1 emails)." in page


def test_staff_remind_every_firm_at_risk(client, staff, firms):
    staff_logs_in(client, staff)
    client.post(DASHBOARD, {"which": "at_risk"})
    assert set(OutboxEmail.objects.values_list("to", flat=True)) == {
        "da1@behind.example",
        "da2@behind.example",
    }


def test_a_reminder_to_nobody_is_refused(client, staff, firms):
    staff_logs_in(client, staff)
    response = client.post(DASHBOARD, {"which": "chosen"}, follow=True)
    assert "Choose the firms to remind first." in response.content.decode()
    assert not OutboxEmail.objects.exists()
