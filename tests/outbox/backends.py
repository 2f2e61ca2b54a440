"""Email backends for the outbox tests: one that fails on demand, one that dies after sending."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django.core import mail
from django.core.mail.backends.locmem import EmailBackend


class FlakyBackend(EmailBackend):
    """The test outbox (mail.outbox), but each queued error is raised by one send instead."""

    errors: list[BaseException] = []

    def send_messages(self, messages: Sequence[mail.EmailMessage]) -> int:
        if FlakyBackend.errors:
            raise FlakyBackend.errors.pop(0)
        return super().send_messages(messages)


class Crash(BaseException):
    """Stands for the worker process dying (not an Exception: nothing catches it)."""


class AcceptThenCrashBackend(EmailBackend):
    """The server accepts the message, then the worker dies before it can mark it sent."""

    def send_messages(self, messages: Sequence[mail.EmailMessage]) -> int:
        super().send_messages(messages)
        raise Crash


class CancelOnFirstSendBackend(EmailBackend):
    """The test outbox, which runs `on_first_send` once, after the first message is taken:
    what another request does while a relay works through its batch."""

    on_first_send: list[Callable[[], object]] = []

    def send_messages(self, messages: Sequence[mail.EmailMessage]) -> int:
        sent = super().send_messages(messages)
        while CancelOnFirstSendBackend.on_first_send:
            CancelOnFirstSendBackend.on_first_send.pop()()
        return sent


class RecordingBackend(EmailBackend):
    """The test outbox, which notes what `record` returns at each send."""

    record: Callable[[], object] = staticmethod(lambda: None)
    seen: list[object] = []

    def send_messages(self, messages: Sequence[mail.EmailMessage]) -> int:
        RecordingBackend.seen.append(RecordingBackend.record())
        return super().send_messages(messages)
