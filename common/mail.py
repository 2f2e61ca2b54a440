"""Bilingual templated emails, and the local outbox the embedded default writes them to."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from email import message_from_bytes, policy
from email.message import EmailMessage as StdEmailMessage
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.mail.backends.base import BaseEmailBackend
from django.template.loader import render_to_string
from django.utils import timezone


def templated_message(
    name: str, *, to: Sequence[str], context: dict[str, Any], headers: dict[str, str] | None = None
) -> EmailMultiAlternatives:
    """Build emails/<name>-subject.txt, -body.txt and -body.html (English first, then Chinese)."""
    subject = " ".join(render_to_string(f"emails/{name}-subject.txt", context).split())
    body = render_to_string(f"emails/{name}-body.txt", context)
    html = render_to_string(f"emails/{name}-body.html", context)
    message = EmailMultiAlternatives(
        subject, body, settings.DEFAULT_FROM_EMAIL, list(to), headers=headers or {}
    )
    message.attach_alternative(html, "text/html")
    return message


class OutboxBackend(BaseEmailBackend):
    """Write each message as an .eml file into EMAIL_OUTBOX_DIR, where a person can read it."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        outbox = Path(settings.EMAIL_OUTBOX_DIR)
        outbox.mkdir(parents=True, exist_ok=True)
        for message in email_messages:
            stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
            path = outbox / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
            path.write_bytes(message.message().as_bytes())
        return len(email_messages)


def outbox_messages() -> list[tuple[str, StdEmailMessage]]:
    """Return the outbox's messages, newest first, with their file names."""
    outbox = Path(settings.EMAIL_OUTBOX_DIR)
    if not outbox.is_dir():
        return []
    found = []
    for path in sorted(outbox.glob("*.eml"), reverse=True):
        parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
        found.append((path.name, parsed))  # type: ignore[arg-type]
    return found
