"""How a wait is worded: exact, in seconds or minutes, with plurals."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import translation

from authn.wording import code_wait_message, duration_text, seconds_until

NOW = dt.datetime(2026, 3, 2, 4, 28, 3, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (1, "1 second"),
        (2, "2 seconds"),
        (8, "8 seconds"),
        (59, "59 seconds"),
        (60, "1 minute"),
        (61, "1 minute 1 second"),
        (128, "2 minutes 8 seconds"),
        (1024, "17 minutes 4 seconds"),
        (3600, "1 hour"),
        (3601, "1 hour 1 minute"),
        (2 * 3600 + 150, "2 hours 3 minutes"),
    ],
)
def test_duration_text(seconds, text):
    with translation.override("en"):
        assert duration_text(seconds) == text


def test_seconds_until_rounds_up_and_is_never_zero():
    assert seconds_until(NOW + dt.timedelta(seconds=0.3), NOW) == 1
    assert seconds_until(NOW + dt.timedelta(seconds=7.2), NOW) == 8
    assert seconds_until(NOW - dt.timedelta(seconds=1), NOW) == 1


@pytest.mark.parametrize(
    ("wait", "sentence"),
    [
        (1, "Wait 1 second before you try another code."),
        (8, "Wait 8 seconds before you try another code."),
        (120, "Wait 2 minutes before you try another code."),
    ],
)
def test_code_wait_message_says_how_long_and_not_too_many(wait, sentence):
    with translation.override("en"):
        message = code_wait_message(NOW + dt.timedelta(seconds=wait), NOW)
    assert message.endswith(sentence)
    assert "not checked" in message
    assert "too many" not in message.lower()
