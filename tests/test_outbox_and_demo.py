"""The local outbox page and the demo seed."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.management import call_command
from django.urls import reverse

from participants.models import Participant, Smartcard, User

pytestmark = pytest.mark.django_db


def test_outbox_page_exists_only_in_debug(client, settings):
    settings.DEBUG = False
    assert client.get(reverse("outbox")).status_code == 404


def test_outbox_lists_messages_with_clickable_links(client, settings, tmp_path):
    settings.DEBUG = True
    settings.EMAIL_BACKEND = "common.mail.OutboxBackend"
    settings.EMAIL_OUTBOX_DIR = tmp_path / "outbox"
    mail.send_mail(
        "Hello", "Open http://testserver/activate/#abc now", "a@x.example", ["b@x.example"]
    )
    listing = client.get(reverse("outbox")).content.decode()
    assert "Hello" in listing and "b@x.example" in listing
    name = next((tmp_path / "outbox").glob("*.eml")).name
    message = client.get(reverse("outbox-message", args=[name])).content.decode()
    assert '<a href="http://testserver/activate/#abc"' in message


def test_seed_demo_twice_is_harmless(capsys, settings):
    settings.DEBUG = True  # the demo seeds only in DEBUG (pytest-django runs DEBUG off)
    call_command("seed_demo")
    counts = (User.objects.count(), Participant.objects.count(), Smartcard.objects.count())
    sent = len(mail.outbox)
    call_command("seed_demo")
    assert (User.objects.count(), Participant.objects.count(), Smartcard.objects.count()) == counts
    assert len(mail.outbox) == sent
    out = capsys.readouterr().out
    assert "B01234U01" in out and "card-pass-2023" in out


def test_seed_demo_has_both_kinds_terminals_and_duties(settings):
    settings.DEBUG = True
    call_command("seed_demo")
    assert set(Participant.objects.values_list("kind", flat=True)) == {"CP", "DB"}
    assert set(Participant.objects.values_list("terminal__code", flat=True)) == {"CCASS", "CCMS"}
    assert set(User.objects.filter(role="da").values_list("da_duty", flat=True)) == {
        "maker",
        "checker",
    }


def test_seed_demo_schedules_the_programmes_and_draws_a_history(settings):
    from migration import readiness
    from migration.models import Milestone, MilestoneKind, Phase, Programme, ReadinessSnapshot

    settings.DEBUG = True
    call_command("seed_demo")
    ccass = Programme.objects.get(terminal__code="CCASS")
    assert ccass.phase == Phase.PARALLEL_RUN
    milestones = list(ccass.milestones.order_by("position"))
    assert all(m.planned_at is not None for m in milestones)
    # Past milestones done, future ones to come: what the scheduler would have left.
    assert [m.carried_out_at is not None for m in milestones] == [True] * 5 + [False] * 2
    launch = Milestone.objects.get(programme__terminal__code="CCMS", kind=MilestoneKind.LAUNCH)
    assert launch.needs_approval and launch.approved_at is None and launch.carried_out_at is None
    # Fifteen days of history per firm (two weeks and today), today's equal to the figures.
    firm = Participant.objects.get(participant_id="B01234")
    days = ReadinessSnapshot.objects.filter(participant=firm).order_by("day")
    assert days.count() == 15
    today = readiness.figures_by_firm(participants=[firm])[firm.pk]
    assert days.last().with_email == today.with_email
    assert days.first().with_email <= days.last().with_email
    call_command("seed_demo")
    assert ReadinessSnapshot.objects.filter(participant=firm).count() == 15


def test_the_demo_beat_thread_runs_the_schedule(settings, monkeypatch):
    import datetime as dt

    from django.utils import timezone

    from ccass import demo_beat
    from migration.models import Milestone, MilestoneKind, Phase, Programme, ReadinessSnapshot

    Milestone.objects.filter(
        programme__terminal__code="CCMS", kind=MilestoneKind.EMAIL_REGISTRATION_OPENS
    ).update(planned_at=timezone.now() - dt.timedelta(minutes=1))
    demo_beat._tick()
    assert Programme.objects.get(terminal__code="CCMS").phase == Phase.EMAIL_REGISTRATION
    firms = Participant.objects.count()
    assert ReadinessSnapshot.objects.count() == firms
    demo_beat._tick()  # a second run changes nothing
    assert ReadinessSnapshot.objects.count() == firms


def test_seed_demo_publishes_a_connectivity_test_on_a_saturday(settings, capsys):
    from migration.models import ConnectivityEvent

    settings.DEBUG = True
    call_command("seed_demo")
    call_command("seed_demo")
    (event,) = ConnectivityEvent.objects.all()
    assert event.is_published and event.day.weekday() == 5
    assert [s.name for s in event.sessions.order_by("position")] == ["Session 1", "Session 2"]
    # Its schedule goes to every DA of a CCASS firm with an email, once.
    from outbox.models import OutboxEmail

    das = User.objects.filter(role="da", participant__terminal__code="CCASS").exclude(email="")
    assert OutboxEmail.objects.filter(kind="connectivity-published").count() == das.count() > 0
    assert f"Connectivity test: CCASS on {event.day:%A %d %B %Y}" in capsys.readouterr().out
