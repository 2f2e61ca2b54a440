"""Bulk registration of designated emails from a CSV: check every row, then apply all or none."""

from __future__ import annotations

import csv
import io
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections, transaction
from django.db.models import F, OuterRef, Subquery
from django.db.models.functions import JSONObject
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import AuditAction, Outcome
from audit.services import audit_record, audit_record_many
from authn.activation import activation_links_revoke_many
from authn.emails import ACTIVATION
from dms.models import (
    BulkEmailBatch,
    BulkEmailRow,
    BulkOutcome,
    BulkReason,
    BulkStatus,
    ChangeRequest,
    RequestKind,
)
from dms.notifications import email_changed_notify_many
from dms.refusals import RequestForbidden, RequestRefused
from migration import phases
from outbox.services import email_queue_many
from participants.models import (
    EMAIL_MAX_LENGTH,
    User,
    UserStatus,
    normalize_email,
    normalize_login_id,
)

logger = logging.getLogger(__name__)

HEADER_NAMES = {"login id", "login_id", "loginid", "user id", "user_id", "userid"}
# How often the checking task reports progress to the page, in rows.
PROGRESS_EVERY = 1000


@dataclass(frozen=True)
class ParsedRow:
    line: int
    login_id: str
    email: str
    well_formed: bool


def _decode(raw: bytes) -> str:
    try:
        # utf-8-sig drops a byte order mark if there is one.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise RequestRefused(
            _("The file is not UTF-8 text (line %(line)d). Save it as CSV UTF-8 and try again.")
            % {"line": raw[: error.start].count(b"\n") + 1}
        ) from error
    if "\x00" in text:
        # A NUL character is no part of a CSV file (and the csv module refuses it).
        raise RequestRefused(
            _(
                "The file contains a NUL character (line %(line)d): it is not a text file. "
                "Save it as CSV UTF-8 and try again."
            )
            % {"line": text[: text.index("\x00")].count("\n") + 1}
        )
    return text


def parse_rows(raw: bytes) -> list[ParsedRow]:
    """Return the file's rows: login ID and email, comma- or tab-separated, header optional."""
    text = _decode(raw)
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first_line else ","
    rows: list[ParsedRow] = []
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        for index, cells in enumerate(reader, start=1):
            cells = [cell.strip() for cell in cells]
            if not any(cells):
                continue
            if index == 1 and cells[0].casefold() in HEADER_NAMES:
                continue
            well_formed = len([c for c in cells if c]) == 2 and len(cells) == 2
            # The values are kept whole: a cell is refused, never cut to fit.
            login_id = cells[0] if cells else ""
            email = cells[1] if len(cells) > 1 else ""
            rows.append(ParsedRow(index, login_id, email, well_formed))
    except csv.Error as error:
        raise RequestRefused(
            _("The file could not be read as CSV (line %(line)d): %(error)s")
            % {"line": reader.line_num, "error": error}
        ) from error
    return rows


@transaction.atomic
def bulk_upload(
    *, acting_user: User, filename: str, raw: bytes, request: HttpRequest | None = None
) -> BulkEmailBatch:
    """Keep the maker's file and have it checked in the background."""
    from dms.tasks import bulk_check

    if acting_user.participant is None or not acting_user.is_maker:
        raise RequestForbidden(_("Only a maker DA can upload a file."))
    if len(raw) > settings.BULK_MAX_BYTES:
        raise RequestRefused(_("The file is too large."))
    _decode(raw)
    batch = BulkEmailBatch.objects.create(
        participant=acting_user.participant,
        maker=acting_user,
        filename=filename[:255],
        source=raw,
    )
    audit_record(
        action=AuditAction.BULK_UPLOADED,
        outcome=Outcome.SUCCESS,
        request=request,
        actor=acting_user,
        participant=acting_user.participant,
        detail={"batch": batch.pk, "filename": batch.filename},
    )
    batch_id = batch.pk
    if settings.BULK_CHECK_IN_THREAD:
        # The embedded default has no worker: check in a thread, so that the page shows
        # the check's progress as it would with one.
        transaction.on_commit(lambda: _check_in_thread(batch_id))
    else:
        transaction.on_commit(lambda: bulk_check.delay(batch_id))
    return batch


def _check_in_thread(batch_id: int) -> None:
    def check() -> None:
        try:
            bulk_check(batch_id=batch_id)
        finally:
            connections.close_all()

    threading.Thread(target=check, name=f"bulk-check-{batch_id}", daemon=True).start()


def _classify(
    batch: BulkEmailBatch, parsed: list[ParsedRow]
) -> Iterator[tuple[ParsedRow, str, str, User | None]]:
    """Yield each row with its outcome, its refusal reason and its user."""
    participant = batch.participant
    da_open = phases.da_email_registration_open(participant)
    # Only the firm's own users are looked at: an ID of another firm reads exactly as one
    # that does not exist, so that a file cannot probe which login IDs exist elsewhere.
    firm_users = {
        user.login_id.lower(): user
        for user in User.objects.for_participant(participant).only(
            "pk", "login_id", "email", "version", "role", "participant_id"
        )
    }
    keys = [normalize_login_id(row.login_id) for row in parsed]
    seen = Counter(key for key, row in zip(keys, parsed, strict=True) if row.well_formed)
    limit = settings.BULK_MAX_ROWS
    for position, (key, row) in enumerate(zip(keys, parsed, strict=True)):
        user = firm_users.get(key) if key is not None else None
        if position >= limit:
            yield row, BulkOutcome.REFUSED, BulkReason.TOO_MANY_ROWS, None
        elif not row.well_formed:
            yield row, BulkOutcome.REFUSED, BulkReason.MALFORMED, None
        elif user is None:
            yield row, BulkOutcome.REFUSED, BulkReason.UNKNOWN_LOGIN_ID, None
        elif seen[key] > 1:
            yield row, BulkOutcome.REFUSED, BulkReason.DUPLICATE, user
        elif user.pk == batch.maker_id:
            yield row, BulkOutcome.REFUSED, BulkReason.OWN_ROW, user
        elif len(row.email) > EMAIL_MAX_LENGTH:
            yield row, BulkOutcome.REFUSED, BulkReason.EMAIL_TOO_LONG, user
        else:
            try:
                email = normalize_email(row.email)
            except ValidationError:
                yield row, BulkOutcome.REFUSED, BulkReason.INVALID_EMAIL, user
                continue
            if user.is_da and not da_open:
                yield row, BulkOutcome.REFUSED, BulkReason.DA_NOT_OPEN, user
            elif user.email == email:
                yield row, BulkOutcome.UNCHANGED, "", user
            else:
                outcome = BulkOutcome.CHANGE if user.email else BulkOutcome.REGISTER
                yield ParsedRow(row.line, row.login_id, email, True), outcome, "", user


def bulk_check(*, batch_id: int) -> BulkEmailBatch:
    """Check every row of an uploaded file and record what applying it would do."""
    batch = BulkEmailBatch.objects.select_related("participant__terminal__programme").get(
        pk=batch_id
    )
    if batch.status != BulkStatus.VALIDATING:
        return batch
    try:
        _check_rows(batch)
    except RequestRefused as refused:
        _check_failed(batch, refused.message)
    except Exception:
        # Whatever went wrong, the page must not say "checking" for ever.
        logger.exception("bulk check failed", extra={"event": {"batch": batch.pk}})
        _check_failed(batch, _("The file could not be checked. Upload it again."))
    batch.refresh_from_db()
    return batch


def _check_failed(batch: BulkEmailBatch, reason: str) -> None:
    BulkEmailRow.objects.filter(batch=batch).delete()
    BulkEmailBatch.objects.filter(pk=batch.pk).update(status=BulkStatus.FAILED, error=reason[:500])


def _check_rows(batch: BulkEmailBatch) -> None:
    parsed = parse_rows(bytes(batch.source))
    BulkEmailBatch.objects.filter(pk=batch.pk).update(total_rows=len(parsed), processed_rows=0)
    counts: Counter[str] = Counter()
    pending: list[BulkEmailRow] = []
    # Rows are written in committed chunks so that the page can show progress; the
    # batch stays VALIDATING until the last one, and nothing acts on it before.
    # A retried task starts again from a clean slate.
    BulkEmailRow.objects.filter(batch=batch).delete()
    for done, (row, outcome, reason, user) in enumerate(_classify(batch, parsed), start=1):
        counts[outcome] += 1
        pending.append(
            BulkEmailRow(
                batch=batch,
                line=row.line,
                login_id=row.login_id,
                email=row.email,
                outcome=outcome,
                reason=reason,
                user=user,
                user_version=user.version if user else None,
                previous_email=user.email if user else "",
            )
        )
        if done % PROGRESS_EVERY == 0:
            BulkEmailRow.objects.bulk_create(pending)
            pending.clear()
            BulkEmailBatch.objects.filter(pk=batch.pk).update(processed_rows=done)
    BulkEmailRow.objects.bulk_create(pending)
    BulkEmailBatch.objects.filter(pk=batch.pk).update(
        status=BulkStatus.READY,
        processed_rows=len(parsed),
        register_count=counts[BulkOutcome.REGISTER],
        change_count=counts[BulkOutcome.CHANGE],
        unchanged_count=counts[BulkOutcome.UNCHANGED],
        refused_count=counts[BulkOutcome.REFUSED],
    )


@transaction.atomic
def bulk_submit(
    *, batch: BulkEmailBatch, acting_user: User, request: HttpRequest | None = None
) -> ChangeRequest:
    """Put a checked file before the checkers."""
    # A bulk file is filed as a request like any other (dms.services imports this module
    # through the appliers, so the import waits until it is needed).
    from dms.services import request_make

    batch = BulkEmailBatch.objects.select_for_update().get(pk=batch.pk)
    if batch.maker_id != acting_user.pk:
        raise RequestForbidden(_("Only the DA who uploaded the file can submit it."))
    if batch.status != BulkStatus.READY:
        raise RequestRefused(_("This file cannot be submitted now."))
    if not (batch.register_count or batch.change_count):
        raise RequestRefused(_("No row of this file would change anything."))
    change = request_make(
        kind=RequestKind.BULK_EMAIL,
        acting_user=acting_user,
        payload={
            "batch": batch.pk,
            "filename": batch.filename,
            "register": batch.register_count,
            "change": batch.change_count,
            "refused": batch.refused_count,
        },
        request=request,
    )
    batch.status = BulkStatus.SUBMITTED
    batch.change_request = change
    batch.save(update_fields=["status", "change_request"])
    return change


def bulk_apply(*, change: ChangeRequest, acting_user: User, request: HttpRequest | None) -> None:
    """Apply every valid row of the batch together; refuse the whole batch if any user changed.

    Called by the bulk applier inside request_approve's transaction: a failure anywhere
    leaves no row changed. The number of queries does not depend on the number of rows.
    """
    batch = BulkEmailBatch.objects.select_for_update().get(change_request=change)
    rows = BulkEmailRow.objects.filter(
        batch=batch, outcome__in=[BulkOutcome.REGISTER, BulkOutcome.CHANGE]
    )
    expected = rows.count()
    now = timezone.now()
    # The version test is part of the UPDATE itself: a user changed by another request
    # after the file was checked (even one committed while this runs) is not updated,
    # the count comes up short, and the whole file is refused.
    updated = (
        User.objects.filter(pk__in=rows.values("user_id"))
        .filter(version=Subquery(rows.filter(user_id=OuterRef("pk")).values("user_version")[:1]))
        .update(
            email=Subquery(rows.filter(user_id=OuterRef("pk")).values("email")[:1]),
            email_registered_by=change.maker_id,
            email_registered_at=now,
            version=F("version") + 1,
        )
    )
    if updated != expected:
        raise RequestRefused(
            _(
                "Some users were changed after the file was checked, so it can no longer be "
                "applied. Upload it again."
            )
        )
    # One audit row per registered email, written in a single statement.
    audit_record_many(
        rows=rows,
        user_field="user_id",
        login_id_field="login_id",
        action=AuditAction.EMAIL_REGISTERED,
        outcome=Outcome.SUCCESS,
        request=request,
        actor=acting_user,
        participant=change.participant,
        detail={"request": change.pk, "batch": batch.pk},
        at=now,
    )
    BulkEmailBatch.objects.filter(pk=batch.pk).update(status=BulkStatus.APPLIED)
    audit_record(
        action=AuditAction.BULK_APPLIED,
        outcome=Outcome.SUCCESS,
        request=request,
        actor=acting_user,
        participant=change.participant,
        detail={"batch": batch.pk, "request": change.pk, "users": updated},
    )
    # The emails, in the same transaction and a fixed number of statements. A link sent to
    # an old address stops working, and one still waiting to go there is not sent; then the
    # notices at the old and new addresses, and an activation email at the new address of
    # each active user who has not set up 2FA, when 2FA setup is open for them (PRODUCT.md:
    # every user with a registered email).
    applied_users = User.objects.filter(pk__in=rows.values("user_id"))
    activation_links_revoke_many(users=applied_users)
    email_changed_notify_many(rows=rows)
    email_queue_many(
        kind=ACTIVATION,
        source=applied_users.filter(
            status=UserStatus.ACTIVE, two_factor_ready_at__isnull=True
        ).filter(phases.setup_open_filter("participant__terminal")),
        to=F("email"),
        params=JSONObject(user_id=F("pk")),
    )


def bulk_result_rows(batch: BulkEmailBatch) -> Iterator[list[str]]:
    yield ["line", "login_id", "email", "outcome", "reason"]  # the rows are quoted by csv_response
    for row in batch.rows.order_by("line").iterator(chunk_size=2000):
        yield [
            str(row.line),
            row.login_id,
            row.email,
            str(BulkOutcome(row.outcome).label),
            str(BulkReason(row.reason).label) if row.reason else "",
        ]
