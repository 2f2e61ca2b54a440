"""Seed demo data for `make run`; running it again changes nothing that is there."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from authn.activation import activation_send
from authn.models import ActivationToken, EmailOTPDevice
from migration import readiness
from migration.connectivity import event_from_circular
from migration.models import ConnectivityEvent, Phase, Programme, ReadinessSnapshot
from migration.services import event_publish
from participants.models import (
    DaDuty,
    Participant,
    ParticipantKind,
    ReportFile,
    Role,
    Smartcard,
    Terminal,
    User,
)

DEMO_CARD_PASSWORD = "card-pass-2023"
DEMO_STAFF_PASSWORD = "Harbour-Lights-Ferry-2023"

FIRMS = [
    ("CCASS", "B01234", "Golden Harbour Securities Limited", ParticipantKind.CP),
    ("CCASS", "B05678", "Victoria Peak Custodian Bank", ParticipantKind.DB),
    ("CCMS", "C00123", "Lion Rock Options Limited", ParticipantKind.CP),
]


def _fingerprint(login_id: str) -> str:
    import hashlib

    return hashlib.sha256(f"demo-card:{login_id}".encode()).hexdigest()


def _schedule(programme: Programme, now: dt.datetime, *, days: list[int], done: int) -> None:
    """Date the programme's milestones `days` from now (at 09:00 Hong Kong time), the first
    `done` of them carried out on their dates, as the scheduler would have."""
    for milestone, offset in zip(programme.milestones.order_by("position"), days, strict=True):
        planned = timezone.localtime(now + dt.timedelta(days=offset)).replace(
            hour=9, minute=0, second=0, microsecond=0
        )
        milestone.planned_at = planned
        if milestone.position < done:
            milestone.carried_out_at = planned
            if milestone.needs_approval:
                milestone.approved_at = planned - dt.timedelta(days=3)
        milestone.save()


def _earlier(name: str, value: int, users: int, share: float, late: set[str]) -> int:
    """The demo history's value of a figure at `share` of the way to today's `value`."""
    if name in ("users", "das"):
        return value
    if name in ("smartcard_only", "need_action"):  # these fall as firms get ready
        return users - round((users - value) * share)
    return round(value * share ** (2 if name in late else 1))


class Command(BaseCommand):
    help = (
        "Seed terminals' programmes, participants, users, DAs, smartcards and reports for the demo."
    )

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        # The demo staff account's password is printed in the README: it must never exist
        # on a real deployment.
        if not settings.DEBUG:
            raise CommandError(
                "seed_demo runs only with DEBUG on: it creates demo accounts with published "
                "passwords. Create the first staff member with createsuperuser instead."
            )
        now = timezone.now()
        programmes = {p.terminal.code: p for p in Programme.objects.select_related("terminal")}
        ccass, ccms = programmes["CCASS"], programmes["CCMS"]
        if ccass.phase == Phase.PREPARATION:
            # In parallel run: the milestones up to the launch done, the rest to come.
            _schedule(ccass, now, days=[-60, -40, -35, -20, -7, 21, 35], done=5)
            ccass.phase = Phase.PARALLEL_RUN
            ccass.da_email_registration_open = True
            ccass.save()
        if ccms.phase == Phase.PREPARATION:
            # Email registration open; the launch waits for regulatory approval.
            _schedule(ccms, now, days=[-10, 10, 14, 24, 30, 60, 75], done=1)
            ccms.phase = Phase.EMAIL_REGISTRATION
            ccms.save()

        staff, created = User.objects.get_or_create(
            login_id="hkex.ops",
            defaults={
                "name": "HKEX Operations",
                "is_staff": True,
                "is_superuser": True,
                "scope_online": False,
                "scope_reports": False,
                "email": "ops@hkex.example",
            },
        )
        if created:
            staff.set_password(DEMO_STAFF_PASSWORD)
            staff.save()
            EmailOTPDevice.objects.create(user=staff, name="Email", confirmed=True)

        rows = []
        for terminal_code, pid, name, kind in FIRMS:
            terminal = Terminal.objects.get(code=terminal_code)
            firm, _ = Participant.objects.get_or_create(
                participant_id=pid, defaults={"name": name, "kind": kind, "terminal": terminal}
            )
            people = [
                (f"{pid}DA1", Role.DA, DaDuty.MAKER, True),
                (f"{pid}DA2", Role.DA, DaDuty.CHECKER, True),
                (f"{pid}U01", Role.USER, "", True),
                (f"{pid}U02", Role.USER, "", True),
                (f"{pid}U03", Role.USER, "", False),
            ]
            for login_id, role, duty, with_email in people:
                user, created = User.objects.get_or_create(
                    login_id=login_id,
                    defaults={
                        "participant": firm,
                        "role": role,
                        "da_duty": duty,
                        "scope_dms": role == Role.DA,
                        "name": f"Demo {login_id}",
                    },
                )
                if created:
                    user.set_unusable_password()
                    if with_email:
                        user.email = f"{login_id.lower()}@{pid.lower()}.example"
                        user.email_registered_at = now
                    user.save()
                    card = Smartcard(
                        user=user,
                        serial=f"DEMO-{login_id}",
                        fingerprint_sha256=_fingerprint(login_id),
                        valid_from=now - dt.timedelta(days=365),
                        valid_to=now + dt.timedelta(days=365),
                    )
                    card.set_password(DEMO_CARD_PASSWORD)
                    card.save()
                sent = self._activate(user, now, terminal_code, ccass)
                rows.append((terminal_code, pid, login_id, role, user.email or "(no email)", sent))
            self._reports(firm, now)
        self._history(now)
        event = self._connectivity_event(now, staff)
        self._print(rows)
        self.stdout.write(
            f"  Connectivity test: CCASS on {event.day:%A %d %B %Y}, Session 1 18:00-20:00 and"
            " Session 2 22:00-23:00 (Hong Kong); DAs register under Events in /dms/"
        )

    def _history(self, now: dt.datetime) -> None:
        """Two weeks of readiness snapshots rising to today's figures, so that the staff
        dashboard draws curves on the first start; then today's, as the beat thread would."""
        if ReadinessSnapshot.objects.exists():
            return
        today = readiness.hong_kong_today(now)
        current = readiness.figures_by_firm()
        days = 14
        # A firm that registers its emails first and sets up 2FA later: the share of
        # today's figure on each earlier day, linear for emails, quadratic for the rest.
        late = {"set_up", "set_up_app", "logged_in_otp"}
        for pk, figures in current.items():
            ReadinessSnapshot.objects.bulk_create(
                ReadinessSnapshot(
                    participant_id=pk,
                    day=today - dt.timedelta(days=days - n),
                    **{
                        name: _earlier(name, value, figures.users, n / days, late)
                        for name, value in figures.as_dict().items()
                    },
                )
                for n in range(days)
            )
        readiness.readiness_snapshot_take(day=today)

    def _activate(self, user: User, now: dt.datetime, terminal_code: str, ccass: Programme) -> str:
        if terminal_code != "CCASS" or not user.email or user.two_factor_ready_at:
            return "set up" if user.two_factor_ready_at else "-"
        if ActivationToken.objects.filter(user=user).open(now).exists():
            return "activation email in outbox"
        activation_send(user=user, acting_user=None)
        return "activation email in outbox"

    def _reports(self, firm: Participant, now: dt.datetime) -> None:
        if ReportFile.objects.filter(participant=firm).exists():
            return
        for days, title in [
            (1, "Settlement report"),
            (2, "Settlement report"),
            (1, "Statement of money ledger"),
        ]:
            day = (now - dt.timedelta(days=days)).date()
            report = ReportFile(participant=firm, business_date=day, title=title)
            content = f"participant,{firm.participant_id}\nbusiness_date,{day}\nreport,{title}\n"
            slug = title.lower().replace(" ", "-")
            report.file.save(f"{day:%Y%m%d}-{slug}.csv", ContentFile(content.encode()), save=True)

    def _connectivity_event(self, now: dt.datetime, staff: User) -> ConnectivityEvent:
        """A published connectivity test on CCASS, on the first Saturday at least ten days on,
        as the circular's (its schedule emailed to the DAs, as publishing does)."""
        existing = ConnectivityEvent.objects.filter(terminal__code="CCASS").first()
        if existing is not None:
            return existing
        day = timezone.localdate(now) + dt.timedelta(days=10)
        day += dt.timedelta(days=(5 - day.weekday()) % 7)
        event = event_from_circular(terminal=Terminal.objects.get(code="CCASS"), day=day)
        return event_publish(event=event, acting_user=staff)

    def _print(self, rows: Sequence[tuple[str, ...]]) -> None:
        out = self.stdout.write
        out("")
        out("Demo data ready. Login IDs:")
        out(f"  {'terminal':8} {'firm':7} {'login ID':11} {'role':5} {'email':28} 2FA")
        for terminal, pid, login_id, role, email, sent in rows:
            out(f"  {terminal:8} {pid:7} {login_id:11} {role:5} {email:28} {sent}")
        out("")
        out(f"  Smartcard password of every demo card: {DEMO_CARD_PASSWORD}")
        out(f"  Staff: hkex.ops / {DEMO_STAFF_PASSWORD} (OTP by email) at /staff/login/ -> /admin/")
