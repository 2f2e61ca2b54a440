"""Every question asked of a phase is answered by migration.phases, and only there."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from migration import phases
from migration.models import Phase, Programme
from participants.models import Terminal
from tests import factories

pytestmark = pytest.mark.django_db

# phase -> (smartcard login, OTP login, 2FA setup), as PRODUCT.md's phase table says.
PHASE_TABLE = {
    Phase.PREPARATION: (True, False, False),
    Phase.EMAIL_REGISTRATION: (True, False, False),
    Phase.PARALLEL_RUN: (True, True, True),
    Phase.TWO_FA_ONLY: (False, True, True),
    Phase.DECOMMISSIONED: (False, True, True),
}


@pytest.mark.parametrize("phase", list(Phase))
def test_each_rule_follows_the_phase_table(phase):
    factories.set_phase("CCASS", phase)
    terminal = Terminal.objects.select_related("programme").get(code="CCASS")
    user = factories.UserFactory(participant=factories.ParticipantFactory(terminal=terminal))
    smartcard, otp, setup = PHASE_TABLE[phase]
    assert phases.terminal_phase(terminal) == phase
    assert phases.smartcard_login_open(terminal) is smartcard
    assert phases.smartcard_login_open_for_code("CCASS") is smartcard
    assert phases.otp_login_open(terminal) is otp
    assert phases.setup_open(terminal) is setup
    assert phases.setup_open_for(user) is setup


def test_da_email_registration_and_launch_date_come_from_the_programme():
    launch = timezone.now() + dt.timedelta(days=10)
    factories.set_phase(
        "CCMS", Phase.EMAIL_REGISTRATION, da_email_registration_open=True, planned_launch_at=launch
    )
    firm = factories.ParticipantFactory(terminal=Terminal.objects.get(code="CCMS"))
    assert phases.da_email_registration_open(firm) is True
    assert phases.launch_planned_at(firm.terminal) == launch
    other = factories.ParticipantFactory(terminal=Terminal.objects.get(code="CCASS"))
    assert phases.da_email_registration_open(other) is False
    assert phases.launch_planned_at(other.terminal) is None


def test_a_terminal_without_a_programme_is_in_preparation():
    Programme.objects.filter(terminal__code="CCMS").delete()
    terminal = Terminal.objects.get(code="CCMS")
    firm = factories.ParticipantFactory(terminal=terminal)
    assert phases.terminal_phase(terminal) == Phase.PREPARATION
    assert phases.smartcard_login_open(terminal) and not phases.otp_login_open(terminal)
    assert not phases.smartcard_login_open_for_code("NOPE")
    assert not phases.setup_open_for(factories.UserFactory(participant=firm))
    assert not phases.da_email_registration_open(firm)
    assert phases.launch_planned_at(terminal) is None


def test_staff_have_no_setup_phase():
    assert not phases.setup_open_for(factories.StaffFactory())


# Reading a programme's fields, or its phase's allows_* flags, outside migration/.
PHASE_READ = re.compile(
    r"\.programme\b(?!__)|getattr\([^)]*[\"']programme[\"']|\.allows_(smartcard_login|otp_login|2fa_setup)"
)


def test_no_app_but_migration_reads_a_phase_itself():
    base = Path(settings.BASE_DIR)
    offenders = []
    for app in ("common", "participants", "audit", "authn", "dms", "ccass"):
        for path in (base / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if PHASE_READ.search(line):
                    offenders.append(f"{path.relative_to(base)}:{number}: {line.strip()}")
    for path in (base / "templates").rglob("*.html"):
        if "programme" in path.read_text():
            offenders.append(f"{path.relative_to(base)}: reads the programme")
    assert offenders == []
