"""The relay works in batches: prepared together, each email still sent once, in order,
and never once it was cancelled; a batch that outlives half its claim is handed back."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from authn.activation import activation_links_revoke, activation_send
from authn.models import ActivationToken
from authn.secrets import secret_hash
from outbox import relay
from outbox.models import EmailStatus, OutboxEmail
from tests import factories
from tests.outbox.backends import CancelOnFirstSendBackend

pytestmark = pytest.mark.django_db

TOKEN = re.compile(r"/activate/#([A-Za-z0-9_-]+)")
# Per email, whatever the size of the batch: its transaction (a savepoint inside the test's
# own, opened and released) around the mark that checks it still waits.
STATEMENTS_PER_EMAIL = 3


@pytest.fixture
def quiet(monkeypatch):
    """Queue without the relay woken after each commit: the test runs it."""
    from outbox import services

    monkeypatch.setattr(services, "_wake", lambda: None)


def _activations(count: int, firm) -> list:
    users = factories.UserFactory.create_batch(count, participant=firm)
    for user in users:
        activation_send(user=user, acting_user=None)
    return users


def _statements(count: int, firm) -> int:
    _activations(count, firm)
    with CaptureQueriesContext(connection) as captured:
        assert relay.relay().sent == count
    return len(captured.captured_queries)


def test_a_batch_of_activations_costs_the_same_statements_whatever_its_size(quiet, firm):
    few = _statements(5, firm)
    many = _statements(40, firm)
    assert many - few == 35 * STATEMENTS_PER_EMAIL
    # And every link works: each email's token is the one its user's open link was issued for.
    for message in mail.outbox:
        token = TOKEN.search(message.body).group(1)
        link = ActivationToken.objects.get(token_hash=secret_hash("activation", token))
        assert link.is_open(timezone.now())
        assert [link.user.email] == message.to


def test_an_email_cancelled_while_its_batch_is_sent_is_not_sent(quiet, firm, settings):
    first, second = _activations(2, firm)
    settings.EMAIL_BACKEND = "tests.outbox.backends.CancelOnFirstSendBackend"
    # The DA suspends the second user while the relay sends the first one's email.
    CancelOnFirstSendBackend.on_first_send = [lambda: activation_links_revoke(user=second)]
    report = relay.relay()
    assert report.sent == 1
    assert [message.to for message in mail.outbox] == [[first.email]]
    rows = {row.params["user_id"]: row for row in OutboxEmail.objects.all()}
    assert rows[first.pk].status == EmailStatus.SENT
    assert rows[second.pk].status == EmailStatus.CANCELLED
    # The link prepared for it with the batch was retired with it.
    assert not ActivationToken.objects.filter(user=second).open(timezone.now()).exists()


def test_a_relay_past_half_its_claim_hands_the_rest_back_due_at_once(quiet, firm, settings):
    _activations(3, firm)
    settings.OUTBOX_CLAIM_SECONDS = 0  # every batch outlives its claim at once
    report = relay.relay()
    assert (report.sent, report.more) == (1, True)
    waiting = OutboxEmail.objects.filter(status=EmailStatus.PENDING)
    assert waiting.count() == 2
    assert all(row.next_attempt_at <= timezone.now() for row in waiting)
    # The next run (the task queues it when `more`) goes on where this one stopped.
    assert relay.relay().sent == 1
    assert relay.relay().sent == 1
    assert len(mail.outbox) == 3
    assert len({message.to[0] for message in mail.outbox}) == 3


def test_a_code_queued_behind_a_launchs_activations_goes_first(quiet, firm, settings):
    from authn.models import EmailOTPDevice
    from authn.otp import email_otp_challenge

    settings.OUTBOX_RELAY_BATCH = 2
    activated = _activations(5, firm)
    user = factories.UserFactory(participant=firm)
    device = EmailOTPDevice.objects.create(user=user, name="email")
    email_otp_challenge(device_id=device.pk, request=None)  # a user logging in, waiting
    assert relay.relay(limit=2).sent == 2
    subjects = [message.subject.split(" / ")[0].lower() for message in mail.outbox]
    assert "one-time password" in subjects[0]
    assert mail.outbox[0].to == [user.email]
    # Then the activations, in the order queued.
    assert relay.relay().sent == 4
    assert [message.to[0] for message in mail.outbox[1:]] == [u.email for u in activated]


@pytest.mark.postgres
# Real transactions: SET LOCAL lasts to the end of the outermost one, which a test's own
# transaction would stretch over the whole relay.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_marks_do_not_wait_for_the_disk_but_codes_and_links_do(quiet, firm, settings, monkeypatch):
    import dataclasses

    from authn import emails
    from outbox import composers
    from tests.outbox.backends import RecordingBackend

    def synchronous_commit() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            return cursor.fetchone()[0]

    prepared_with = []
    composer = composers.composer_for(emails.ACTIVATION)
    original = composer.prepare_many
    assert original is not None

    def prepare_many(rows):
        prepared_with.append(synchronous_commit())
        return original(rows)

    watched = dataclasses.replace(composer, prepare_many=prepare_many)
    monkeypatch.setitem(composers._REGISTRY, emails.ACTIVATION, watched)
    settings.EMAIL_BACKEND = "tests.outbox.backends.RecordingBackend"
    monkeypatch.setattr(RecordingBackend, "record", staticmethod(synchronous_commit))
    monkeypatch.setattr(RecordingBackend, "seen", [])
    _activations(2, firm)
    assert relay.relay().sent == 2
    assert prepared_with == ["on"]
    assert RecordingBackend.seen == ["off", "off"]
    # The connection goes back to the server's default for whatever runs next.
    assert synchronous_commit() == "on"


def test_a_composer_takes_one_form_of_each_not_both_nor_neither():
    from outbox.composers import Composer

    with pytest.raises(TypeError):
        Composer(template="nothing")
    with pytest.raises(TypeError):
        Composer(template="both", context=lambda row: {}, contexts=lambda rows: {})
