"""Bilingual templated emails, and the local outbox the embedded default writes them to."""

from __future__ import annotations

import dataclasses
import functools
import re
import secrets
import smtplib
import uuid
from collections.abc import Sequence
from contextlib import suppress
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


@functools.lru_cache(maxsize=256)
def _header_encoded(
    name: str, text: str, charset: str, splitchars: str, maxlinelen: int | None, linesep: str
) -> str:
    return Header(text, charset, header_name=name).encode(splitchars, maxlinelen, linesep)


@dataclasses.dataclass(frozen=True)
class EncodedOnce:
    """A header value written as email.header.Header writes it, but encoded once per process
    for each text: the emails of a launch share their bilingual subject, and encoding it
    was a tenth of each message's cost."""

    name: str
    text: str
    charset: str

    def encode(
        self, splitchars: str = ";, \t", maxlinelen: int | None = None, linesep: str = "\n"
    ) -> str:
        return _header_encoded(self.name, self.text, self.charset, splitchars, maxlinelen, linesep)

    def __str__(self) -> str:
        return self.text


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
            header = EncodedOnce("Subject", subject, self.encoding or "utf-8")
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


class PipeliningSMTP(smtplib.SMTP):
    """smtplib's SMTP client, but where the server offers PIPELINING (RFC 2920) a message's
    MAIL, RCPT and DATA go to it in one write and their replies are read together: two
    round trips a message instead of four, which with one recipient is most of the cost of
    sending it on a fast network. Elsewhere (no PIPELINING, ESMTP options asked for, a
    message as text) it sends as smtplib does; the errors raised are smtplib's, alike."""

    _held: list[bytes] | None = None

    def send(self, s: Any) -> None:
        if self._held is not None:
            self._held.append(s.encode(self.command_encoding) if isinstance(s, str) else bytes(s))
            return
        super().send(s)

    def getreply(self) -> tuple[int, bytes]:
        held, self._held = self._held, None
        if held:
            super().send(b"".join(held))
        return super().getreply()

    def sendmail(  # type: ignore[override]
        self,
        from_addr: str,
        to_addrs: str | Sequence[str],
        msg: bytes | str,
        mail_options: Sequence[str] = (),
        rcpt_options: Sequence[str] = (),
    ) -> dict[str, tuple[int, bytes]]:
        self.ehlo_or_helo_if_needed()
        if mail_options or rcpt_options or not isinstance(msg, bytes):
            return super().sendmail(from_addr, to_addrs, msg, mail_options, rcpt_options)
        if not self.has_extn("pipelining"):
            return super().sendmail(from_addr, to_addrs, msg)
        to_addrs = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
        size = f" size={len(msg)}" if self.has_extn("size") else ""
        self._held = []
        try:
            # putcmd() refuses a line break in an address, as smtplib would.
            self.putcmd("mail", f"FROM:{_quoted(from_addr)}{size}")
            for address in to_addrs:
                self.putcmd("rcpt", f"TO:{_quoted(address)}")
            self.putcmd("data")
        except BaseException:
            self._held = None
            raise
        # The replies in order; a 421 means the server is closing: read no further.
        replies: list[tuple[int, bytes]] = []
        for _command in range(len(to_addrs) + 2):
            replies.append(self.getreply())
            if replies[-1][0] == 421:
                break
        mail, rcpts = replies[0], replies[1 : len(to_addrs) + 1]
        refused = {
            address: reply
            for address, reply in zip(to_addrs, rcpts, strict=False)
            if reply[0] not in (250, 251)
        }
        error: smtplib.SMTPException | None = None
        if mail[0] != 250:
            error = smtplib.SMTPSenderRefused(mail[0], mail[1], from_addr)
        elif len(refused) == len(to_addrs) or len(rcpts) < len(to_addrs):
            error = smtplib.SMTPRecipientsRefused(refused)
        elif replies[-1][0] != 354:
            error = smtplib.SMTPDataError(*replies[-1])
        else:
            # Dots that begin a line are doubled, and the message ends with a lone dot.
            data = re.sub(rb"(?m)^\.", b"..", msg)
            if not data.endswith(b"\r\n"):
                data += b"\r\n"
            self.send(data + b".\r\n")
            replies.append(self.getreply())
            if replies[-1][0] == 250:
                return refused
            error = smtplib.SMTPDataError(*replies[-1])
        if replies[-1][0] == 421:
            self.close()
        elif replies[-1][0] == 354:
            # The server accepted DATA though the envelope failed: end an empty message
            # before starting over (RFC 2920, 3.1).
            self.send(b".\r\n")
            self.getreply()
            self._start_over()
        else:
            self._start_over()
        raise error

    def _start_over(self) -> None:
        # As smtplib does after a refusal: RSET, unless the server has gone.
        with suppress(smtplib.SMTPServerDisconnected):
            self.rset()


class PipeliningSMTPSSL(PipeliningSMTP, smtplib.SMTP_SSL):
    pass


# An address that needs nothing done to it: a dot-atom local part at an ASCII domain whose
# labels IDNA leaves alone. Django's sanitize_address() and smtplib's quoteaddr() return
# it as it is (or in angle brackets), after parsing it at a tenth of a millisecond each.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
PLAIN_ADDRESS = re.compile(rf"{_ATOM}(?:\.{_ATOM})*@{_LABEL}(?:\.{_LABEL})*")


def address_sanitized(address: Any, encoding: str) -> str:
    """sanitize_address(), with plain addresses passed through as it would return them."""
    if isinstance(address, str) and PLAIN_ADDRESS.fullmatch(address):
        return address
    return str(sanitize_address(address, encoding))


def _quoted(address: str) -> str:
    """smtplib.quoteaddr(), with plain addresses put in brackets as it would."""
    if PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


@functools.lru_cache(maxsize=16)
def _sender(address: str, encoding: str) -> str:
    return sanitize_address(address, encoding)


class SmtpBackend(smtp.EmailBackend):
    """Django's SMTP backend, but the sender's address (the same on every email) is made
    safe once per process, not once per message: parsing an address costs about a tenth of
    a millisecond, and a launch sends tens of thousands of emails. Its SMTP client pipelines
    where the server allows it (see PipeliningSMTP)."""

    @property
    def connection_class(self) -> type[smtplib.SMTP]:
        return PipeliningSMTPSSL if self.use_ssl else PipeliningSMTP

    def _send(self, email_message: EmailMessage) -> bool:
        if not email_message.recipients():
            return False
        encoding = email_message.encoding or settings.DEFAULT_CHARSET
        sender = _sender(email_message.from_email, encoding)
        recipients = [address_sanitized(to, encoding) for to in email_message.recipients()]
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
