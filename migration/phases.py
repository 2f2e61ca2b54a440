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
from django.db.models import Q

from migration.models import Milestone, MilestoneKind, Phase, Programme
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
    terminal = Terminal.objects.select_related("programme").filter(code=code).first()
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


def smartcard_login_open(terminal: Terminal) -> bool:
    """Return whether the terminal's smartcard login entries may be used now."""
    return terminal_phase(terminal).allows_smartcard_login


def smartcard_login_open_for_code(terminal_code: str | None) -> bool:
    """Return whether smartcard login is still open on the terminal with this code.

    A card session asks on every request, with only the terminal code it logged in for.
    """
    phases = [phase for phase in Phase if phase.allows_smartcard_login]
    return Programme.objects.filter(terminal__code=terminal_code, phase__in=phases).exists()


def otp_login_open(terminal: Terminal) -> bool:
    """Return whether the terminal's OTP login entries may be used now."""
    return terminal_phase(terminal).allows_otp_login


def setup_open(terminal: Terminal) -> bool:
    """Return whether users of the terminal may set up 2FA now."""
    return terminal_phase(terminal).allows_2fa_setup


def setup_open_for(user: User) -> bool:
    """Return whether the user may set up 2FA now under their terminal's phase."""
    if user.participant is None:
        return False
    return setup_open(user.participant.terminal)


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
