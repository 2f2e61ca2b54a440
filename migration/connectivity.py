"""Connectivity-test events: the circular's template, registration, the running session, and
the checks users complete in it.

An event belongs to one terminal and is a day, a registration deadline and its sessions. Firms
register through the DMS before the deadline; during a session their users and DAs log in
through the entries the session opens, see "Function not available", and each first login per
user, session, method and scope is recorded as a completed check. Outside a session nothing
of this shows. Publishing, moving times and the undo of a session whose changes are not
carried forward are elsewhere (migration.services, authn.rehearsal).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo

from django.db import IntegrityError, transaction
from django.db.models import Count, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import AuditAction, Outcome
from audit.services import audit_record
from migration.models import (
    CheckMethod,
    ConnectivityCheck,
    ConnectivityEvent,
    ConnectivityRegistration,
    ConnectivitySession,
    DataCentre,
    TestEntry,
)
from participants.models import Participant, Terminal, User

HONG_KONG = zoneinfo.ZoneInfo("Asia/Hong_Kong")


class ConnectivityError(Exception):
    """A registration or withdrawal the event's rules refuse; the message says why."""


# The circular's event --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SessionTemplate:
    name: str
    data_centre: DataCentre
    starts: dt.time
    ends: dt.time
    entries: tuple[TestEntry, ...]
    carried_forward: bool


# The circular's schedule: Session 1 at the primary data centre 18:00-20:00, 2FA initiation
# open, changes carried forward (footnotes 1 and 2); Session 2 at the secondary one
# 22:00-23:00, logging in with what was set up in Session 1, changes not carried forward
# (footnotes 3 and 4).
CIRCULAR_SESSIONS = (
    SessionTemplate(
        name="Session 1",
        data_centre=DataCentre.PRIMARY,
        starts=dt.time(18, 0),
        ends=dt.time(20, 0),
        entries=tuple(TestEntry),
        carried_forward=True,
    ),
    SessionTemplate(
        name="Session 2",
        data_centre=DataCentre.SECONDARY,
        starts=dt.time(22, 0),
        ends=dt.time(23, 0),
        entries=tuple(entry for entry in TestEntry if entry != TestEntry.INITIATION),
        carried_forward=False,
    ),
)

# The circular: register "on or before" a Friday eight days before the Saturday of the test.
DEADLINE_DAYS_BEFORE = 8


def hong_kong_at(day: dt.date, at: dt.time) -> dt.datetime:
    return dt.datetime.combine(day, at, tzinfo=HONG_KONG)


def circular_sessions_create(event: ConnectivityEvent) -> list[ConnectivitySession]:
    """Give the event the circular's two sessions, on its day."""
    return ConnectivitySession.objects.bulk_create(
        ConnectivitySession(
            event=event,
            position=position,
            name=template.name,
            data_centre=template.data_centre,
            starts_at=hong_kong_at(event.day, template.starts),
            ends_at=hong_kong_at(event.day, template.ends),
            entries=[entry.value for entry in template.entries],
            carried_forward=template.carried_forward,
        )
        for position, template in enumerate(CIRCULAR_SESSIONS, start=1)
    )


def event_from_circular(
    *, terminal: Terminal, day: dt.date, deadline: dt.datetime | None = None
) -> ConnectivityEvent:
    """Create an unpublished event on `day` with the circular's two sessions."""
    if deadline is None:
        deadline = hong_kong_at(day - dt.timedelta(days=DEADLINE_DAYS_BEFORE), dt.time(23, 59))
    with transaction.atomic():
        event = ConnectivityEvent.objects.create(
            terminal=terminal, day=day, registration_deadline=deadline
        )
        circular_sessions_create(event)
    return event


# Registered firms -------------------------------------------------------------------------


def is_registered(event: ConnectivityEvent | int, participant: Participant | int | None) -> bool:
    if participant is None:
        return False
    return ConnectivityRegistration.objects.filter(event=event, participant=participant).exists()


# Registration ----------------------------------------------------------------------------


def published_events(terminal: Terminal) -> QuerySet[ConnectivityEvent]:
    """The terminal's published events, newest day first, with their sessions."""
    return (
        ConnectivityEvent.objects.filter(terminal=terminal, published_at__isnull=False)
        .prefetch_related("sessions")
        .order_by("-day", "pk")
    )


def _event_for_firm(event_id: int, participant: Participant) -> ConnectivityEvent:
    """The published event of the firm's terminal, locked; DoesNotExist otherwise (a 404)."""
    return ConnectivityEvent.objects.select_for_update().get(
        pk=event_id, terminal_id=participant.terminal_id, published_at__isnull=False
    )


def _event_open_for_firm(
    event_id: int, participant: Participant, now: dt.datetime
) -> ConnectivityEvent:
    """The event, locked, if its registration is still open ("on or before" the deadline)."""
    event = _event_for_firm(event_id, participant)
    if not event.registration_open(now):
        raise ConnectivityError(
            _("Registration for this connectivity test closed at %(deadline)s.")
            % {"deadline": hong_kong_minute(event.registration_deadline)}
        )
    return event


def registration_register(
    *, event_id: int, participant: Participant, acting_user: User, now: dt.datetime | None = None
) -> ConnectivityRegistration:
    """Register the DA's firm for the event, on or before its deadline; audited.

    Registering twice is harmless: the firm's registration is returned as it is.
    """
    now = now or timezone.now()
    with transaction.atomic():
        event = _event_open_for_firm(event_id, participant, now)
        existing = ConnectivityRegistration.objects.filter(
            event=event, participant=participant
        ).first()
        if existing is not None:
            return existing
        try:
            with transaction.atomic():
                registration = ConnectivityRegistration.objects.create(
                    event=event,
                    participant=participant,
                    registered_by=acting_user,
                    registered_at=now,
                )
        except IntegrityError:  # another DA of the firm registered it at the same moment
            return ConnectivityRegistration.objects.get(event=event, participant=participant)
        audit_record(
            action=AuditAction.EVENT_REGISTERED,
            outcome=Outcome.SUCCESS,
            actor=acting_user,
            user=acting_user,
            participant=participant,
            detail={"event": event.pk, "day": event.day.isoformat()},
        )
        return registration


def registration_withdraw(
    *, event_id: int, participant: Participant, acting_user: User, now: dt.datetime | None = None
) -> bool:
    """Withdraw the firm's registration, on or before the deadline; audited. Return whether
    there was one to withdraw."""
    now = now or timezone.now()
    with transaction.atomic():
        event = _event_open_for_firm(event_id, participant, now)
        deleted, _rows = ConnectivityRegistration.objects.filter(
            event=event, participant=participant
        ).delete()
        if deleted:
            audit_record(
                action=AuditAction.EVENT_WITHDRAWN,
                outcome=Outcome.SUCCESS,
                actor=acting_user,
                user=acting_user,
                participant=participant,
                detail={"event": event.pk, "day": event.day.isoformat()},
            )
        return bool(deleted)


def hong_kong_minute(value: dt.datetime) -> str:
    """The time as staff and DAs read it in messages: Hong Kong, to the minute."""
    return timezone.localtime(value, HONG_KONG).strftime("%Y-%m-%d %H:%M")


# Checks ----------------------------------------------------------------------------------


def check_record(
    *,
    session: ConnectivitySession,
    user: User,
    method: CheckMethod | str,
    scope: str,
    now: dt.datetime | None = None,
) -> bool:
    """Record that the user completed a check: once per user, session, method and scope.
    Return whether this call recorded it (False: it was recorded before)."""
    now = now or timezone.now()
    if user.participant_id is None:
        return False  # exchange staff take no part in a firm's test
    try:
        with transaction.atomic():
            ConnectivityCheck.objects.create(
                session=session,
                user=user,
                participant_id=user.participant_id,
                method=method,
                scope=scope,
                at=now,
            )
            audit_record(
                action=AuditAction.CONNECTIVITY_CHECKED,
                outcome=Outcome.SUCCESS,
                user=user,
                scope=scope,
                method=str(method),
                detail={"event": session.event_id, "session": session.name},
            )
    except IntegrityError:  # recorded before, by this login's twin or an earlier one
        return False
    return True


# Results ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SessionTotals:
    session: ConnectivitySession
    checks: int
    users: int
    firms: int


def session_totals(event: ConnectivityEvent) -> list[SessionTotals]:
    sessions = list(
        event.sessions.annotate(
            n_checks=Count("checks"),
            n_users=Count("checks__user", distinct=True),
            n_firms=Count("checks__participant", distinct=True),
        ).order_by("position", "starts_at")
    )
    return [
        SessionTotals(session=s, checks=s.n_checks, users=s.n_users, firms=s.n_firms)  # type: ignore[attr-defined]
        for s in sessions
    ]


def event_checks(
    event: ConnectivityEvent, participant: Participant | None = None
) -> QuerySet[ConnectivityCheck]:
    """The event's completed checks (of one firm if given), firm by firm and user by user."""
    checks = ConnectivityCheck.objects.filter(session__event=event).select_related(
        "session", "user", "participant"
    )
    if participant is not None:
        checks = checks.filter(participant=participant)
    return checks.order_by(
        "participant__participant_id", "user__login_id", "session__position", "at"
    )


def registered_firms(event: ConnectivityEvent) -> QuerySet[ConnectivityRegistration]:
    return event.registrations.select_related("participant", "registered_by").order_by(
        "participant__participant_id"
    )


# The DMS's reads -------------------------------------------------------------------------


def published_event_for_firm(event_id: int, participant: Participant) -> ConnectivityEvent | None:
    """Return the published event of the firm's terminal with this id, with its sessions;
    None for any other (unpublished, another terminal's, missing): the DMS answers 404 alike."""
    return (
        ConnectivityEvent.objects.filter(
            pk=event_id, terminal_id=participant.terminal_id, published_at__isnull=False
        )
        .prefetch_related("sessions")
        .first()
    )


def firm_registrations(
    participant: Participant, events: list[ConnectivityEvent]
) -> dict[int, ConnectivityRegistration]:
    """Return the firm's registrations for these events by event id, with the DA who
    registered (one query, however many events)."""
    registrations = ConnectivityRegistration.objects.filter(
        participant=participant, event__in=events
    ).select_related("registered_by")
    return {registration.event_id: registration for registration in registrations}
