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
