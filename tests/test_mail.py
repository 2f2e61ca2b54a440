"""Emails as a batch renders and sends them: the same bytes as one by one, only cheaper."""

from __future__ import annotations

import smtplib
from email.header import Header
from email.message import Message
from email.policy import compat32

import pytest
from django.core.mail import EmailMessage, get_connection
from django.core.mail.message import sanitize_address

from common.mail import (
    _quoted,
    address_sanitized,
    email_message,
    email_messages,
    email_render,
    emails_render,
)
from participants.models import Terminal
from tests.stack import SmtpSink

pytestmark = pytest.mark.django_db


def _templates(settings, folder, name: str, subject: str, body: str, html: str) -> None:
    """Make emails/<name>-subject.txt, -body.txt and -body.html templates in `folder`."""
    (folder / "emails").mkdir()
    for part, text in zip(("subject.txt", "body.txt", "body.html"), (subject, body, html)):
        (folder / "emails" / f"{name}-{part}").write_text(text)
    settings.TEMPLATES = [{**engine, "DIRS": [folder]} for engine in settings.TEMPLATES]


def _smtp(sink: SmtpSink):
    """The portal's SMTP backend, talking to the sink."""
    return get_connection(
        "common.mail.SmtpBackend", host="127.0.0.1", port=sink.port, use_tls=False
    )


def _contexts(*login_ids: str) -> list[dict]:
    terminal = Terminal.objects.get(code="CCASS")
    return [
        {
            "login_id": login_id,
            "link": f"https://portal.example/activate/#tok-{number}&x=<{number}>",
            "hours": 72,
            "terminal": terminal,
        }
        for number, login_id in enumerate(login_ids)
    ]


def test_a_merged_batch_reads_exactly_as_each_email_rendered_alone():
    # Values the HTML escapes and the text does not, to catch a mark put in the wrong form.
    contexts = _contexts("A0001U01", "B&B<2>U02", 'C"3"U03')
    merged = emails_render("activation", contexts, merge=("login_id", "link"))
    assert merged == [email_render("activation", context) for context in contexts]
    assert "Dear user B&amp;B&lt;2&gt;U02," in merged[1].html


def test_emails_that_differ_in_more_than_the_merged_values_are_rendered_apart():
    contexts = _contexts("A0001U01", "B0002U02")
    contexts[0]["hours"] = 48  # two groups: the shared part differs
    merged = emails_render("activation", contexts, merge=("login_id", "link"))
    assert merged == [email_render("activation", context) for context in contexts]
    assert "48 hours" in merged[0].body and "72 hours" in merged[1].body


def test_a_template_that_changes_a_merged_value_is_rendered_in_full(settings, tmp_path):
    # A filter that a mark would not survive: the first email, also rendered in full,
    # differs, and the batch is rendered in full.
    _templates(
        settings,
        tmp_path,
        "cut",
        "Hello",
        "{{ login_id|slice:':3' }} {{ link }}",
        "<p>{{ link }}</p>",
    )
    contexts = _contexts("A0001U01", "B0002U02")
    merged = emails_render("cut", contexts, merge=("login_id", "link"))
    assert merged == [email_render("cut", context) for context in contexts]
    assert [email.body.split()[0] for email in merged] == ["A00", "B00"]


def test_an_email_whose_merged_value_is_empty_is_rendered_in_full(settings, tmp_path):
    # A template that tests the value: a mark is always true, an empty value is not. The
    # group's first email passes the check; the second, empty, must not be merged.
    _templates(
        settings,
        tmp_path,
        "greet",
        "Hello",
        "{% if login_id %}Dear {{ login_id }}{% else %}Dear user{% endif %}",
        "<p>{{ link }}</p>",
    )
    contexts = _contexts("A0001U01", "")
    merged = emails_render("greet", contexts, merge=("login_id", "link"))
    assert [email.body for email in merged] == ["Dear A0001U01", "Dear user"]


def test_the_message_is_written_as_the_standard_policy_writes_it():
    (context,) = _contexts("A0001U01")
    message = email_message(
        email_render("activation", context),
        to=["a0001u01@firm.example"],
        headers={"Message-ID": "<outbox.1.x@ccass.example>"},
    ).message()
    fast = message.as_bytes(linesep="\r\n")
    # The subject as email.header.Header encodes it afresh, written by the standard policy.
    subject = str(message["Subject"])
    del message["Subject"]
    # Set as the standard library sets it (Django's __setitem__ would encode it again).
    Message.__setitem__(message, "Subject", Header(subject, "utf-8", header_name="Subject"))
    message.policy = compat32
    assert fast == message.as_bytes(linesep="\r\n")
    assert b"Subject: =?utf-8?" in fast  # the bilingual subject, encoded
    assert not subject.isascii()


def test_the_smtp_backend_delivers_with_the_sender_and_recipient(settings):
    (context,) = _contexts("A0001U01")
    with SmtpSink() as sink:
        connection = _smtp(sink)
        messages = [
            email_message(email_render("activation", context), to=[f"user{n}@firm.example"])
            for n in range(2)
        ]
        assert connection.send_messages(messages) == 2
        received = sink.handler.received
    assert [mail.to for mail in received] == ["user0@firm.example", "user1@firm.example"]
    assert received[0].parsed["From"] == settings.DEFAULT_FROM_EMAIL
    assert "A0001U01" in received[0].text


def test_text_parts_show_values_as_they_are_and_the_html_escapes_them():
    # An apostrophe is common in an address (o'brien@...): the text part must not show
    # "o&#x27;brien", nor a link's "&" as "&amp;".
    email = email_render(
        "email-changed",
        {"login_id": "A0001U01", "old": "old@firm.example", "new": "o'brien&co@firm.example"},
    )
    assert "o'brien&co@firm.example" in email.body
    assert "o&#x27;brien&amp;co@firm.example" in email.html
    assert "&#x27;" not in email.body and "&amp;" not in email.body


def _sent_through(sink: SmtpSink, addresses: list[str]) -> list[str]:
    """Send one activation to each address over one connection; return each one's outcome."""
    (context,) = _contexts("A0001U01")
    rendered = email_render("activation", context)
    connection = _smtp(sink)
    outcomes = []
    connection.open()
    try:
        for address in addresses:
            try:
                connection.send_messages([email_message(rendered, to=[address])])
            except smtplib.SMTPRecipientsRefused as error:
                ((code, _reply),) = error.recipients.values()
                outcomes.append(f"refused {code}")
            else:
                outcomes.append("sent")
    finally:
        connection.close()
    return outcomes


@pytest.mark.parametrize("pipelining", [True, False])
def test_emails_arrive_whole_whether_or_not_the_server_pipelines(pipelining):
    addresses = ["one@firm.example", "two@firm.example", "three@firm.example"]
    with SmtpSink() as sink:
        sink.handler.pipelining = pipelining
        assert _sent_through(sink, addresses) == ["sent"] * 3
        received = list(sink.handler.received)
        # Pipelined where the server offers it: MAIL, RCPT and DATA in one write.
        assert sink.handler.pipelined == (3 if pipelining else 0)
    assert [mail.to for mail in received] == addresses
    (context,) = _contexts("A0001U01")
    alone = email_message(email_render("activation", context), to=["x@firm.example"]).message()
    for mail in received:
        assert mail.parsed["Subject"] == str(alone["Subject"])
        assert "A0001U01" in mail.text


@pytest.mark.parametrize("pipelining", [True, False])
def test_a_refused_recipient_fails_that_email_alone_and_the_next_goes_through(pipelining):
    with SmtpSink() as sink:
        sink.handler.pipelining = pipelining
        sink.handler.unknown = {"gone@firm.example"}
        outcomes = _sent_through(sink, ["gone@firm.example", "here@firm.example"])
        received = list(sink.handler.received)
    assert outcomes == ["refused 550", "sent"]
    assert [mail.to for mail in received] == ["here@firm.example"]


def test_a_message_with_lines_that_begin_with_a_dot_arrives_as_written():
    body = ".\n..two dots\nplain\n."
    with SmtpSink() as sink:
        connection = _smtp(sink)
        message = EmailMessage("Dots", body, "portal@hkex.example", ["dots@firm.example"])
        assert connection.send_messages([message]) == 1
        (received,) = list(sink.handler.received)
        assert sink.handler.pipelined == 1
    assert received.parsed.get_content().replace("\r\n", "\n").rstrip("\n") == body


def test_a_server_closing_with_421_is_left_and_the_email_can_be_tried_again():
    with SmtpSink() as sink:
        sink.handler.mode = "421"
        connection = _smtp(sink)
        message = EmailMessage("Later", "text", "portal@hkex.example", ["later@firm.example"])
        connection.open()  # one conversation, as the relay holds it
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            connection.send_messages([message])
        assert [code for code, _reply in refused.value.recipients.values()] == [421]
        # The client closed its side: a new conversation carries the email once the
        # server is back.
        assert connection.connection.sock is None
        connection.close()
        sink.handler.mode = "accept"
        assert connection.send_messages([message]) == 1
        assert [mail.to for mail in sink.handler.received] == ["later@firm.example"]


ADDRESSES = [
    "user@firm.example",
    "A0001U01@Firm.Example",
    "o'brien+ccass@sub.firm-hk.example",
    "a..b@firm.example",
    ".lead@firm.example",
    "x@-bad.example",
    "x@bad-.example",
    "local@single",
    "trail@firm.example.",
    '"quoted local"@firm.example',
    "Jane Doe <jane@firm.example>",
    "陳大文@firm.example",
    "user@例子.香港",
    "x@" + "a" * 63 + ".example",
    "x@" + "a" * 64 + ".example",
    "two@at@firm.example",
]


@pytest.mark.parametrize("address", ADDRESSES)
def test_a_plain_address_passes_as_django_and_smtplib_would_make_it(address):
    def outcome(make, *args):
        try:
            return make(address, *args)
        except Exception as error:  # the same refusal, whichever way it goes
            return type(error)

    assert outcome(address_sanitized, "utf-8") == outcome(sanitize_address, "utf-8")
    if isinstance(outcome(sanitize_address, "utf-8"), str):
        quoted = sanitize_address(address, "utf-8")
        assert _quoted(quoted) == smtplib.quoteaddr(quoted)


def _batch(*login_ids: str, to: str = "{n}@firm.example") -> list[tuple]:
    contexts = _contexts(*login_ids)
    rendered = emails_render("activation", contexts, merge=("login_id", "link"))
    return [
        (email, to.format(n=n), f"<outbox.{n}.0123456789abcdef@ccass.example>")
        for n, email in enumerate(rendered)
    ]


def test_each_message_of_a_merge_is_written_as_if_written_alone():
    emails = _batch("A0001U01", "A0001U02", "B&<'\">U03")
    messages = email_messages(emails)
    # Written beforehand, once for the group: each the bytes its own message writes.
    assert all(message.prebuilt is not None for message in messages)
    for message, (rendered, to, message_id) in zip(messages, emails, strict=True):
        assert message.prebuilt == message.message().as_bytes(linesep="\r\n")
        assert message.to == [to]
        assert (message.subject, message.body) == (rendered.subject, rendered.body)
        assert message.extra_headers["Message-ID"] == message_id


def test_a_merge_is_written_one_by_one_where_its_values_are_not_plain():
    emails = _batch("A0001U01", "陳0001U02")
    emails += _batch("A0001U03", to="{n}-" + "x" * 70 + "@firm.example")
    messages = email_messages(emails)
    assert [message.prebuilt is not None for message in messages] == [True, False, False]
    for message, (rendered, to, _message_id) in zip(messages, emails, strict=True):
        assert message.to == [to]
        assert message.body == rendered.body


def test_merged_messages_arrive_each_with_its_own_recipient_id_and_values():
    emails = _batch("A0001U01", "A0001U02", "A0001U03")
    with SmtpSink() as sink:
        connection = _smtp(sink)
        assert connection.send_messages(email_messages(emails)) == 3
        received = list(sink.handler.received)
    for mail, (rendered, to, message_id) in zip(received, emails, strict=True):
        assert mail.to == to
        assert mail.parsed["To"] == to
        assert mail.parsed["Message-ID"] == message_id
        assert mail.parsed["Subject"] == rendered.subject
        assert mail.text.replace("\r\n", "\n") == rendered.body.replace("\r\n", "\n")


def test_a_merge_whose_subject_carries_a_value_is_written_one_by_one(settings, tmp_path):
    # The subject is encoded in the message, where a mark could not be found and replaced.
    _templates(
        settings,
        tmp_path,
        "named",
        "Your ID {{ login_id }} / 您的登入名稱",
        "{{ login_id }} {{ link }}",
        "<p>{{ link }}</p>",
    )
    rendered = emails_render("named", _contexts("A0001U01", "B0002U02"), merge=("login_id", "link"))
    assert all(email.merge is not None for email in rendered)
    messages = email_messages(
        [(email, f"{n}@firm.example", f"<{n}@ccass.example>") for n, email in enumerate(rendered)]
    )
    assert [message.prebuilt for message in messages] == [None, None]
    assert [str(message.message()["Subject"]) for message in messages] == [
        "Your ID A0001U01 / 您的登入名稱",
        "Your ID B0002U02 / 您的登入名稱",
    ]
