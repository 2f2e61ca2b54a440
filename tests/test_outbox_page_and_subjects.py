"""Email subjects read cleanly in both languages; the outbox page dates them in Hong Kong time."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

import pytest
from django.conf import settings
from django.core.mail import EmailMessage
from django.urls import reverse

from common.mail import OutboxBackend, templated_message

SUBJECTS = sorted(
    path.name.removesuffix("-subject.txt")
    for path in (Path(settings.BASE_DIR) / "templates" / "emails").glob("*-subject.txt")
)


@pytest.mark.parametrize("name", SUBJECTS)
def test_subject_has_no_leading_space_in_either_language(name):
    message = templated_message(name, to=["someone@firm.example"], context={})
    english, chinese = message.subject.split(" / ")
    assert english == english.strip() and chinese == chinese.strip()
    assert not chinese.isascii()  # the Chinese half is translated

    raw = message.message().as_bytes()
    # The header starts on its own line: no "Subject: " left empty with the text folded below.
    header = next(line for line in raw.splitlines() if line.startswith(b"Subject:"))
    assert header.strip() != b"Subject:"
    received = message_from_bytes(raw, policy=policy.default)
    assert received["Subject"] == message.subject


def test_outbox_dates_emails_in_hong_kong_time(client, settings, tmp_path):
    settings.DEBUG = True
    settings.EMAIL_OUTBOX_DIR = str(tmp_path)
    # Django writes the Date header in UTC ("-0000").
    sent = EmailMessage(
        "Hello", "Body", "portal@example", ["someone@firm.example"],
        headers={"Date": "Sun, 22 Nov 2026 06:15:40 -0000"},
    )  # fmt: skip
    OutboxBackend().send_messages([sent])

    listing = client.get(reverse("outbox")).content.decode()
    assert "2026-11-22 14:15:40" in listing
    assert "06:15:40" not in listing
    assert "Sent (Hong Kong time)" in listing

    name = next(tmp_path.glob("*.eml")).name
    message = client.get(reverse("outbox-message", args=[name])).content.decode()
    assert "2026-11-22 14:15:40" in message
    assert "(Hong Kong time)" in message
    assert "-0000" not in message


def test_outbox_page_in_chinese(client, settings, tmp_path):
    settings.DEBUG = True
    settings.EMAIL_OUTBOX_DIR = str(tmp_path)
    listing = client.get(reverse("outbox"), HTTP_ACCEPT_LANGUAGE="zh-hant").content.decode()
    assert "發送時間（香港時間）" in listing
    assert "暫時沒有電郵。" in listing
