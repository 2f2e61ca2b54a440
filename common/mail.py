"""Bilingual templated emails, and the local outbox the embedded default writes them to."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from email import message_from_bytes, policy
from email.header import Header
from email.message import EmailMessage as StdEmailMessage
from email.message import Message as StdMessage
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
    message = BilingualEmail(
        subject, body, settings.DEFAULT_FROM_EMAIL, list(to), headers=headers or {}
    )
    message.attach_alternative(html, "text/html")
    return message


class BilingualEmail(EmailMultiAlternatives):
    """An email whose English and Chinese subject folds without a blank first line."""

    def message(self, *args: Any, **kwargs: Any) -> StdEmailMessage:
        # Django encodes a non-ASCII subject as if it began the line, so the header folds
        # before its first word ("Subject: " then a line break) and a reader's mail program
        # shows the subject with a leading space. Encoded knowing its header name, it folds
        # after the first words instead; Django is given none to encode (the encoding is
        # the costliest part of a header). The subject has no line break: Django refused it.
        subject = str(self.subject)
        if not subject.isascii():
            self.subject = ""
        try:
            msg = super().message(*args, **kwargs)
        finally:
            self.subject = subject
        if not subject.isascii():
            del msg["Subject"]
            header = Header(subject, self.encoding or "utf-8", header_name="Subject")
            StdMessage.__setitem__(msg, "Subject", header)
        if msg.is_multipart() and msg.get_boundary() is None:
            # Left to itself, the generator draws a boundary and compiles a regular
            # expression to prove it absent from the parts: per message, since each
            # boundary is new. 128 random bits, checked with a plain search, do as well.
            texts = [str(self.body), *(str(content) for content, _type in self.alternatives)]
            boundary = "=_" + secrets.token_hex(16)
            while any(boundary in text for text in texts):
                boundary = "=_" + secrets.token_hex(16)
            msg.set_boundary(boundary)
        return msg


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
