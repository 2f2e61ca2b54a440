"""The emailed-code page says whether a code was sent, and when another can be asked for."""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django.utils import timezone

from tests.helpers import otp_login_url, password_step

pytestmark = pytest.mark.django_db

SENT = "We have emailed a 6-digit code to your designated email address."
NOT_SENT = "No new code was sent, because we emailed you one less than a minute ago."


def _resend_button(page: str) -> str:
    found = re.search(r"<button[^>]*>Email me a new code</button>", page)
    assert found, page
    return found.group(0)


def _code_page(client) -> str:
    return client.get(otp_login_url("online", step="verify")).content.decode()


def _at(moment: dt.datetime) -> str:
    return timezone.localtime(moment).strftime("%H:%M:%S")


@pytest.fixture
def clock():
    start = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with time_machine.travel(start, tick=False) as traveller:
        yield start, traveller


def test_a_sent_code_is_announced_and_the_resend_waits(
    client, email_user, mailoutbox, django_capture_on_commit_callbacks, clock, settings
):
    start, _traveller = clock
    with django_capture_on_commit_callbacks(execute=True):
        password_step(client, email_user.login_id)
    assert len(mailoutbox) == 1
    page = _code_page(client)
    assert SENT in page
    assert NOT_SENT not in page
    button = _resend_button(page)
    assert " disabled" in button
    wait = settings.OTP_EMAIL_COOLDOWN_DURATION + 1
    assert f'data-resend-wait="{wait}"' in button
    assert f"You can ask for a new code at {_at(start + dt.timedelta(seconds=wait))}." in page
    assert "js/resend-countdown.js" in page


def test_a_second_login_within_the_cooldown_says_no_code_was_sent(
    client, email_user, mailoutbox, django_capture_on_commit_callbacks, clock, settings
):
    start, traveller = clock
    with django_capture_on_commit_callbacks(execute=True):
        password_step(client, email_user.login_id)
    traveller.shift(20)
    with django_capture_on_commit_callbacks(execute=True):
        password_step(client, email_user.login_id)
    assert len(mailoutbox) == 1
    page = _code_page(client)
    assert NOT_SENT in page
    assert "That code still works until it expires" in page
    assert SENT not in page
    assert " disabled" in _resend_button(page)
    ready_at = start + dt.timedelta(seconds=settings.OTP_EMAIL_COOLDOWN_DURATION + 1)
    assert f"You can ask for a new code at {_at(ready_at)}." in page


def test_after_the_cooldown_the_resend_is_enabled_and_sends(
    client, email_user, mailoutbox, django_capture_on_commit_callbacks, clock, settings
):
    _start, traveller = clock
    with django_capture_on_commit_callbacks(execute=True):
        password_step(client, email_user.login_id)
    traveller.shift(settings.OTP_EMAIL_COOLDOWN_DURATION + 1)
    page = _code_page(client)
    assert " disabled" not in _resend_button(page)
    assert "You can ask for a new code at" not in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(otp_login_url("online", step="resend"), follow=True)
    assert len(mailoutbox) == 2
    page = response.content.decode()
    assert "A new code is on its way to your email." in page
    assert SENT in page
    assert " disabled" in _resend_button(page)


def test_a_resend_within_the_cooldown_sends_nothing_and_says_so(
    client, email_user, mailoutbox, django_capture_on_commit_callbacks, clock
):
    _start, traveller = clock
    with django_capture_on_commit_callbacks(execute=True):
        password_step(client, email_user.login_id)
    traveller.shift(5)
    # The button is disabled; a form posted anyway (an old page, a second tab) sends nothing.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(otp_login_url("online", step="resend"), follow=True)
    assert len(mailoutbox) == 1
    page = response.content.decode()
    assert NOT_SENT in page
    assert "A new code is on its way" not in page


def test_an_app_user_sees_no_resend(client, user):
    password_step(client, user.login_id)
    page = _code_page(client)
    assert "Email me a new code" not in page
    assert "resend-countdown.js" not in page
