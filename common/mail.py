"""Bilingual templated emails, and the local outbox the embedded default writes them to."""

from __future__ import annotations

import dataclasses
import functools
import secrets
import smtplib
import uuid
from collections.abc import Sequence
from email import message_from_bytes, policy
from email.header import Header
from email.message import EmailMessage as StdEmailMessage
from email.message import Message as StdMessage
from email.policy import Compat32
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives
from django.core.mail.backends import smtp
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import sanitize_address
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.html import escape

# A template's three parts: emails/<name>-subject.txt, -body.txt and -body.html.
PARTS = ("subject.txt", "body.txt", "body.html")
# Stands in for a merged value while a batch's shared text is rendered (see emails_render).
MARK = "\x1f"


@dataclasses.dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    html: str

    @classmethod
    def of(cls, parts: Sequence[str]) -> Rendered:
        subject, body, html = parts
        return cls(" ".join(subject.split()), body, html)


def _parts(name: str, context: dict[str, Any]) -> list[str]:
    # Text is rendered by the engine that escapes nothing (settings.TEMPLATES, "text").
    return [
        render_to_string(f"emails/{name}-{part}", context, using=_engine(part)) for part in PARTS
    ]


def _engine(part: str) -> str | None:
    return "text" if part.endswith(".txt") else None


def email_render(name: str, context: dict[str, Any]) -> Rendered:
    """Render the email's subject, text and HTML (English first, then Chinese)."""
    return Rendered.of(_parts(name, context))


def emails_render(
    name: str, contexts: Sequence[dict[str, Any]], *, merge: Sequence[str] = ()
) -> list[Rendered]:
    """Render one email per context, as email_render() would.

    `merge` names values that differ from email to email (a login ID, a link) and that the
    templates only print. Emails whose contexts are alike but for those are rendered once,
    with marks in their place, and each email is that text with its own values put in,
    escaped where the template escaped the mark: a mail merge, which spares the template
    engine for a launch's thousands of activations. Each group's first email is also
    rendered in full and must come out the same, or the whole group is rendered in full;
    so is an email whose merged values are not plain, non-empty text.
    """
    rendered: list[Rendered | None] = [None] * len(contexts)
    groups: list[tuple[dict[str, Any], list[int]]] = []
    for index, context in enumerate(contexts):
        values = [context.get(key) for key in merge]
        if not merge or not all(isinstance(v, str) and v and MARK not in v for v in values):
            rendered[index] = email_render(name, context)
            continue
        shared = {key: value for key, value in context.items() if key not in merge}
        for alike, members in groups:
            if alike == shared:
                members.append(index)
                break
        else:
            groups.append((shared, [index]))
    marks = {key: f"{MARK}{number}&{MARK}" for number, key in enumerate(merge)}
    for shared, members in groups:
        text = _parts(name, {**shared, **marks})

        def merged(context: dict[str, Any], text: list[str] = text) -> Rendered:
            parts = []
            for part in text:
                for key, mark in marks.items():
                    value = str(context[key])
                    part = part.replace(mark, value).replace(escape(mark), escape(value))
                parts.append(part)
            return Rendered.of(parts)

        first = contexts[members[0]]
        if merged(first) != email_render(name, first):
            for index in members:
                rendered[index] = email_render(name, contexts[index])
            continue
        for index in members:
            rendered[index] = merged(contexts[index])
    return [email for email in rendered if email is not None]


def email_message(
    rendered: Rendered, *, to: Sequence[str], headers: dict[str, str] | None = None
) -> EmailMultiAlternatives:
    message = BilingualEmail(
        rendered.subject,
        rendered.body,
        settings.DEFAULT_FROM_EMAIL,
        list(to),
        headers=headers or {},
    )
    message.attach_alternative(rendered.html, "text/html")
    return message


def templated_message(
    name: str, *, to: Sequence[str], context: dict[str, Any], headers: dict[str, str] | None = None
) -> EmailMultiAlternatives:
    """Build emails/<name>-subject.txt, -body.txt and -body.html (English first, then Chinese)."""
    return email_message(email_render(name, context), to=to, headers=headers)


class _Headers(Compat32):
    """The policy Django's messages use (compat32), but a header that is ASCII and fits on
    its line is written as it is, which is what the default's Header().encode() makes of
    it, at a fraction of the cost (most of a message's own, once rendered)."""

    def _fold(self, name: str, value: Any, sanitize: bool) -> str:
        if (
            isinstance(value, str)
            and value.isascii()
            and "\r" not in value
            and "\n" not in value
            and self.max_line_length is not None
            and len(name) + 2 + len(value) <= self.max_line_length
        ):
            return f"{name}: {value}{self.linesep}"
        return str(super()._fold(name, value, sanitize))  # type: ignore[misc]


HEADERS = _Headers()


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
        msg.policy = HEADERS  # the parts are written with the message's policy
        return msg


@functools.lru_cache(maxsize=16)
def _sender(address: str, encoding: str) -> str:
    return sanitize_address(address, encoding)


class SmtpBackend(smtp.EmailBackend):
    """Django's SMTP backend, but the sender's address (the same on every email) is made
    safe once per process, not once per message: parsing an address costs about a tenth of
    a millisecond, and a launch sends tens of thousands of emails."""

    def _send(self, email_message: EmailMessage) -> bool:
        if not email_message.recipients():
            return False
        encoding = email_message.encoding or settings.DEFAULT_CHARSET
        sender = _sender(email_message.from_email, encoding)
        recipients = [sanitize_address(address, encoding) for address in email_message.recipients()]
        # Django's SafeMIME messages take the line separator, as the stdlib's do not.
        data = email_message.message().as_bytes(linesep="\r\n")  # type: ignore[call-arg]
        assert self.connection is not None  # opened by send_messages()
        try:
            self.connection.sendmail(sender, recipients, data)
        except smtplib.SMTPException:
            if not self.fail_silently:
                raise
            return False
        return True


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
