"""The relay: send due outbox emails, each once, whatever the number of workers.

For each email, two short transactions:
1. Claim the row (`SELECT ... FOR UPDATE SKIP LOCKED`, so workers never take the same one)
   and, the first time, let its composer prepare it (issue the code or link). Committed
   before anything is sent, so the user's code exists before the email does.
2. Claim it again, send it over the open SMTP connection and mark it sent, holding the row
   lock during the send. A worker killed before the mark leaves the row pending (its
   transaction dies with its connection) and the next sweep sends it: before the server
   accepted it, that is the only send; after, it is one duplicate with the same Message-ID,
   code and link.

A failed send backs off (OUTBOX_RETRY_BASE_SECONDS, doubling, at most
OUTBOX_RETRY_MAX_SECONDS) until the row's deadline, then the row is failed for staff to see.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import smtplib
import time
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.core.mail import get_connection
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from common.mail import templated_message
from outbox.composers import NothingToSend, composer_for
from outbox.models import EmailStatus, OutboxEmail

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class RelayReport:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled: int = 0
    # Whether due emails may remain (the relay stopped at its limit, not for want of work).
    more: bool = False


def message_id(row: OutboxEmail) -> str:
    """Return the row's Message-ID: the same on every send of this email, unique to it."""
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"
    tag = salted_hmac("outbox.message-id", str(row.pk), algorithm="sha256").hexdigest()[:16]
    return f"<outbox.{row.pk}.{tag}@{domain}>"


def _claim(pk: int | None, now: dt.datetime) -> OutboxEmail | None:
    due = OutboxEmail.objects.select_for_update(skip_locked=True).due(now)
    if pk is not None:
        return due.filter(pk=pk).first()
    return due.order_by("next_attempt_at", "id").first()


def _finish(row: OutboxEmail, status: str, error: str, report: RelayReport) -> None:
    row.status = status
    row.last_error = error[:500]
    row.save(update_fields=["status", "last_error"])
    if status == EmailStatus.FAILED:
        report.failed += 1
        logger.error(
            "email failed",
            extra={"event": {"outbox_id": row.pk, "kind": row.kind, "error": row.last_error}},
        )
    else:
        report.cancelled += 1


def _prepare_next(now: dt.datetime, report: RelayReport) -> int | None:
    """Claim the next due email and prepare it if it never was; return its id, or None."""
    with transaction.atomic():
        row = _claim(None, now)
        if row is None:
            return None
        if row.is_past_deadline(now):
            _finish(row, EmailStatus.FAILED, "Past its deadline: " + row.last_error, report)
            return row.pk
        try:
            composer = composer_for(row.kind)
        except LookupError as error:
            _finish(row, EmailStatus.FAILED, str(error), report)
            return row.pk
        if row.prepared_at is None and composer.prepare is not None:
            try:
                with transaction.atomic():
                    composer.prepare(row)
            except NothingToSend as gone:
                _finish(row, EmailStatus.CANCELLED, str(gone), report)
                return row.pk
            row.prepared_at = timezone.now()
            row.save(update_fields=["prepared_at"])
        return row.pk


def _backoff(attempts: int) -> dt.timedelta:
    seconds = settings.OUTBOX_RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1)
    return dt.timedelta(seconds=min(seconds, settings.OUTBOX_RETRY_MAX_SECONDS))


def _is_permanent(error: Exception) -> bool:
    """Return whether the server refused the message for good (a 5xx reply)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _message in error.recipients.values())
    code = getattr(error, "smtp_code", None)
    return isinstance(code, int) and code >= 500


def _send(pk: int, connection: Any, report: RelayReport) -> bool:
    """Send the claimed email and mark it; return False if the connection must be renewed."""
    with transaction.atomic():
        now = timezone.now()
        row = _claim(pk, now)
        if row is None:  # another worker sent it meanwhile, or it was cancelled
            return True
        try:
            composer = composer_for(row.kind)
            context = composer.context(row)
        except NothingToSend as gone:
            _finish(row, EmailStatus.CANCELLED, str(gone), report)
            return True
        message = templated_message(
            composer.template,
            to=[row.to],
            context=context,
            headers={"Message-ID": message_id(row)},
        )
        row.attempts += 1
        started = time.monotonic()
        try:
            connection.send_messages([message])
        except (smtplib.SMTPException, OSError) as error:
            reason = f"{type(error).__name__}: {error}"[:500]
            if _is_permanent(error):
                _finish(row, EmailStatus.FAILED, reason, report)
                row.save(update_fields=["attempts"])
                return False
            row.last_error = reason
            row.next_attempt_at = now + _backoff(row.attempts)
            if row.next_attempt_at >= row.deadline:
                row.save(update_fields=["attempts", "last_error", "next_attempt_at"])
                _finish(row, EmailStatus.FAILED, "Deadline reached: " + reason, report)
            else:
                row.save(update_fields=["attempts", "last_error", "next_attempt_at"])
                report.retrying += 1
                logger.warning(
                    "email send failed, will retry",
                    extra={
                        "event": {
                            "outbox_id": row.pk,
                            "kind": row.kind,
                            "attempts": row.attempts,
                            "next_attempt_at": row.next_attempt_at.isoformat(),
                            "error": reason,
                        }
                    },
                )
            return False
        row.status = EmailStatus.SENT
        row.sent_at = timezone.now()
        row.last_error = ""
        row.save(update_fields=["status", "sent_at", "attempts", "last_error"])
        report.sent += 1
        logger.info(
            "email sent",
            extra={
                "event": {
                    "outbox_id": row.pk,
                    "kind": row.kind,
                    "attempts": row.attempts,
                    "ms": round((time.monotonic() - started) * 1000, 1),
                }
            },
        )
        return True


def relay(*, limit: int | None = None, seconds: float | None = None) -> RelayReport:
    """Send due emails until none is left, or `limit` emails or `seconds` have passed."""
    report = RelayReport()
    handled = 0
    started = time.monotonic()
    connection = get_connection(fail_silently=False)
    try:
        while True:
            if limit is not None and handled >= limit:
                report.more = True
                break
            if seconds is not None and time.monotonic() - started >= seconds:
                report.more = True
                break
            pk = _prepare_next(timezone.now(), report)
            if pk is None:
                break
            handled += 1
            if not _send(pk, connection, report):
                # The server may have dropped the conversation: start a new one.
                connection.close()
                connection = get_connection(fail_silently=False)
    finally:
        connection.close()
    return report
