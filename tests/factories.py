"""Factories for the portal's models."""

from __future__ import annotations

import datetime as dt
import hashlib

import factory
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from authn.models import BackupCodeDevice, EmailOTPDevice
from migration.models import Milestone, MilestoneKind, Phase, Programme
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

USER_PASSWORD = "a-long-enough-passphrase-1"
CARD_PASSWORD = "card-password-1"


def terminal(code: str = "CCASS") -> Terminal:
    return Terminal.objects.select_related("programme").get(code=code)


def set_phase(code: str, phase: Phase, **extra: object) -> Programme:
    """Put the terminal in `phase` (a test's shortcut past the milestones), its launch
    milestone dated `planned_launch_at` if given."""
    if "planned_launch_at" in extra:
        Milestone.objects.filter(programme__terminal__code=code, kind=MilestoneKind.LAUNCH).update(
            planned_at=extra.pop("planned_launch_at")
        )
    programme = Programme.objects.get(terminal__code=code)
    programme.phase = phase
    for key, value in extra.items():
        setattr(programme, key, value)
    programme.save()
    return programme


class ParticipantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Participant

    participant_id = factory.Sequence(lambda n: f"B{n + 10000:05d}")
    name = factory.Sequence(lambda n: f"Firm Number {n} Securities Limited")
    kind = ParticipantKind.CP
    terminal = factory.LazyFunction(lambda: terminal("CCASS"))


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    login_id = factory.Sequence(lambda n: f"USER{n:05d}")
    name = factory.Faker("name")
    participant = factory.SubFactory(ParticipantFactory)
    role = Role.USER
    email = factory.LazyAttribute(lambda u: f"{u.login_id.lower()}@firm.example")
    email_registered_at = factory.LazyFunction(timezone.now)
    password = factory.django.Password(USER_PASSWORD)


class DAFactory(UserFactory):
    role = Role.DA
    da_duty = DaDuty.MAKER
    scope_dms = True


class StaffFactory(UserFactory):
    participant = None
    is_staff = True
    is_superuser = True
    scope_online = False
    scope_reports = False


class TOTPDeviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TOTPDevice

    user = factory.SubFactory(UserFactory)
    name = "Authenticator app"
    confirmed = True


class EmailOTPDeviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EmailOTPDevice

    user = factory.SubFactory(UserFactory)
    name = "Email"
    confirmed = True


class BackupCodeDeviceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BackupCodeDevice

    user = factory.SubFactory(UserFactory)
    name = "Backup codes"
    confirmed = True


class SmartcardFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Smartcard
        skip_postgeneration_save = True

    user = factory.SubFactory(UserFactory)
    serial = factory.Sequence(lambda n: f"CARD{n:06d}")
    fingerprint_sha256 = factory.LazyAttribute(
        lambda c: hashlib.sha256(c.serial.encode()).hexdigest()
    )
    valid_from = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=30))
    valid_to = factory.LazyFunction(lambda: timezone.now() + dt.timedelta(days=300))
    password_hash = ""

    @factory.post_generation
    def password(self, create: bool, extracted: str | None, **kwargs: object) -> None:
        self.set_password(extracted or CARD_PASSWORD)
        if create:
            self.save()


class ReportFileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ReportFile

    participant = factory.SubFactory(ParticipantFactory)
    business_date = factory.LazyFunction(lambda: timezone.localdate())
    title = "Settlement report"
    file = factory.django.FileField(filename="report.csv", data=b"a,b\n1,2\n")


class ConnectivityEventFactory(factory.django.DjangoModelFactory):
    """A published connectivity-test event on CCASS two weeks ahead, with the circular's two
    sessions and deadline (sessions=False: no sessions; published_at=None: unpublished)."""

    class Meta:
        model = "migration.ConnectivityEvent"
        skip_postgeneration_save = True

    terminal = factory.LazyFunction(lambda: terminal("CCASS"))
    day = factory.LazyFunction(lambda: timezone.localdate() + dt.timedelta(days=14))
    registration_deadline = factory.LazyAttribute(
        lambda e: dt.datetime.combine(
            e.day - dt.timedelta(days=8), dt.time(23, 59), tzinfo=timezone.get_default_timezone()
        )
    )
    published_at = factory.LazyFunction(timezone.now)

    @factory.post_generation
    def sessions(self, create: bool, extracted: bool | None, **kwargs: object) -> None:
        from migration.connectivity import circular_sessions_create

        if create and extracted is not False:
            circular_sessions_create(self)
