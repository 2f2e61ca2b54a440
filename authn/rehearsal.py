"""The connectivity test's carry-forward rules (footnotes 1-4 of the circular).

2FA set up in a session whose changes are carried forward (Session 1) simply stays. In a
session whose changes are not carried forward (Session 2), the first change to an account
— a password, an OTP device set up, reset or changed, new backup codes, 2FA initiation —
first takes a snapshot of the account's credentials as they are, which is their state at
the session's start: nothing changed them in the session before. When the session ends,
`session_undo` puts every snapshot back, once, in a constant number of statements, and
tells the users by email. Accounts not changed in the session have no snapshot and are
not touched; a change made after the session's end goes on top of the restored account
(`account_change_guard` restores a pending snapshot first).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F, OuterRef, Subquery, Value
from django.db.models.functions import JSONObject
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditAction, Outcome
from audit.services import audit_record, audit_record_many
from authn import sessions
from authn.entries import OTP_TEST_ENTRY
from authn.models import AccountSnapshot, BackupCode, BackupCodeDevice, EmailOTPDevice
from migration import connectivity, phases
from migration.models import CheckMethod, ConnectivitySession, TestEntry
from outbox.composers import Composer, register, row_subject
from outbox.models import OutboxEmail
from outbox.services import email_queue_many
from participants.models import Participant, Scope, Terminal, User

# The credentials a snapshot keeps, in the order they are re-created (codes after their set).
DEVICE_MODELS: tuple[type[Any], ...] = (TOTPDevice, EmailOTPDevice, BackupCodeDevice)

CHANGES_UNDONE_EMAIL = "connectivity-changes-undone"


def _changes_undone_context(row: OutboxEmail) -> dict[str, Any]:
    session = row_subject(
        row,
        ConnectivitySession.objects.select_related("event__terminal"),
        param="session_id",
        gone="The connectivity-test session no longer exists",
    )
    return {"session": session, "login_id": row.params.get("login_id", "")}


def register_emails() -> None:
    register(
        CHANGES_UNDONE_EMAIL,
        Composer(template=CHANGES_UNDONE_EMAIL, context=_changes_undone_context),
    )


def _session_not_carried_forward(user: User, now: dt.datetime) -> ConnectivitySession | None:
    """The running session of the user's terminal whose changes are not carried forward."""
    terminal = Participant.objects.filter(pk=user.participant_id or 0).values("terminal_id")
    running = ConnectivitySession.objects.running(now)
    return running.filter(event__terminal_id=Subquery(terminal), carried_forward=False).first()


def account_change_guard(*, user: User, now: dt.datetime | None = None) -> AccountSnapshot | None:
    """Call in the transaction of an account change, the user's row locked, before changing
    anything: keep the account's state for the undo if a session that is not carried
    forward is running, and put back first what an ended session left to undo."""
    if user.participant_id is None:
        return None  # exchange staff take no part in a firm's test
    now = now or timezone.now()
    _restore_pending(user=user, now=now)
    session = _session_not_carried_forward(user, now)
    if session is None:
        return None
    existing = AccountSnapshot.objects.filter(session=session, user=user).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return AccountSnapshot.objects.create(
                session=session, user=user, taken_at=now, **_account_state(user)
            )
    except IntegrityError:  # the same account changed twice at the same moment
        return AccountSnapshot.objects.get(session=session, user=user)


def _account_state(user: User) -> dict[str, Any]:
    """The account's credentials: its password hash, when 2FA was set up, its device rows
    (column by column, as `_restore` re-creates them)."""
    state = User.objects.filter(pk=user.pk).values("password", "two_factor_ready_at").get()
    devices: dict[str, Any] = {}
    for model in DEVICE_MODELS:
        devices[model._meta.label_lower] = list(
            model.objects.filter(user_id=user.pk).values(*_columns(model))
        )
    devices[BackupCode._meta.label_lower] = list(
        BackupCode.objects.filter(device__user_id=user.pk).values(*_columns(BackupCode))
    )
    return {**state, "devices": devices}


def _columns(model: type[Any]) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


def _restore_pending(*, user: User, now: dt.datetime) -> None:
    """Put back, first, the user's snapshot of an ended session whose undo has not run yet
    (told and audited as the undo would)."""
    # Locked: the session's undo may be putting the same snapshot back at this moment.
    pending = (
        AccountSnapshot.objects.select_for_update(of=("self",))
        .filter(
            user=user,
            restored_at__isnull=True,
            session__ends_at__lte=now,
            session__carried_forward=False,
        )
        .select_related("session")
        .order_by("taken_at")
        .first()
    )
    if pending is not None:
        _restore([pending], now=now)
        _undone_tell(pending.session, now, acting_user=None)


def _restore(snapshots: list[AccountSnapshot], *, now: dt.datetime) -> dict[str, int]:
    """Put the accounts back as their snapshots keep them: a fixed number of statements."""
    if not snapshots:
        return {"accounts": 0, "devices": 0}
    user_ids = [snapshot.user_id for snapshot in snapshots]
    # One DELETE per table, whatever the number of accounts: QuerySet.delete() would
    # collect the rows first and delete them a hundred at a time. Nothing else refers to
    # these rows but the codes to their sets, which go first.
    for rows in (
        BackupCode.objects.filter(device__user_id__in=user_ids),
        *(model.objects.filter(user_id__in=user_ids) for model in DEVICE_MODELS),
    ):
        rows._raw_delete(rows.db)
    restored_devices = 0
    models: tuple[type[Any], ...] = (*DEVICE_MODELS, BackupCode)
    for model in models:
        objects = [
            model(**row)
            for snapshot in snapshots
            for row in snapshot.devices.get(model._meta.label_lower, [])
        ]
        if objects:
            model.objects.bulk_create(objects)
        if model is not BackupCode:
            restored_devices += len(objects)
    # The passwords in one statement, from the snapshots themselves.
    kept = AccountSnapshot.objects.filter(pk__in=[s.pk for s in snapshots], user_id=OuterRef("pk"))
    User.objects.filter(pk__in=user_ids).update(
        password=Subquery(kept.values("password")[:1]),
        two_factor_ready_at=Subquery(kept.values("two_factor_ready_at")[:1]),
    )
    AccountSnapshot.objects.filter(pk__in=[snapshot.pk for snapshot in snapshots]).update(
        restored_at=now
    )
    return {"accounts": len(snapshots), "devices": restored_devices}


def sessions_due_for_undo(now: dt.datetime | None = None) -> list[int]:
    """The ended sessions not carried forward whose undo has not run."""
    now = now or timezone.now()
    return list(
        ConnectivitySession.objects.filter(
            carried_forward=False, undone_at__isnull=True, ends_at__lte=now
        ).values_list("pk", flat=True)
    )


def session_undo(
    *, session_id: int, now: dt.datetime | None = None, acting_user: User | None = None
) -> dict[str, int] | None:
    """Undo the account changes made in an ended session that is not carried forward.

    Claimed with a conditional UPDATE in the transaction that restores the accounts: with
    two runners, a retried task and the staff command, it runs once; None for every call
    but the one that ran it (or when the session has not ended or is carried forward).
    """
    now = now or timezone.now()
    with transaction.atomic():
        claimed = ConnectivitySession.objects.filter(
            pk=session_id, carried_forward=False, undone_at__isnull=True, ends_at__lte=now
        ).update(undone_at=now)
        if not claimed:
            return None
        session = ConnectivitySession.objects.select_related("event__terminal").get(pk=session_id)
        # Locked: a user's change after the session's end may be putting one back first.
        snapshots = list(
            AccountSnapshot.objects.select_for_update()
            .filter(session=session, restored_at__isnull=True)
            .order_by("user_id")
        )
        counts = _restore(snapshots, now=now)
        counts["emails"] = 0
        if snapshots:
            counts["emails"] = _undone_tell(session, now, acting_user)
        ConnectivitySession.objects.filter(pk=session.pk).update(undo_counts=counts)
        audit_record(
            action=AuditAction.SESSION_CHANGES_UNDONE,
            outcome=Outcome.SUCCESS,
            actor=acting_user,
            detail={
                "terminal": session.event.terminal.code,
                "event": session.event_id,
                "session": session.name,
                **counts,
            },
        )
        return counts


def _undone_tell(session: ConnectivitySession, now: dt.datetime, acting_user: User | None) -> int:
    """Email the users whose accounts were put back, and audit each account: two statements."""
    restored = AccountSnapshot.objects.filter(session=session, restored_at=now)
    emails = email_queue_many(
        kind=CHANGES_UNDONE_EMAIL,
        source=restored.exclude(user__email=""),
        to=F("user__email"),
        params=JSONObject(session_id=Value(session.pk), login_id=F("user__login_id")),
    )
    audit_record_many(
        rows=restored,
        user_field="user",
        login_id_field="user__login_id",
        participant_field="user__participant",
        action=AuditAction.ACCOUNT_RESTORED,
        outcome=Outcome.SUCCESS,
        actor=acting_user,
        detail={"event": session.event_id, "session": session.name},
        at=now,
    )
    return emails


def sessions_undo_due(*, now: dt.datetime | None = None) -> list[dict[str, int]]:
    """Run the undo of every ended session that is due for one; what each run did."""
    now = now or timezone.now()
    done = []
    for session_id in sessions_due_for_undo(now):
        counts = session_undo(session_id=session_id, now=now)
        if counts is not None:
            done.append(counts)
    return done


# At login ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Gate:
    """What a running connectivity-test session says of a login that passed its checks:
    refused (with the words to show), or let in as a test login of that session."""

    session: ConnectivitySession
    refusal: str = ""


def login_entry(*, method: str, scopes: Sequence[str]) -> TestEntry:
    """The test entry of a login of `method` for `scopes`."""
    if method in (sessions.Method.SMARTCARD, sessions.Method.SMARTCARD_DEMO):
        return TestEntry.SMARTCARD_DMS if Scope.DMS in scopes else TestEntry.SMARTCARD_FUNCTIONS
    return OTP_TEST_ENTRY[Scope(scopes[0])]


def login_gate(
    *, user: User, terminal: Terminal | None, method: str, scopes: Sequence[str]
) -> Gate | None:
    """Ask whether a connectivity-test session runs on the terminal and what it says of
    this login; None when none runs (the phase alone decides, as always)."""
    if terminal is None or user.participant_id is None:
        return None
    session = phases.connectivity_session(terminal)
    if session is None:
        return None
    entry = login_entry(method=method, scopes=scopes)
    if not session.opens(entry):
        return Gate(
            session=session,
            refusal=_("%(entry)s is not open in %(session)s of the connectivity test.")
            % {"entry": entry.label, "session": session.name},
        )
    if not connectivity.is_registered(session.event_id, user.participant_id):
        return Gate(
            session=session,
            refusal=_(
                "A connectivity test is in progress and your firm is not registered for it. "
                "For help, call %(hotline_name)s on %(hotline)s."
            )
            % {"hotline_name": _(terminal.hotline_name), "hotline": terminal.hotline},
        )
    return Gate(session=session)


def rehearsal_login_complete(
    request: HttpRequest,
    *,
    session: ConnectivitySession,
    user: User,
    method: str,
    scopes: Sequence[str],
) -> None:
    """Record the check of a login made in a session, and bind the login to the session:
    until it ends, the login shows "Function not available", then it ends."""
    check_method = (
        CheckMethod.SMARTCARD
        if method in (sessions.Method.SMARTCARD, sessions.Method.SMARTCARD_DEMO)
        else CheckMethod.OTP
    )
    for scope in scopes:
        connectivity.check_record(session=session, user=user, method=check_method, scope=scope)
    request.session[sessions.TEST_KEY] = {
        "id": session.pk,
        "name": session.name,
        "data_centre": session.data_centre,
        "ends": session.ends_at.timestamp(),
    }


def rehearsal_login(request: HttpRequest) -> dict[str, Any] | None:
    """The connectivity-test session this login was made in, while it runs."""
    marker = request.session.get(sessions.TEST_KEY)
    if not marker:
        return None
    return dict(marker)
