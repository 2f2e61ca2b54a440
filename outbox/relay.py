"""The relay: send due outbox emails, each once, whatever the number of workers.

A relay claims a batch of due emails (OUTBOX_RELAY_BATCH) with `SELECT ... FOR UPDATE SKIP
LOCKED`, and in the same short transaction moves their next attempt to the end of the claim
(OUTBOX_CLAIM_SECONDS), so that other relays pass them by. The emails of a batch that carry
a code or a link are prepared together (the codes or links issued; for activations, two
statements for the whole batch) in a transaction committed before any of them is sent, so
the user's code exists before the email does. Then each email is sent in a transaction of
its own that marks it sent if it still waits (which locks it; an email cancelled since
the claim is not sent), sends it over the run's one SMTP conversation and commits. The
marks are committed without waiting for the disk (see _marks_without_waiting_for_the_disk).

A worker killed before a mark leaves that row pending (its transaction dies with its
connection), with the rest of its batch; once the claim lapses the next sweep sends them:
killed before the server accepted it, that is the only send; after, it is one duplicate
with the same Message-ID, code and link. A relay past half its claim (a slow SMTP server)
hands the rest of its batch back, due at once, rather than outlive the claim.

A failed send backs off (OUTBOX_RETRY_BASE_SECONDS, doubling, at most
OUTBOX_RETRY_MAX_SECONDS) until the row's deadline, then the row is failed for staff to see.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import smtplib
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from email.utils import parseaddr
from typing import Any

from django.conf import settings
from django.core.mail import get_connection
from django.db import DatabaseError, transaction
from django.db import connection as database
from django.utils import timezone
from django.utils.crypto import salted_hmac

from common.mail import BilingualEmail, email_messages, emails_render
from common.sql import update_by_pk
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


def _claim(now: dt.datetime, size: int) -> list[OutboxEmail]:
    """Take up to `size` due emails that no other relay holds, for CLAIM_SECONDS.

    The claim moves their next attempt to the end of the claim, in the transaction that
    locked them, so that other relays pass them by while this one prepares and sends them.
    A relay that dies leaves them to whichever relay comes after the claim has lapsed.
    """
    until = now + dt.timedelta(seconds=settings.OUTBOX_CLAIM_SECONDS)
    with transaction.atomic():
        rows = list(
            OutboxEmail.objects.select_for_update(skip_locked=True)
            .due(now)
            # Soonest deadline first: a user waiting for a code is not kept behind a
            # launch's activations, which may take the hour they have.
            .order_by("deadline", "id")[:size]
        )
        if rows:
            OutboxEmail.objects.filter(pk__in=[row.pk for row in rows]).update(
                next_attempt_at=until
            )
    return rows


def _unclaim(rows: list[OutboxEmail], now: dt.datetime) -> None:
    """Hand back claimed emails this relay will not send: due again at once."""
    OutboxEmail.objects.filter(pk__in=[row.pk for row in rows], status=EmailStatus.PENDING).update(
        next_attempt_at=now
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


def _prepare(rows: list[OutboxEmail], composer: Composer, report: RelayReport) -> None:
    """Issue what each email carries (its code or link), once, in one transaction committed
    before any of them is sent; an email whose subject is gone is cancelled instead.

    The rows are locked and read again first: an email cancelled since the claim (the user
    suspended, a newer code asked for) is not prepared, and one cancelled from now on waits
    for this transaction, so that the cancel's own retiring of links sees what it issued.
    """
    with transaction.atomic():
        # Unlike the marks, the codes and links the emails will carry wait for the disk.
        _synchronous_commit("on", local=True)
        waiting = set(
            OutboxEmail.objects.select_for_update()
            .filter(pk__in=[row.pk for row in rows], status=EmailStatus.PENDING)
            .values_list("pk", flat=True)
        )
        rows = [row for row in rows if row.pk in waiting]
        gone = composer.prepare_all(rows)
        for row in rows:
            if row.pk in gone:
                _finish(row, EmailStatus.CANCELLED, str(gone[row.pk]), report)
        prepared = [row for row in rows if row.pk not in gone]
        now = timezone.now()
        OutboxEmail.objects.filter(pk__in=[row.pk for row in prepared]).update(prepared_at=now)
        for row in prepared:
            row.prepared_at = now


def _relay_claimed(
    rows: list[OutboxEmail], connection: Any, report: RelayReport, claimed_at: float
) -> Any:
    """Prepare and send the claimed emails; return the SMTP connection to go on with.

    The batch is prepared, rendered and written by kind (common.mail.email_messages), then
    sent in the order claimed, each email in a transaction of its own (see _send): a relay
    killed after the server's "250" repeats that one email only. Past half its claim, the
    relay hands the rest back rather than outlive it.
    """
    now = timezone.now()
    order = {row.pk: position for position, row in enumerate(rows)}
    # Each waiting email with what it says, or why there is nothing to send.
    plan: list[tuple[OutboxEmail, BilingualEmail | NothingToSend]] = []
    by_kind: dict[str, list[OutboxEmail]] = {}
    for row in rows:
        if row.is_past_deadline(now):
            _finish(row, EmailStatus.FAILED, "Past its deadline: " + row.last_error, report)
            continue
        by_kind.setdefault(row.kind, []).append(row)
    for kind, same in by_kind.items():
        try:
            composer = composer_for(kind)
        except LookupError as error:
            for row in same:
                _finish(row, EmailStatus.FAILED, str(error), report)
            continue
        unprepared = [row for row in same if row.prepared_at is None]
        if composer.prepares and unprepared:
            _prepare(unprepared, composer, report)
        waiting = [row for row in same if row.status == EmailStatus.PENDING]
        contexts = composer.contexts_for(waiting)
        ready = [row for row in waiting if not isinstance(contexts[row.pk], NothingToSend)]
        emails = emails_render(
            composer.template, [contexts[row.pk] for row in ready], merge=composer.merge
        )
        messages = email_messages(
            [(email, row.to, message_id(row)) for row, email in zip(ready, emails, strict=True)]
        )
        built = {row.pk: message for row, message in zip(ready, messages, strict=True)}
        plan.extend(
            (row, built[row.pk] if row.pk in built else contexts[row.pk]) for row in waiting
        )
    # In the order claimed (the oldest first), whatever their kinds.
    plan.sort(key=lambda step: order[step[0].pk])
    for index, (row, email) in enumerate(plan):
        # The first email of a batch is always sent: a claim too short for any still makes
        # progress.
        if index and time.monotonic() - claimed_at > settings.OUTBOX_CLAIM_SECONDS / 2:
            _unclaim([later for later, _email in plan[index:]], timezone.now())
            report.more = True
            break
        if not _send(row, email, connection, report):
            # The server may have dropped the conversation: start a new one.
            connection.close()
            connection = get_connection(fail_silently=False)
    return connection


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
    row: OutboxEmail, message: BilingualEmail | NothingToSend, connection: Any, report: RelayReport
) -> bool:
    """Send the email if it still waits, and mark it; return False if the connection must
    be renewed.

    The mark comes first, in the transaction that sends: the conditional UPDATE locks the
    row and checks that it still waits (an email cancelled, or sent by a relay that took it
    over, since the claim is left alone), and the commit after the server's "250" makes it
    count. A worker that dies before the commit leaves the row waiting, as if unmarked.
    """
    if isinstance(message, NothingToSend):
        cancelled = {"status": EmailStatus.CANCELLED, "last_error": str(message)[:500]}
        report.cancelled += update_by_pk(OutboxEmail, row.pk, cancelled, status=EmailStatus.PENDING)
        return True
    attempts = row.attempts + 1
    with transaction.atomic():
        sent = {"status": EmailStatus.SENT, "sent_at": timezone.now(), "attempts": attempts}
        if not update_by_pk(
            OutboxEmail, row.pk, {**sent, "last_error": ""}, status=EmailStatus.PENDING
        ):
            return True
        started = time.monotonic()
        try:
            # Opened here, not by send_messages(), which would close it again after each
            # message: one conversation with the server carries every email of this run.
            connection.open()
            connection.send_messages([message])
        except (smtplib.SMTPException, OSError) as error:
            reason = f"{type(error).__name__}: {error}"[:500]
            _failed(row, attempts, reason, error, report, timezone.now())
            return False
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
    """Record a failed send (in place of its mark): try again later, or fail it for good."""
    OutboxEmail.objects.filter(pk=row.pk).update(
        status=EmailStatus.PENDING, sent_at=None, attempts=attempts
    )
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


def _synchronous_commit(value: str, *, local: bool = False) -> None:
    if database.vendor == "postgresql":
        with database.cursor() as cursor:
            cursor.execute(f"SET {'LOCAL ' if local else ''}synchronous_commit TO {value}")


@contextmanager
def _marks_without_waiting_for_the_disk() -> Iterator[None]:
    """On PostgreSQL, while the relay runs, its commits do not wait for the disk.

    Each email's mark is a commit; waiting for the write-ahead log to reach the disk each
    time kept a relay idle for most of each email. Committed so, a mark is seen by every
    other connection at once and survives the worker; only a crash of the database server
    itself can lose the last moment's marks (wal_writer_delay, 200 ms, three times at
    most), and those emails are then sent again: one more copy, never one fewer. The
    preparation (the codes and links issued) still waits for the disk (see _prepare).
    """
    _synchronous_commit("off")
    try:
        yield
    finally:
        # A connection that is gone took the setting with it.
        with suppress(DatabaseError):
            _synchronous_commit("DEFAULT")


def relay(*, limit: int | None = None, seconds: float | None = None) -> RelayReport:
    """Send due emails until none is left, or `limit` emails or `seconds` have passed."""
    report = RelayReport()
    handled = 0
    started = time.monotonic()
    connection = get_connection(fail_silently=False)
    try:
        with _marks_without_waiting_for_the_disk():
            while not report.more:
                if limit is not None and handled >= limit:
                    report.more = True
                    break
                if seconds is not None and time.monotonic() - started >= seconds:
                    report.more = True
                    break
                size = settings.OUTBOX_RELAY_BATCH
                if limit is not None:
                    size = min(size, limit - handled)
                claimed_at = time.monotonic()
                rows = _claim(timezone.now(), size)
                if not rows:
                    break
                handled += len(rows)
                connection = _relay_claimed(rows, connection, report, claimed_at)
    finally:
        connection.close()
    return report
