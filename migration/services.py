"""The programme's services: rescheduling, approving and carrying out its milestones.

Carrying out is the one way a programme's phase moves. A periodic task (beat, every
minute) and `manage.py programme carry-out` call `milestones_carry_out`, which takes
each programme's next milestone, in order, when it is due and approved, and claims it with
a conditional UPDATE in a transaction that also applies its phase and its effects: with
two beats, several workers or a retried task, each milestone takes effect once.

Effects that belong to a higher layer (the activation emails at launch, which authn
owns) are registered with `milestone_effect_register` at start-up, as the outbox's
composers are.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence

from django.conf import settings
from django.db import transaction
from django.db.models import F, IntegerField, QuerySet, Value
from django.db.models.functions import JSONObject
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import AuditAction, Outcome
from audit.services import audit_record
from migration import readiness
from migration.connectivity import HONG_KONG, ConnectivityError, hong_kong_minute
from migration.emails import (
    CONNECTIVITY_PUBLISHED,
    CONNECTIVITY_RESCHEDULED,
    MILESTONE_KICKOFF,
    MILESTONE_RESCHEDULED,
    READINESS_REMINDER,
)
from migration.models import (
    ConnectivityEvent,
    ConnectivitySession,
    Milestone,
    MilestoneKind,
    Phase,
    Programme,
    Reminder,
)
from outbox.services import email_queue_many
from participants.models import Participant, Role, Smartcard, Terminal, User, UserStatus

# An effect of carrying out a milestone: given the milestone, its terminal and the time, do
# its work in the caller's transaction and return its counts (for the audit row).
Effect = Callable[[Milestone, Terminal, dt.datetime], dict[str, int]]

_EFFECTS: dict[str, list[Effect]] = {}


class MilestoneError(Exception):
    """A change to a milestone that the programme's rules refuse; the message says why."""


def milestone_effect_register(kind: MilestoneKind, effect: Effect) -> None:
    """Have `effect` run, once, in the transaction that carries out each milestone of `kind`."""
    effects = _EFFECTS.setdefault(kind.value, [])
    if effect not in effects:
        effects.append(effect)


def terminal_das(terminal: Terminal) -> QuerySet[User]:
    """The active DAs of the terminal's firms who have a designated email."""
    return User.objects.filter(
        participant__terminal=terminal, role=Role.DA, status=UserStatus.ACTIVE
    ).exclude(email="")


# Carrying out --------------------------------------------------------------------------


def milestones_carry_out(*, now: dt.datetime | None = None) -> list[Milestone]:
    """Carry out every milestone that is due, in each programme's order, each once; return
    the ones this call carried out (none that another runner did)."""
    now = now or timezone.now()
    done = []
    for programme_id in Programme.objects.order_by("pk").values_list("pk", flat=True):
        while (milestone := _carry_out_next(programme_id=programme_id, now=now)) is not None:
            done.append(milestone)
    return done


@transaction.atomic
def _carry_out_next(*, programme_id: int, now: dt.datetime) -> Milestone | None:
    # Runners take the programme's row in turn: the second reads what the first committed.
    programme = (
        Programme.objects.select_for_update().select_related("terminal").get(pk=programme_id)
    )
    milestone = (
        programme.milestones.filter(carried_out_at__isnull=True).order_by("position").first()
    )
    # The next one waits for its date and, if it needs one, its approval; so do the ones
    # after it, whatever their dates.
    if milestone is None or not milestone.is_due(now):
        return None
    # The claim: whoever's UPDATE changes the row carries the milestone out.
    claimed = Milestone.objects.filter(pk=milestone.pk, carried_out_at__isnull=True).update(
        carried_out_at=now
    )
    if not claimed:
        return None
    milestone.carried_out_at = now
    milestone.programme = programme
    kind = milestone.milestone_kind
    fields = []
    if kind.phase is not None and Phase(programme.phase).order < kind.phase.order:
        programme.phase = kind.phase
        fields.append("phase")
    if kind == MilestoneKind.DA_EMAIL_REGISTRATION_OPENS:
        programme.da_email_registration_open = True
        fields.append("da_email_registration_open")
    if fields:
        programme.save(update_fields=[*fields, "updated_at"])
    counts: dict[str, int] = {}
    for effect in [*_BUILT_IN.get(kind, []), *_EFFECTS.get(kind.value, [])]:
        counts.update(effect(milestone, programme.terminal, now))
    audit_record(
        action=AuditAction.MILESTONE_CARRIED_OUT,
        outcome=Outcome.SUCCESS,
        detail={
            "terminal": programme.terminal.code,
            "milestone": kind.value,
            "phase": programme.phase,
            **counts,
        },
    )
    return milestone


def _kickoff_emails(milestone: Milestone, terminal: Terminal, now: dt.datetime) -> dict[str, int]:
    """Tell the terminal's DAs that email registration is open, and until when."""
    das = terminal_das(terminal)
    queued = email_queue_many(
        kind=MILESTONE_KICKOFF,
        source=das,
        to=F("email"),
        params=JSONObject(milestone_id=Value(milestone.pk)),
    )
    return {"kickoff_emails": queued}


def _cards_revoke(milestone: Milestone, terminal: Terminal, now: dt.datetime) -> dict[str, int]:
    """Revoke every card of the terminal's users that is not revoked yet: one statement."""
    revoked = Smartcard.objects.filter(
        user__participant__terminal=terminal, revoked_at__isnull=True
    ).update(revoked_at=now)
    return {"cards_revoked": revoked}


_BUILT_IN: dict[MilestoneKind, list[Effect]] = {
    MilestoneKind.EMAIL_REGISTRATION_OPENS: [_kickoff_emails],
    MilestoneKind.DECOMMISSIONING: [_cards_revoke],
}


# Staff's changes -----------------------------------------------------------------------


def _locked(milestone: Milestone) -> Milestone:
    return (
        Milestone.objects.select_for_update(of=("self",))
        .select_related("programme__terminal")
        .get(pk=milestone.pk)
    )


def _check_order(milestone: Milestone, planned_at: dt.datetime) -> None:
    siblings = Milestone.objects.filter(
        programme_id=milestone.programme_id, planned_at__isnull=False
    ).exclude(pk=milestone.pk)
    before = siblings.filter(position__lt=milestone.position).order_by("-position").first()
    after = siblings.filter(position__gt=milestone.position).order_by("position").first()
    if before is not None and before.planned_at is not None and planned_at < before.planned_at:
        raise MilestoneError(
            _("%(milestone)s cannot come before %(other)s (%(when)s).")
            % {
                "milestone": milestone.get_kind_display(),
                "other": before.get_kind_display(),
                "when": hong_kong_minute(before.planned_at),
            }
        )
    if after is not None and after.planned_at is not None and planned_at > after.planned_at:
        raise MilestoneError(
            _("%(milestone)s cannot come after %(other)s (%(when)s).")
            % {
                "milestone": milestone.get_kind_display(),
                "other": after.get_kind_display(),
                "when": hong_kong_minute(after.planned_at),
            }
        )


def milestone_reschedule_check(*, milestone: Milestone, planned_at: dt.datetime) -> None:
    """Raise MilestoneError if the milestone may not move to `planned_at`: it was carried
    out, the time is past, or it is out of order with the milestones before and after."""
    if milestone.carried_out_at is not None:
        raise MilestoneError(_("A milestone that has been carried out cannot be moved."))
    if planned_at <= timezone.now():
        raise MilestoneError(_("A milestone cannot be moved into the past."))
    _check_order(milestone, planned_at)


@transaction.atomic
def milestone_reschedule(
    *, milestone: Milestone, planned_at: dt.datetime, acting_user: User
) -> Milestone:
    """Move a milestone to `planned_at`, audit the move and tell the terminal's DAs.

    Refused for a milestone already carried out, a time in the past, or a time out of
    order with the milestones before and after it.
    """
    locked = _locked(milestone)
    milestone_reschedule_check(milestone=locked, planned_at=planned_at)
    old = locked.planned_at
    if old == planned_at:
        return locked
    locked.planned_at = planned_at
    locked.save(update_fields=["planned_at"])
    terminal = locked.programme.terminal
    audit_record(
        action=AuditAction.MILESTONE_RESCHEDULED,
        outcome=Outcome.SUCCESS,
        actor=acting_user,
        detail={
            "terminal": terminal.code,
            "milestone": locked.kind,
            "old": old.isoformat() if old else None,
            "new": planned_at.isoformat(),
        },
    )
    email_queue_many(
        kind=MILESTONE_RESCHEDULED,
        source=terminal_das(terminal),
        to=F("email"),
        params=JSONObject(
            milestone_id=Value(locked.pk),
            old=Value(old.isoformat() if old else ""),
            new=Value(planned_at.isoformat()),
        ),
    )
    return locked


@transaction.atomic
def milestone_approval_require(
    *, milestone: Milestone, required: bool, acting_user: User
) -> Milestone:
    """Say whether the milestone waits for regulatory approval; audited. Refused once the
    milestone was carried out or approved."""
    locked = _locked(milestone)
    if locked.needs_approval == required:
        return locked
    if locked.carried_out_at is not None:
        raise MilestoneError(_("A milestone that has been carried out cannot be changed."))
    if locked.approved_at is not None:
        raise MilestoneError(_("This milestone has been approved already."))
    locked.needs_approval = required
    locked.save(update_fields=["needs_approval"])
    audit_record(
        action=AuditAction.MILESTONE_APPROVAL_REQUIRED,
        outcome=Outcome.SUCCESS,
        actor=acting_user,
        detail={
            "terminal": locked.programme.terminal.code,
            "milestone": locked.kind,
            "needs_approval": required,
        },
    )
    return locked


@transaction.atomic
def milestone_approve(*, milestone: Milestone, acting_user: User) -> Milestone:
    """Record the regulatory approval of a milestone that waits for it (once)."""
    locked = _locked(milestone)
    if not locked.needs_approval:
        raise MilestoneError(_("This milestone does not need approval."))
    if locked.approved_at is not None:
        return locked
    locked.approved_by = acting_user
    locked.approved_at = timezone.now()
    locked.save(update_fields=["approved_by", "approved_at"])
    audit_record(
        action=AuditAction.MILESTONE_APPROVED,
        outcome=Outcome.SUCCESS,
        actor=acting_user,
        detail={"terminal": locked.programme.terminal.code, "milestone": locked.kind},
    )
    return locked


# Reminders -------------------------------------------------------------------------------


def _remind(
    *,
    participant_ids: list[int],
    milestone: Milestone | None,
    acting_user: User | None,
    now: dt.datetime,
) -> int:
    """Email the DAs of these firms a reminder of what is missing; audit one row per firm.
    Return the number of emails queued."""
    Reminder.objects.bulk_create(
        Reminder(participant_id=pk, milestone=milestone, sent_by=acting_user, sent_at=now)
        for pk in participant_ids
    )
    for participant_id in participant_ids:
        audit_record(
            action=AuditAction.REMINDER_SENT,
            outcome=Outcome.SUCCESS,
            actor=acting_user,
            participant=Participant(pk=participant_id),
            detail={"milestone": milestone.kind if milestone else None},
        )
    das = User.objects.filter(
        participant_id__in=participant_ids, role=Role.DA, status=UserStatus.ACTIVE
    ).exclude(email="")
    return email_queue_many(
        kind=READINESS_REMINDER,
        source=das,
        to=F("email"),
        params=JSONObject(
            participant_id=F("participant_id"),
            milestone_id=Value(milestone.pk if milestone else None, output_field=IntegerField()),
        ),
    )


@transaction.atomic
def reminders_send(
    *, participants: Sequence[Participant | readiness.Firm], acting_user: User
) -> int:
    """Send the DAs of the chosen firms a reminder (staff's choice), in both languages,
    listing what their firm still has to do. Return the number of emails queued."""
    return _remind(
        participant_ids=[p.pk for p in participants],
        milestone=None,
        acting_user=acting_user,
        now=timezone.now(),
    )


def reminders_before_deadlines(*, now: dt.datetime | None = None) -> int:
    """Remind the firms not ready for a deadline that is REMINDER_DAYS_BEFORE days away or
    less, once per firm and deadline, whatever the number of runs. Return emails queued."""
    now = now or timezone.now()
    horizon = now + dt.timedelta(days=settings.REMINDER_DAYS_BEFORE)
    queued = 0
    for terminal in Terminal.objects.order_by("code"):
        deadline = readiness.next_deadlines([terminal]).get(terminal.pk)
        if deadline is None or not now < deadline.at <= horizon:
            continue
        queued += _remind_before(terminal=terminal, deadline=deadline, now=now)
    return queued


@transaction.atomic
def _remind_before(*, terminal: Terminal, deadline: readiness.Deadline, now: dt.datetime) -> int:
    milestone = (
        Milestone.objects.select_for_update()
        .filter(programme__terminal=terminal, kind=deadline.kind)
        .get()
    )
    # Runners take the deadline's row in turn: the second sees the first one's reminders.
    reminded = set(milestone.reminders.values_list("participant_id", flat=True))
    rows, _deadline = readiness.terminal_readiness(terminal=terminal)
    due = [
        row.participant.pk
        for row in rows
        if not row.forecast.is_ready and row.participant.pk not in reminded
    ]
    if not due:
        return 0
    return _remind(participant_ids=due, milestone=milestone, acting_user=None, now=now)


# Connectivity-test events ----------------------------------------------------------------


def _event_locked(event: ConnectivityEvent) -> ConnectivityEvent:
    return (
        ConnectivityEvent.objects.select_for_update(of=("self",))
        .select_related("terminal")
        .get(pk=event.pk)
    )


@transaction.atomic
def event_publish(
    *, event: ConnectivityEvent, acting_user: User, now: dt.datetime | None = None
) -> ConnectivityEvent:
    """Publish the event and email its schedule to the DAs of its terminal's firms; audited.

    Publishing an event that is published already does nothing more: the first publisher
    and time stay, and nobody is emailed twice.
    """
    now = now or timezone.now()
    # Two staff clicking at once: the second reads what the first committed.
    locked = _event_locked(event)
    if locked.published_at is not None:
        return locked
    if not locked.sessions.exists():
        raise ConnectivityError(_("Add the event's sessions before publishing it."))
    locked.published_at = now
    locked.published_by = acting_user
    locked.save(update_fields=["published_at", "published_by"])
    terminal = locked.terminal
    audit_record(
        action=AuditAction.EVENT_PUBLISHED,
        outcome=Outcome.SUCCESS,
        actor=acting_user,
        detail={"event": locked.pk, "terminal": terminal.code, "day": locked.day.isoformat()},
    )
    email_queue_many(
        kind=CONNECTIVITY_PUBLISHED,
        source=terminal_das(terminal),
        to=F("email"),
        params=JSONObject(event_id=Value(locked.pk)),
    )
    return locked


@dataclasses.dataclass(frozen=True)
class EventTimes:
    """The times staff give an event: its day, its registration deadline, and each session's
    start and end by the session's id. None: unchanged; a session left out keeps its times,
    or moves with the day when the day moves."""

    day: dt.date | None = None
    registration_deadline: dt.datetime | None = None
    sessions: Mapping[int, tuple[dt.datetime, dt.datetime]] = dataclasses.field(
        default_factory=dict
    )


def session_change_check(*, session: ConnectivitySession, now: dt.datetime | None = None) -> None:
    """Raise ConnectivityError if the session may no longer be changed or removed: it has
    ended, and its checks and the undo of its account changes belong to the times it had."""
    now = now or timezone.now()
    if session.ends_at <= now:
        raise ConnectivityError(
            _("%(session)s ended at %(end)s (Hong Kong time): it can no longer be changed.")
            % {"session": session.name, "end": hong_kong_minute(session.ends_at)}
        )


def _change(what: str, session: str, old: dt.date, new: dt.date) -> dict[str, str]:
    def written(value: dt.date) -> str:
        if isinstance(value, dt.datetime):
            value = timezone.localtime(value, HONG_KONG)
        return value.isoformat()

    return {"what": what, "session": session, "old": written(old), "new": written(new)}


@transaction.atomic
def event_reschedule(
    *,
    event: ConnectivityEvent,
    changes: EventTimes,
    acting_user: User,
    now: dt.datetime | None = None,
) -> list[dict[str, str]]:
    """Move the event's day, registration deadline or sessions' times to `changes`, and
    return what moved (what, session, old, new). A published event's move is audited and
    its terminal's DAs are emailed the new schedule; an unpublished one's is neither.

    Refused for a session that has ended, or one that would end before it starts.
    """
    now = now or timezone.now()
    locked = _event_locked(event)
    moved: list[dict[str, str]] = []
    event_fields = []
    session_times = dict(changes.sessions)
    if changes.day is not None and changes.day != locked.day:
        # A new day moves the sessions with it, but for those given times of their own.
        shift = changes.day - locked.day
        for session in locked.sessions.exclude(pk__in=list(session_times)):
            session_times[session.pk] = (session.starts_at + shift, session.ends_at + shift)
        moved.append(_change("day", "", locked.day, changes.day))
        locked.day = changes.day
        event_fields.append("day")
    deadline = changes.registration_deadline
    if deadline is not None and deadline != locked.registration_deadline:
        moved.append(_change("registration_deadline", "", locked.registration_deadline, deadline))
        locked.registration_deadline = deadline
        event_fields.append("registration_deadline")
    if event_fields:
        locked.save(update_fields=event_fields)
    sessions = locked.sessions.select_for_update().filter(pk__in=list(session_times))
    found = {session.pk: session for session in sessions.order_by("position", "starts_at")}
    if missing := set(session_times) - set(found):
        raise ConnectivitySession.DoesNotExist(f"Not sessions of event {locked.pk}: {missing}")
    for session in found.values():
        starts, ends = session_times[session.pk]
        if (starts, ends) == (session.starts_at, session.ends_at):
            continue
        session_change_check(session=session, now=now)
        if ends <= starts:
            raise ConnectivityError(
                _("%(session)s must end after it starts.") % {"session": session.name}
            )
        fields = []
        for field, new in (("starts_at", starts), ("ends_at", ends)):
            old = getattr(session, field)
            if new != old:
                moved.append(_change(field, session.name, old, new))
                setattr(session, field, new)
                fields.append(field)
        session.save(update_fields=fields)
    if not moved or not locked.is_published:
        return moved
    terminal = locked.terminal
    audit_record(
        action=AuditAction.EVENT_RESCHEDULED,
        outcome=Outcome.SUCCESS,
        actor=acting_user,
        detail={
            "event": locked.pk,
            "terminal": terminal.code,
            "day": locked.day.isoformat(),
            "changes": moved,
        },
    )
    email_queue_many(
        kind=CONNECTIVITY_RESCHEDULED,
        source=terminal_das(terminal),
        to=F("email"),
        # As text: a JSON value nested in JSONObject() is a string on SQLite and an object on
        # PostgreSQL; text reads back the same on both (migration.emails).
        params=JSONObject(event_id=Value(locked.pk), changes=Value(json.dumps(moved))),
    )
    return moved
