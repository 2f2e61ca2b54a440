"""Every question the portal asks of a terminal's migration phase, answered once.

Callers ask here and never read a programme's fields: when milestones come to set the
phase on a schedule, these functions are the only place that has to learn about them.
A terminal without a programme is in Preparation.

The functions take a terminal (or a user) whose programme the caller has loaded with
`select_related(...programme)` where it cares about query counts.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from migration.models import (
    ConnectivityRegistration,
    ConnectivitySession,
    Milestone,
    MilestoneKind,
    Phase,
    Programme,
    TestEntry,
)
from participants.models import Participant, Terminal, User

_entry_terminals: dict[str, tuple[float, Terminal | None]] = {}
_entry_terminals_lock = threading.Lock()


def entry_terminal(code: str) -> Terminal | None:
    """Return the terminal with this code and its programme, for a login page to ask.

    Every step of every login asks which phase its terminal is in. Each process keeps the
    answer for PHASE_CACHE_SECONDS: a phase change made in this process (the admin, a
    milestone) clears it at once, one made in another process is seen within that time,
    far inside the minute the scheduled milestones run on.
    """
    code = code.upper()
    now = time.monotonic()
    cached = _entry_terminals.get(code)
    if cached is not None and cached[0] > now:
        return cached[1]
    terminal = (
        with_connectivity_session(Terminal.objects.select_related("programme"))
        .filter(code=code)
        .first()
    )
    if terminal is not None:
        _programme(terminal)  # read now, so that the cached copy never queries
    seconds = settings.PHASE_CACHE_SECONDS
    if seconds > 0:
        with _entry_terminals_lock:
            _entry_terminals[code] = (now + seconds, terminal)
    return terminal


def entry_terminals_forget(**_signal: Any) -> None:
    """Forget the cached terminals (a terminal or a programme changed)."""
    with _entry_terminals_lock:
        _entry_terminals.clear()


def _programme(terminal: Terminal) -> Programme | None:
    # The reverse one-to-one raises when there is no row; getattr turns that into None.
    return getattr(terminal, "programme", None)


def terminal_phase(terminal: Terminal) -> Phase:
    """Return the phase the terminal's migration is in."""
    programme = _programme(terminal)
    return programme.current_phase if programme is not None else Phase.PREPARATION


def with_connectivity_session(
    terminals: QuerySet[Terminal], now: dt.datetime | None = None
) -> QuerySet[Terminal]:
    """Annotate each terminal with the id of the connectivity-test session running on it
    now (`connectivity_session_id`), so that `connectivity_session` asks no query of its own."""
    now = now or timezone.now()
    running = ConnectivitySession.objects.running(now).filter(event__terminal=OuterRef("pk"))
    return terminals.annotate(connectivity_session_id=Subquery(running.values("pk")[:1]))


def connectivity_session(
    terminal: Terminal, now: dt.datetime | None = None
) -> ConnectivitySession | None:
    """Return the connectivity-test session running on the terminal now, if any.

    During a session the entries it opens are open whatever the phase, and only those
    (the circular: 2FA initiation in Session 1 even before the launch). A terminal from
    `entry_terminal` (kept for PHASE_CACHE_SECONDS) knows its session already; a session
    is seen to end on time, and to start at most that long late.
    """
    now = now or timezone.now()
    cached: ConnectivitySession | None
    if hasattr(terminal, "_connectivity_session"):
        cached = terminal._connectivity_session
    else:
        if hasattr(terminal, "connectivity_session_id"):
            session_id = terminal.connectivity_session_id
            cached = (
                ConnectivitySession.objects.select_related("event").filter(pk=session_id).first()
                if session_id is not None
                else None
            )
        else:
            cached = (
                ConnectivitySession.objects.running(now)
                .select_related("event")
                .filter(event__terminal=terminal)
                .first()
            )
        terminal._connectivity_session = cached  # type: ignore[attr-defined]
    if cached is not None and not cached.is_running(now):
        return None
    return cached


def _session_opens(session: ConnectivitySession, entries: Iterable[str]) -> bool:
    return any(session.opens(entry) for entry in entries)


SMARTCARD_TEST_ENTRIES = (TestEntry.SMARTCARD_FUNCTIONS, TestEntry.SMARTCARD_DMS)
OTP_TEST_ENTRIES = (TestEntry.OTP_ONLINE, TestEntry.OTP_REPORTS, TestEntry.OTP_DMS)


def smartcard_login_open(terminal: Terminal) -> bool:
    """Return whether the terminal's smartcard login entries may be used now."""
    session = connectivity_session(terminal)
    if session is not None:
        return _session_opens(session, SMARTCARD_TEST_ENTRIES)
    return terminal_phase(terminal).allows_smartcard_login


def entry_open(terminal: Terminal, entry: str) -> bool:
    """Return whether one login entry is open now: as the running test session says, or
    as the phase does."""
    session = connectivity_session(terminal)
    if session is not None:
        return session.opens(entry)
    phase = terminal_phase(terminal)
    if entry in SMARTCARD_TEST_ENTRIES:
        return phase.allows_smartcard_login
    if entry == TestEntry.INITIATION:
        return phase.allows_2fa_setup
    return phase.allows_otp_login


def smartcard_login_open_for_code(terminal_code: str | None) -> bool:
    """Return whether smartcard login is still open on the terminal with this code.

    A card session asks on every request, with only the terminal code it logged in for.
    """
    phases = [phase for phase in Phase if phase.allows_smartcard_login]
    if Programme.objects.filter(terminal__code=terminal_code, phase__in=phases).exists():
        return True
    # A card login made in a connectivity test lasts as long as its session.
    running = ConnectivitySession.objects.running(timezone.now())
    return running.filter(event__terminal__code=terminal_code).exists()


def otp_login_open(terminal: Terminal) -> bool:
    """Return whether the terminal's OTP login entries may be used now."""
    session = connectivity_session(terminal)
    if session is not None:
        return _session_opens(session, OTP_TEST_ENTRIES)
    return terminal_phase(terminal).allows_otp_login


def setup_open(terminal: Terminal) -> bool:
    """Return whether users of the terminal may set up 2FA now."""
    if terminal_phase(terminal).allows_2fa_setup:
        return True
    session = connectivity_session(terminal)
    return session is not None and session.opens(TestEntry.INITIATION)


def setup_open_for(user: User) -> bool:
    """Return whether the user may set up 2FA now: under their terminal's phase, or in a
    connectivity-test session that opens 2FA initiation, for a registered firm."""
    if user.participant is None:
        return False
    terminal = user.participant.terminal
    if terminal_phase(terminal).allows_2fa_setup:
        return True
    session = connectivity_session(terminal)
    return (
        session is not None
        and session.opens(TestEntry.INITIATION)
        and ConnectivityRegistration.objects.filter(
            event_id=session.event_id, participant=user.participant
        ).exists()
    )


def setup_open_filter(terminal_path: str) -> Q:
    """Return a filter for rows whose terminal (at `terminal_path`) has 2FA setup open now."""
    open_phases = [phase for phase in Phase if phase.allows_2fa_setup]
    return Q(**{f"{terminal_path}__programme__phase__in": open_phases})


def da_email_registration_open(participant: Participant) -> bool:
    """Return whether the designated emails of the firm's DAs may be registered now."""
    programme = _programme(participant.terminal)
    return bool(programme is not None and programme.da_email_registration_open)


def launch_planned_at(terminal: Terminal) -> dt.datetime | None:
    """Return when 2FA is planned to launch on the terminal (setup and OTP login open then):
    the date of its launch milestone."""
    planned: dt.datetime | None = (
        Milestone.objects.filter(programme__terminal=terminal, kind=MilestoneKind.LAUNCH)
        .values_list("planned_at", flat=True)
        .first()
    )
    return planned


def next_milestones(terminals: Iterable[Terminal]) -> dict[int, Milestone]:
    """Return, by terminal id, each terminal's next milestone to be carried out, for those
    whose next one has a date: one query for all of them."""
    found: dict[int, Milestone] = {}
    pending = (
        Milestone.objects.filter(
            programme__terminal__in=[terminal.pk for terminal in terminals],
            carried_out_at__isnull=True,
        )
        .select_related("programme")
        .order_by("programme_id", "position")
    )
    seen: set[int] = set()
    for milestone in pending:
        if milestone.programme_id in seen:
            continue
        seen.add(milestone.programme_id)
        if milestone.planned_at is not None:
            found[milestone.programme.terminal_id] = milestone
    return found
