"""Every question the portal asks of a terminal's migration phase, answered once.

Callers ask here and never read a programme's fields: when milestones come to set the
phase on a schedule, these functions are the only place that has to learn about them.
A terminal without a programme is in Preparation.

The functions take a terminal (or a user) whose programme the caller has loaded with
`select_related(...programme)` where it cares about query counts.
"""

from __future__ import annotations

import datetime as dt

from django.db.models import Q

from migration.models import Phase, Programme
from participants.models import Participant, Terminal, User


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
    """Return when 2FA is planned to launch on the terminal (setup and OTP login open then)."""
    programme = _programme(terminal)
    return programme.planned_launch_at if programme is not None else None
