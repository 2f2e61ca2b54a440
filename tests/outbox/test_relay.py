"""Every email is an outbox row written with its cause, and the relay sends each once."""

from __future__ import annotations

import datetime as dt
import logging
import re
import smtplib

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db import transaction

from authn.models import EmailOTPDevice
from authn.otp import email_otp_challenge
from authn.secrets import secret_hash
from outbox import relay
from outbox.models import EmailStatus, OutboxEmail
from tests import factories
from tests.outbox.backends import Crash, FlakyBackend

pytestmark = pytest.mark.django_db

CODE = re.compile(r"Your one-time password is (\d{6})\.")


@pytest.fixture
def flaky(settings):
    settings.EMAIL_BACKEND = "tests.outbox.backends.FlakyBackend"
    FlakyBackend.errors = []
    yield FlakyBackend.errors
    FlakyBackend.errors = []


@pytest.fixture
def device(email_user):
    return EmailOTPDevice.objects.get(user=email_user)


def _challenge(device, capture):
    with capture(execute=True):
        email_otp_challenge(device_id=device.pk, request=None)
    return OutboxEmail.objects.latest("id")


def test_an_email_is_written_with_its_cause_and_sent_once_after_commit(
    device, django_capture_on_commit_callbacks
):
    row = _challenge(device, django_capture_on_commit_callbacks)
    (message,) = mail.outbox
    row.refresh_from_db()
    assert (row.status, row.attempts, row.to) == (EmailStatus.SENT, 1, device.user.email)
    assert message.extra_headers["Message-ID"] == relay.message_id(row)
    code = CODE.search(message.body).group(1)
    device.refresh_from_db()
    assert device.token_hash == secret_hash("email-otp", code)
    # No secret in the row: its parameters name the device, nothing else.
    assert row.params == {"device_id": device.pk}
    assert code not in str(row.params)


def test_a_change_rolled_back_sends_nothing(device, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                email_otp_challenge(device_id=device.pk, request=None)
                raise RuntimeError("the change failed")
        except RuntimeError:
            pass
    assert not OutboxEmail.objects.exists()
    assert mail.outbox == []


def test_an_smtp_outage_delays_the_email_and_it_arrives_once(
    device, flaky, settings, django_capture_on_commit_callbacks
):
    flaky.extend([smtplib.SMTPServerDisconnected("421 try later")] * 2)
    row = _challenge(device, django_capture_on_commit_callbacks)
    row.refresh_from_db()
    assert (row.status, row.attempts) == (EmailStatus.PENDING, 1)
    assert "421" in row.last_error
    assert mail.outbox == []
    # Not due yet: the sweep leaves it alone.
    assert relay.relay().sent == 0

    with time_machine.travel(row.next_attempt_at + dt.timedelta(seconds=1)):
        assert relay.relay().retrying == 1  # the second failure doubles the wait
        row.refresh_from_db()
    with time_machine.travel(row.next_attempt_at + dt.timedelta(seconds=1)):
        assert relay.relay().sent == 1
    (message,) = mail.outbox
    row.refresh_from_db()
    assert (row.status, row.attempts) == (EmailStatus.SENT, 3)
    # The code mailed late is the one the device holds, and it says how long it still lasts.
    code = CODE.search(message.body).group(1)
    device.refresh_from_db()
    assert device.token_hash == secret_hash("email-otp", code)
    assert "valid for 2 minutes" in message.body


def test_an_email_that_misses_its_deadline_fails_and_staff_can_send_it_again(
    email_user, flaky, settings, django_capture_on_commit_callbacks
):
    from authn.activation import activation_send

    flaky.extend([ConnectionRefusedError("no SMTP server")] * 50)
    with django_capture_on_commit_callbacks(execute=True):
        activation_send(user=email_user, acting_user=None)
    row = OutboxEmail.objects.get()
    with time_machine.travel(row.deadline + dt.timedelta(seconds=1)):
        report = relay.relay()
    row.refresh_from_db()
    assert report.failed == 1 and row.status == EmailStatus.FAILED
    assert "no SMTP server" in row.last_error

    flaky.clear()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("outbox_retry")
    row.refresh_from_db()
    assert row.status == EmailStatus.SENT
    (message,) = mail.outbox
    assert "/activate/#" in message.body


def test_an_otp_email_is_not_sent_again_once_its_code_expired(
    device, flaky, django_capture_on_commit_callbacks
):
    flaky.extend([ConnectionRefusedError("no SMTP server")] * 50)
    row = _challenge(device, django_capture_on_commit_callbacks)
    with time_machine.travel(row.deadline + dt.timedelta(seconds=1)):
        relay.relay()
    row.refresh_from_db()
    assert row.status == EmailStatus.FAILED
    flaky.clear()
    call_command("outbox_retry")
    row.refresh_from_db()
    assert row.status == EmailStatus.FAILED
    assert mail.outbox == []


def test_a_permanent_refusal_fails_at_once(device, flaky, django_capture_on_commit_callbacks):
    flaky.append(smtplib.SMTPRecipientsRefused({device.user.email: (550, b"no such user")}))
    row = _challenge(device, django_capture_on_commit_callbacks)
    row.refresh_from_db()
    assert (row.status, row.attempts) == (EmailStatus.FAILED, 1)
    assert "550" in row.last_error


def test_a_crash_after_the_server_accepted_sends_one_duplicate_with_the_same_code(
    device, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_BACKEND = "tests.outbox.backends.AcceptThenCrashBackend"
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        email_otp_challenge(device_id=device.pk, request=None)
    row = OutboxEmail.objects.get()
    with pytest.raises(Crash):
        relay.relay()
    row.refresh_from_db()
    # The send died with its transaction: the row waits, the code was issued before it.
    assert (row.status, row.attempts) == (EmailStatus.PENDING, 0)
    assert row.prepared_at is not None

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    # Still claimed by the relay that died: no other relay takes it until the claim lapses.
    assert relay.relay().sent == 0
    with time_machine.travel(row.next_attempt_at):
        assert relay.relay().sent == 1
    first, second = mail.outbox
    assert first.extra_headers["Message-ID"] == second.extra_headers["Message-ID"]
    code = CODE.search(first.body).group(1)
    assert CODE.search(second.body).group(1) == code
    # The code the user already has keeps working.
    device.refresh_from_db()
    assert device.verify_token(code)
    assert callbacks  # the relay was to be woken after commit


def test_a_newer_code_cancels_the_email_still_waiting(
    device, flaky, django_capture_on_commit_callbacks
):
    flaky.append(ConnectionRefusedError("no SMTP server"))
    older = _challenge(device, django_capture_on_commit_callbacks)
    EmailOTPDevice.objects.filter(pk=device.pk).update(last_generated_timestamp=None)
    device.refresh_from_db()
    newer = _challenge(device, django_capture_on_commit_callbacks)
    older.refresh_from_db()
    newer.refresh_from_db()
    assert (older.status, newer.status) == (EmailStatus.CANCELLED, EmailStatus.SENT)
    (message,) = mail.outbox
    device.refresh_from_db()
    assert device.token_hash == secret_hash("email-otp", CODE.search(message.body).group(1))


def test_a_broker_that_is_down_does_not_fail_the_request_and_the_sweep_sends(
    client, email_user, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    from kombu.exceptions import OperationalError

    from outbox import tasks
    from tests.helpers import password_step

    def broker_down():
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.outbox_relay, "delay", broker_down)
    with (
        caplog.at_level(logging.WARNING, logger="outbox.services"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = password_step(client, email_user.login_id)
    assert response.status_code == 302
    assert mail.outbox == []
    assert "outbox relay not woken" in caplog.text
    row = OutboxEmail.objects.get()
    assert row.status == EmailStatus.PENDING

    call_command("outbox_relay")  # what the beat's sweep runs every minute
    row.refresh_from_db()
    assert row.status == EmailStatus.SENT and len(mail.outbox) == 1


def test_no_code_or_link_reaches_a_log(email_user, caplog, django_capture_on_commit_callbacks):
    from authn.activation import activation_send

    device = EmailOTPDevice.objects.get(user=email_user)
    with caplog.at_level(logging.DEBUG), django_capture_on_commit_callbacks(execute=True):
        email_otp_challenge(device_id=device.pk, request=None)
        activation_send(user=email_user, acting_user=None)
    code = CODE.search(mail.outbox[0].body).group(1)
    token = re.search(r"/activate/#([A-Za-z0-9_-]+)", mail.outbox[1].body).group(1)
    logged = caplog.text + " ".join(str(record.__dict__) for record in caplog.records)
    assert "email sent" in caplog.text
    assert code not in logged and token not in logged


def test_staff_see_failed_emails_in_the_admin_and_send_them_again(
    client, staff, flaky, django_capture_on_commit_callbacks
):
    from django.urls import reverse
    from django.utils import timezone
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tests.helpers import TOTP

    now = timezone.now()
    row = OutboxEmail.objects.create(
        kind="email-changed",
        to="someone@firm.example",
        params={"user_id": staff.pk, "old": "", "new": "someone@firm.example"},
        status=EmailStatus.FAILED,
        deadline=now,
        last_error="SMTPRecipientsRefused: 550 no such user",
    )
    client.post(
        reverse("authn:staff-login"),
        {"login_id": staff.login_id, "password": factories.USER_PASSWORD},
    )
    code = TOTP().code(TOTPDevice.objects.get(user=staff))
    client.post(reverse("authn:staff-login-verify"), {"code": code})
    changelist = reverse("admin:outbox_outboxemail_changelist")
    page = client.get(changelist + "?status__exact=failed")
    assert page.status_code == 200
    assert "550 no such user" in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(changelist, {"action": "retry", "_selected_action": [row.pk]})
    row.refresh_from_db()
    assert row.status == EmailStatus.SENT
    assert [message.to for message in mail.outbox] == [["someone@firm.example"]]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_parallel_relays_send_each_email_once(email_user, monkeypatch, settings):
    import threading

    from django.db import connection

    from outbox import services
    from outbox.services import email_queue

    monkeypatch.setattr(services, "_wake", lambda: None)  # the relays below do the sending
    settings.OUTBOX_RELAY_BATCH = 7  # each relay claims several batches, beside the others
    with transaction.atomic():
        for n in range(60):
            email_queue(
                kind="email-changed",
                to=f"u{n}@firm.example",
                params={"user_id": email_user.pk, "old": "", "new": f"u{n}@firm.example"},
            )
    errors = []

    def work():
        try:
            relay.relay()
        except BaseException as error:  # reported by the main thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    sent = sorted(message.to[0] for message in mail.outbox)
    assert sent == sorted(f"u{n}@firm.example" for n in range(60))
    assert OutboxEmail.objects.filter(status=EmailStatus.SENT).count() == 60


def test_readiness_reports_how_long_the_oldest_due_email_has_waited(client, flaky, device):
    from django.utils import timezone

    assert client.get("/readyz").json()["outbox_oldest_due_seconds"] is None
    OutboxEmail.objects.create(
        kind="otp-code",
        to="a@firm.example",
        params={"device_id": device.pk},
        created_at=timezone.now() - dt.timedelta(seconds=90),
        deadline=timezone.now() + dt.timedelta(seconds=60),
    )
    answer = client.get("/readyz")
    assert answer.status_code == 200
    assert 90 <= answer.json()["outbox_oldest_due_seconds"] < 100


@pytest.mark.parametrize("gone", ["user", "device"])
def test_an_email_about_something_since_deleted_is_cancelled_not_sent(gone, device):
    from authn.emails import CREDENTIALS_CHANGED, OTP_CODE
    from outbox.services import email_queue

    user = device.user
    with transaction.atomic():
        if gone == "device":
            email_queue(kind=OTP_CODE, to=user.email, params={"device_id": device.pk})
            device.delete()
        else:
            email_queue(
                kind=CREDENTIALS_CHANGED,
                to=user.email,
                params={
                    "user_id": user.pk,
                    "change": "password",
                    "at": "2027-03-01T01:00:00+00:00",
                },
            )
            user.delete()
    mail.outbox.clear()
    relay.relay()
    row = OutboxEmail.objects.latest("id")
    assert mail.outbox == []
    assert row.status == EmailStatus.CANCELLED
