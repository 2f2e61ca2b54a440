"""The login entries a landing page shows, decided by each terminal's migration phase."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from django.urls import reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from authn import sessions
from migration import phases
from migration.models import ConnectivitySession, Milestone, Phase, TestEntry
from participants.models import Scope, Terminal

# The labels participants know from the circulars.
LABEL_SMARTCARD_FUNCTIONS = _(
    "Login with Smartcard - Online Functions and Overnight Report Download"
)
LABEL_OTP_ONLINE = _("Login with OTP - Online Functions")
LABEL_OTP_REPORTS = _("Login with OTP - Overnight Report Download")
LABEL_SMARTCARD_DMS = _("Login with Smartcard - Security Management Functions")
LABEL_OTP_DMS = _("Login with OTP - Security Management Functions")

OTP_SCOPES = (Scope.ONLINE, Scope.REPORTS, Scope.DMS)
OTP_TEST_ENTRY = {
    Scope.ONLINE: TestEntry.OTP_ONLINE,
    Scope.REPORTS: TestEntry.OTP_REPORTS,
    Scope.DMS: TestEntry.OTP_DMS,
}
# A smartcard entry logs in for every scope it names, as on the legacy terminal.
SMARTCARD_ENTRIES: dict[str, tuple[Scope, ...]] = {
    "functions": (Scope.ONLINE, Scope.REPORTS),
    "dms": (Scope.DMS,),
}


@dataclasses.dataclass(frozen=True)
class Entry:
    label: str | Promise
    url: str
    method: str


@dataclasses.dataclass(frozen=True)
class TerminalEntries:
    terminal: Terminal
    phase: Phase
    entries: list[Entry]
    smartcard_ended: bool
    next_milestone: Milestone | None = None
    # A connectivity-test session running now: the page shows a banner, and its entries.
    connectivity_session: ConnectivitySession | None = None


def entries_for(
    terminal: Terminal, *, console: str, next_milestone: Milestone | None = None
) -> TerminalEntries:
    """Return the entries of the "functions" landing (`/`) or the "dms" landing (`/dms/`)."""
    phase = phases.terminal_phase(terminal)
    smartcard_open = phases.entry_open(
        terminal, TestEntry.SMARTCARD_DMS if console == "dms" else TestEntry.SMARTCARD_FUNCTIONS
    )
    session = phases.connectivity_session(terminal)
    slug = terminal.slug
    entries: list[Entry] = []
    smartcard_entry = "dms" if console == "dms" else "functions"
    if smartcard_open:
        label = LABEL_SMARTCARD_DMS if console == "dms" else LABEL_SMARTCARD_FUNCTIONS
        url = reverse("authn:smartcard-login", kwargs={"terminal": slug, "entry": smartcard_entry})
        entries.append(Entry(label=label, url=url, method="smartcard"))
    if phases.otp_login_open(terminal):
        otp = (
            [(Scope.DMS, LABEL_OTP_DMS)]
            if console == "dms"
            else [
                (Scope.ONLINE, LABEL_OTP_ONLINE),
                (Scope.REPORTS, LABEL_OTP_REPORTS),
            ]
        )
        for scope, label in otp:
            if not phases.entry_open(terminal, OTP_TEST_ENTRY[scope]):
                continue
            url = reverse("authn:otp-login", kwargs={"terminal": slug, "scope": scope.value})
            entries.append(Entry(label=label, url=url, method="otp"))
    return TerminalEntries(
        terminal=terminal,
        phase=phase,
        entries=entries,
        smartcard_ended=not smartcard_open and session is None,
        next_milestone=next_milestone,
        connectivity_session=session,
    )


def home_url(scope: str) -> str:
    return reverse(
        {
            Scope.ONLINE: "authn:online-home",
            Scope.REPORTS: "authn:report-list",
            Scope.DMS: "dms:home",
            Scope.STAFF: "admin:index",
        }[Scope(scope)]
    )


def landing_url(scope: str) -> str:
    return reverse("authn:dms-landing" if scope == Scope.DMS else "authn:landing")


def login_url(scope: str, terminal: Terminal | None) -> str:
    """Return where a request for a page of `scope` is sent to log in."""
    if scope == Scope.STAFF:
        return reverse("authn:staff-login")
    if terminal is not None and phases.otp_login_open(terminal):
        return reverse("authn:otp-login", kwargs={"terminal": terminal.slug, "scope": scope})
    return landing_url(scope)


def session_login_url(
    *, scopes: Sequence[str], method: str, terminal_code: str | None, path: str
) -> str:
    """Return where a session that has just ended logs in again: the same kind of login.

    A card session goes back to the card login while the terminal still takes cards; any
    other to its scope's login. A card session holds two scopes: the one whose pages
    `path` is on wins.
    """
    if not scopes:
        return reverse("authn:landing")
    scope = next((s for s in scopes if path.startswith(home_url(s))), scopes[0])
    terminal = phases.entry_terminal(terminal_code) if terminal_code else None
    card = method in (sessions.Method.SMARTCARD, sessions.Method.SMARTCARD_DEMO)
    if card and terminal is not None and phases.smartcard_login_open(terminal):
        name = (
            "authn:smartcard-demo-login"
            if method == sessions.Method.SMARTCARD_DEMO
            else "authn:smartcard-login"
        )
        entry = "dms" if scope == Scope.DMS else "functions"
        return reverse(name, kwargs={"terminal": terminal.slug, "entry": entry})
    return login_url(scope, terminal)
