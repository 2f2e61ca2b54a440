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
from email.utils import formatdate
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
class Merge:
    """How an email of a mail merge was made: its group's text, with marks where the values
    go (the same object for the whole group), and its own values for the marks."""

    marked: Rendered
    values: tuple[tuple[str, str], ...]  # (mark, value)


@dataclasses.dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    html: str
    merge: Merge | None = dataclasses.field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, parts: Sequence[str], merge: Merge | None = None) -> Rendered:
        subject, body, html = parts
        return cls(" ".join(subject.split()), body, html, merge)


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
        marked = Rendered.of(text)

        def merged(
            context: dict[str, Any], text: list[str] = text, marked: Rendered = marked
        ) -> Rendered:
            values = tuple((mark, str(context[key])) for key, mark in marks.items())
            return Rendered.of([_merged(part, values) for part in text], Merge(marked, values))

        first = contexts[members[0]]
        if merged(first) != email_render(name, first):
            for index in members:
                rendered[index] = email_render(name, contexts[index])
            continue
        for index in members:
            rendered[index] = merged(contexts[index])
    return [email for email in rendered if email is not None]


def _merged(text: str, values: Sequence[tuple[str, str]]) -> str:
    """Put each value in place of its mark: as it is, or escaped where the mark was."""
    for mark, value in values:
        text = text.replace(mark, value).replace(escape(mark), escape(value))
    return text


def email_message(
    rendered: Rendered, *, to: Sequence[str], headers: dict[str, str] | None = None
) -> BilingualEmail:
    message = BilingualEmail(
        rendered.subject,
        rendered.body,
        settings.DEFAULT_FROM_EMAIL,
        list(to),
        headers=headers or {},
    )
    message.attach_alternative(rendered.html, "text/html")
    return message


# Where a mail merge group's message is written once: the recipient and the Message-ID.
TO_MARK = f"to{MARK}mark@merge.invalid"
ID_MARK = f"<id{MARK}mark@merge.invalid>"
# The longest line a merged text part may have (RFC 5322's limit; Django's switch to
# quoted-printable, which would write the values differently).
LONGEST_LINE = 998
# The longest value (escaped) that a message merges in place.
MERGED_LONGEST = 200


def email_messages(emails: Sequence[tuple[Rendered, str, str]]) -> list[BilingualEmail]:
    """Build one message per (rendered email, recipient, Message-ID), as email_message()
    does, and write each one's bytes for SMTP beforehand where they can be had cheaply.

    The emails of a mail merge group (see emails_render) differ only in their values, their
    recipient and their Message-ID. Their message is written once with marks in those places
    (one Date and boundary for the group), and each email's bytes are that with its own put
    in, as text or escaped, where the values are plain: ASCII, on lines well inside the
    limit, a recipient and Message-ID that fit their header lines. The group's first email
    is also written in full and must come out the same, or the group is written one by one.
    """
    messages = [
        email_message(rendered, to=[to], headers={"Message-ID": message_id})
        for rendered, to, message_id in emails
    ]
    groups: dict[int, list[int]] = {}
    for index, (rendered, to, message_id) in enumerate(emails):
        if rendered.merge is not None and _mergeable(rendered.merge, to, message_id):
            groups.setdefault(id(rendered.merge.marked), []).append(index)
    for members in groups.values():
        _write_merged(emails, messages, members)
    return messages


def _mergeable(merge: Merge, to: str, message_id: str) -> bool:
    values = [value for _mark, value in merge.values]
    return (
        all(value.isascii() and len(escape(value)) <= MERGED_LONGEST for value in values)
        # "To: " and "Message-ID: " with the value inside 78 characters: written unfolded.
        and bool(PLAIN_ADDRESS.fullmatch(to))
        and len(to) <= 70
        and message_id.isascii()
        and len(message_id) <= 64
        and "\r" not in message_id
        and "\n" not in message_id
    )


def _write_merged(
    emails: Sequence[tuple[Rendered, str, str]], messages: list[BilingualEmail], members: list[int]
) -> None:
    first = emails[members[0]][0].merge
    assert first is not None
    marked = first.marked
    marks = [mark for mark, _value in first.values]
    forms = [form for mark in marks for form in (mark, escape(mark))]
    # The longest a line could come to, each mark on it replaced by a value at its longest.
    longest = max(
        len(line.encode()) + MERGED_LONGEST * sum(line.count(form) for form in forms)
        for part in (marked.body, marked.html)
        for line in part.splitlines()
    )
    if any(mark in marked.subject for mark in marks) or longest > LONGEST_LINE:
        return
    date = formatdate(localtime=settings.EMAIL_USE_LOCALTIME)
    headers = {"Date": date, "Message-ID": ID_MARK}
    template = email_message(marked, to=[TO_MARK], headers=headers)
    template.boundary = _boundary([marked.body, marked.html])
    raw = template.message().as_bytes(linesep="\r\n")  # type: ignore[call-arg]
    if raw.count(TO_MARK.encode()) != 1 or raw.count(ID_MARK.encode()) != 1:
        return
    # The marks as they stand in the bytes: as they are, and escaped.
    replaced = [(mark.encode(), escape(mark).encode()) for mark in marks]
    for index in members:
        rendered, to, message_id = emails[index]
        assert rendered.merge is not None
        message = messages[index]
        message.extra_headers = {"Date": date, "Message-ID": message_id}
        message.boundary = template.boundary
        data = raw.replace(TO_MARK.encode(), to.encode()).replace(
            ID_MARK.encode(), message_id.encode()
        )
        for (mark, escaped), (_mark, value) in zip(replaced, rendered.merge.values, strict=True):
            data = data.replace(mark, value.encode()).replace(escaped, escape(value).encode())
        message.prebuilt = data
    written = messages[members[0]]
    if written.message().as_bytes(linesep="\r\n") != written.prebuilt:  # type: ignore[call-arg]
        for index in members:
            messages[index].prebuilt = None


def _boundary(texts: Sequence[str]) -> str:
    """A MIME boundary absent from the texts. Left to itself, the generator draws one and
    compiles a regular expression to prove it absent from the parts: per message, since
    each boundary is new. 96 random bits, checked with a plain search, do as well; and at
    that length the Content-Type header fits its line, unfolded."""
    boundary = "=_" + secrets.token_hex(12)
    while any(boundary in text for text in texts):
        boundary = "=_" + secrets.token_hex(12)
    return boundary


def templated_message(
    name: str, *, to: Sequence[str], context: dict[str, Any], headers: dict[str, str] | None = None
) -> BilingualEmail:
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
    """An email whose English and Chinese subject folds without a blank first line.

    `boundary` fixes its MIME boundary (one is drawn otherwise). `prebuilt`, when set (by
    email_messages()), holds the bytes message() writes, which SmtpBackend sends as they
    are: the message is not to be changed after.
    """

    boundary: str | None = None
    prebuilt: bytes | None = None

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
            texts = [str(self.body), *(str(content) for content, _type in self.alternatives)]
            msg.set_boundary(self.boundary or _boundary(texts))
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
    """smtplib.quoteaddr(), with plain addresses put in brackets as it would, and others
    (the sender's, with its name) parsed once."""
    if PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return _quoted_parsed(address)


@functools.lru_cache(maxsize=16)
def _quoted_parsed(address: str) -> str:
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
        data = getattr(email_message, "prebuilt", None)
        if data is None:
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
