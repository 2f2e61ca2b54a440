"""The relay: send due outbox emails, each once, whatever the number of workers.

Each email is claimed with `SELECT ... FOR UPDATE SKIP LOCKED` (so workers never take the
same one), sent over the run's one SMTP conversation while the row stays locked, and marked
sent, in one short transaction. An email that carries a code or a link is first prepared
(the code or link issued) in a transaction of its own, committed before anything is sent, so
the user's code exists before the email does.

A worker killed before the mark leaves the row pending (its transaction dies with its
connection) and the next sweep sends it: killed before the server accepted it, that is the
only send; after, it is one duplicate with the same Message-ID, code and link.

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
from outbox.composers import Composer, NothingToSend, composer_for
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


def _claim(now: dt.datetime) -> OutboxEmail | None:
    """Lock the next due email that no other worker holds, or return None."""
    return (
        OutboxEmail.objects.select_for_update(skip_locked=True)
        .due(now)
        .order_by("next_attempt_at", "id")
        .first()
    )


def _finish(row: OutboxEmail, status: str, error: str, report: RelayReport) -> None:
    row.status = status
    row.last_error = error[:500]
    OutboxEmail.objects.filter(pk=row.pk).update(status=status, last_error=row.last_error)
    if status == EmailStatus.FAILED:
        report.failed += 1
        logger.error(
            "email failed",
            extra={"event": {"outbox_id": row.pk, "kind": row.kind, "error": row.last_error}},
        )
    else:
        report.cancelled += 1


def _prepare(row: OutboxEmail, composer: Composer, report: RelayReport) -> None:
    """Issue what the email carries (its code or link), once; committed before any send."""
    try:
        with transaction.atomic():
            assert composer.prepare is not None
            composer.prepare(row)
    except NothingToSend as gone:
        _finish(row, EmailStatus.CANCELLED, str(gone), report)
        return
    OutboxEmail.objects.filter(pk=row.pk).update(prepared_at=timezone.now())


def _relay_next(connection: Any, report: RelayReport) -> tuple[bool, bool]:
    """Handle the next due email in one transaction; return (found one, connection is fine).

    An email whose composer prepares something is prepared in one transaction (committed,
    so the code exists before the email does) and sent in the next.
    """
    with transaction.atomic():
        now = timezone.now()
        row = _claim(now)
        if row is None:
            return False, True
        if row.is_past_deadline(now):
            _finish(row, EmailStatus.FAILED, "Past its deadline: " + row.last_error, report)
            return True, True
        try:
            composer = composer_for(row.kind)
        except LookupError as error:
            _finish(row, EmailStatus.FAILED, str(error), report)
            return True, True
        if row.prepared_at is None and composer.prepare is not None:
            _prepare(row, composer, report)
            return True, True
        return True, _send(row, composer, connection, report, now)


def _backoff(attempts: int) -> dt.timedelta:
    seconds = settings.OUTBOX_RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1)
    return dt.timedelta(seconds=min(seconds, settings.OUTBOX_RETRY_MAX_SECONDS))


def _is_permanent(error: Exception) -> bool:
    """Return whether the server refused the message for good (a 5xx reply)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _message in error.recipients.values())
    code = getattr(error, "smtp_code", None)
    return isinstance(code, int) and code >= 500


def _send(
    row: OutboxEmail, composer: Composer, connection: Any, report: RelayReport, now: dt.datetime
) -> bool:
    """Send the locked email and mark it; return False if the connection must be renewed."""
    try:
        context = composer.context(row)
    except NothingToSend as gone:
        _finish(row, EmailStatus.CANCELLED, str(gone), report)
        return True
    message = templated_message(
        composer.template, to=[row.to], context=context, headers={"Message-ID": message_id(row)}
    )
    attempts = row.attempts + 1
    started = time.monotonic()
    try:
        # Opened here, not by send_messages(), which would close it again after each message:
        # one conversation with the server carries every email of this run.
        connection.open()
        connection.send_messages([message])
    except (smtplib.SMTPException, OSError) as error:
        _failed(row, attempts, f"{type(error).__name__}: {error}"[:500], error, report, now)
        return False
    OutboxEmail.objects.filter(pk=row.pk).update(
        status=EmailStatus.SENT, sent_at=timezone.now(), attempts=attempts, last_error=""
    )
    report.sent += 1
    logger.info(
        "email sent",
        extra={
            "event": {
                "outbox_id": row.pk,
                "kind": row.kind,
                "attempts": attempts,
                "ms": round((time.monotonic() - started) * 1000, 1),
            }
        },
    )
    return True


def _failed(
    row: OutboxEmail,
    attempts: int,
    reason: str,
    error: Exception,
    report: RelayReport,
    now: dt.datetime,
) -> None:
    """Record a failed send: try again later, or fail the email for good."""
    OutboxEmail.objects.filter(pk=row.pk).update(attempts=attempts)
    if _is_permanent(error):
        _finish(row, EmailStatus.FAILED, reason, report)
        return
    next_attempt_at = now + _backoff(attempts)
    if next_attempt_at >= row.deadline:
        _finish(row, EmailStatus.FAILED, "Deadline reached: " + reason, report)
        return
    OutboxEmail.objects.filter(pk=row.pk).update(last_error=reason, next_attempt_at=next_attempt_at)
    report.retrying += 1
    logger.warning(
        "email send failed, will retry",
        extra={
            "event": {
                "outbox_id": row.pk,
                "kind": row.kind,
                "attempts": attempts,
                "next_attempt_at": next_attempt_at.isoformat(),
                "error": reason,
            }
        },
    )


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
            found, connection_fine = _relay_next(connection, report)
            if not found:
                break
            handled += 1
            if not connection_fine:
                # The server may have dropped the conversation: start a new one.
                connection.close()
                connection = get_connection(fail_silently=False)
    finally:
        connection.close()
    return report
