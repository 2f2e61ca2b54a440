"""Each terminal's migration programme and the phase it is in."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from participants.models import Participant, Terminal


class Phase(models.TextChoices):
    """The phases of PRODUCT.md, in order; each decides which logins are open."""

    PREPARATION = "preparation", _("Preparation")
    EMAIL_REGISTRATION = "email_registration", _("Email registration")
    PARALLEL_RUN = "parallel_run", _("Parallel run")
    TWO_FA_ONLY = "2fa_only", _("2FA only")
    DECOMMISSIONED = "decommissioned", _("Smartcard decommissioned")

    @property
    def order(self) -> int:
        return list(Phase).index(self)

    @property
    def allows_smartcard_login(self) -> bool:
        return self.order <= Phase.PARALLEL_RUN.order

    @property
    def allows_2fa_setup(self) -> bool:
        return self.order >= Phase.PARALLEL_RUN.order

    @property
    def allows_otp_login(self) -> bool:
        return self.order >= Phase.PARALLEL_RUN.order


class Programme(models.Model):
    """The migration programme of one terminal and the phase it is in.

    The phase is derived: carrying out a milestone (migration.services) moves it, in the
    same transaction. Nothing else writes it, and staff cannot edit it in the admin.
    """

    terminal = models.OneToOneField(
        Terminal, on_delete=models.PROTECT, related_name="programme", verbose_name=_("terminal")
    )
    phase = models.CharField(
        _("phase"), max_length=24, choices=Phase.choices, default=Phase.PREPARATION
    )
    da_email_registration_open = models.BooleanField(
        _("DAs' email registration open"), default=False
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["terminal__code"]
        verbose_name = _("migration programme")
        verbose_name_plural = _("migration programmes")

    def __str__(self) -> str:
        return f"{self.terminal}: {self.get_phase_display()}"

    @property
    def current_phase(self) -> Phase:
        return Phase(self.phase)


class MilestoneKind(models.TextChoices):
    """The milestones of a programme, in the order they are carried out (the circulars)."""

    EMAIL_REGISTRATION_OPENS = "email_registration_opens", _("Users' email registration opens")
    EMAIL_REGISTRATION_DEADLINE = "email_registration_deadline", _("Email registration deadline")
    DA_EMAIL_REGISTRATION_OPENS = "da_email_registration_opens", _("DAs' email registration opens")
    DA_EMAIL_REGISTRATION_DEADLINE = (
        "da_email_registration_deadline",
        _("DAs' email registration deadline"),
    )
    LAUNCH = "launch", _("2FA launch (parallel run begins)")
    PARALLEL_RUN_ENDS = "parallel_run_ends", _("End of parallel run (2FA only)")
    DECOMMISSIONING = "decommissioning", _("Smartcard decommissioning")

    @property
    def order(self) -> int:
        return list(MilestoneKind).index(self)

    @property
    def phase(self) -> Phase | None:
        """The phase the programme enters when this milestone is carried out, if any."""
        return _PHASE_AT.get(self)


_PHASE_AT = {
    MilestoneKind.EMAIL_REGISTRATION_OPENS: Phase.EMAIL_REGISTRATION,
    MilestoneKind.LAUNCH: Phase.PARALLEL_RUN,
    MilestoneKind.PARALLEL_RUN_ENDS: Phase.TWO_FA_ONLY,
    MilestoneKind.DECOMMISSIONING: Phase.DECOMMISSIONED,
}


class Milestone(models.Model):
    """One dated step of a terminal's programme, carried out once by the scheduler."""

    programme = models.ForeignKey(
        Programme,
        on_delete=models.CASCADE,
        related_name="milestones",
        verbose_name=_("programme"),
    )
    kind = models.CharField(_("milestone"), max_length=32, choices=MilestoneKind.choices)
    position = models.PositiveSmallIntegerField(_("order"), editable=False)
    planned_at = models.DateTimeField(
        _("planned for"),
        null=True,
        blank=True,
        help_text=_("Hong Kong time. Empty: not scheduled yet, so never carried out."),
    )
    needs_approval = models.BooleanField(_("subject to regulatory approval"), default=False)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("approved by"),
    )
    approved_at = models.DateTimeField(_("approved at"), null=True, blank=True)
    carried_out_at = models.DateTimeField(_("carried out at"), null=True, blank=True)

    class Meta:
        ordering = ["programme", "position"]
        verbose_name = _("milestone")
        verbose_name_plural = _("milestones")
        constraints = [
            models.UniqueConstraint(fields=["programme", "kind"], name="milestone_once_per_kind"),
            models.UniqueConstraint(
                fields=["programme", "position"], name="milestone_position_unique"
            ),
        ]
        indexes = [
            # The scheduler's question every minute: what is not carried out yet.
            models.Index(
                fields=["planned_at"],
                condition=models.Q(carried_out_at__isnull=True),
                name="milestone_pending_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.programme.terminal}: {self.get_kind_display()}"

    @property
    def milestone_kind(self) -> MilestoneKind:
        return MilestoneKind(self.kind)

    def is_approved(self) -> bool:
        return not self.needs_approval or self.approved_at is not None

    def is_due(self, now: dt.datetime) -> bool:
        """Return whether the scheduler should carry it out now (its predecessors aside)."""
        return (
            self.carried_out_at is None
            and self.planned_at is not None
            and self.planned_at <= now
            and self.is_approved()
        )


class ReadinessSnapshot(models.Model):
    """One firm's readiness figures at the end of one day (Hong Kong): the history that the
    dashboard's charts and the forecast's pace are read from. Written once per firm and day."""

    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="+", verbose_name=_("participant")
    )
    day = models.DateField(_("day"))
    users = models.PositiveIntegerField(_("users"))
    with_email = models.PositiveIntegerField(_("users with a designated email"))
    das = models.PositiveIntegerField(_("DAs"))
    das_with_email = models.PositiveIntegerField(_("DAs with a designated email"))
    set_up = models.PositiveIntegerField(_("users set up for 2FA"))
    set_up_app = models.PositiveIntegerField(_("set up with the app"))
    logged_in_otp = models.PositiveIntegerField(_("users who logged in with OTP"))
    smartcard_only = models.PositiveIntegerField(_("users still smartcard-only"))
    need_action = models.PositiveIntegerField(_("users who need action"))

    class Meta:
        ordering = ["day", "participant"]
        verbose_name = _("readiness snapshot")
        verbose_name_plural = _("readiness snapshots")
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "day"], name="readiness_once_per_firm_and_day"
            )
        ]
        indexes = [models.Index(fields=["day"], name="readiness_day_idx")]

    def __str__(self) -> str:
        return f"{self.participant_id} {self.day}"


class Reminder(models.Model):
    """A reminder sent to one firm's DAs: by staff, or by the schedule before a deadline, at
    most once per firm and deadline."""

    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="+", verbose_name=_("participant")
    )
    # The deadline a scheduled reminder was for; none for one that staff sent.
    milestone = models.ForeignKey(
        Milestone,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="reminders",
        verbose_name=_("milestone"),
    )
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("sent by"),
    )
    sent_at = models.DateTimeField(_("sent at"))

    class Meta:
        ordering = ["-sent_at"]
        verbose_name = _("reminder")
        verbose_name_plural = _("reminders")
        constraints = [
            models.UniqueConstraint(
                fields=["participant", "milestone"],
                condition=models.Q(milestone__isnull=False),
                name="reminder_once_per_firm_and_deadline",
            )
        ]

    def __str__(self) -> str:
        return f"{self.participant_id} {self.sent_at:%Y-%m-%d}"


# Connectivity-test events ------------------------------------------------------------------


class DataCentre(models.TextChoices):
    PRIMARY = "primary", _("Primary Data Centre")
    SECONDARY = "secondary", _("Secondary Data Centre")


class TestEntry(models.TextChoices):
    """A login entry a connectivity-test session opens, as the circular's schedule lists them."""

    SMARTCARD_FUNCTIONS = (
        "smartcard_functions",
        _("Login with Smartcard - Online Functions and Overnight Report Download"),
    )
    SMARTCARD_DMS = "smartcard_dms", _("Login with Smartcard - Security Management Functions")
    OTP_ONLINE = "otp_online", _("Login with OTP - Online Functions")
    OTP_REPORTS = "otp_reports", _("Login with OTP - Overnight Report Download")
    OTP_DMS = "otp_dms", _("Login with OTP - Security Management Functions")
    INITIATION = "initiation", _("Initiation of 2FA (set-up of password and OTP channel)")


class ConnectivityEvent(models.Model):
    """A connectivity-test event of one terminal: a day, a registration deadline, sessions."""

    terminal = models.ForeignKey(
        Terminal,
        on_delete=models.PROTECT,
        related_name="connectivity_events",
        verbose_name=_("terminal"),
    )
    title = models.CharField(_("title"), max_length=120, default="Post-release connectivity test")
    day = models.DateField(_("day of the test"))
    registration_deadline = models.DateTimeField(
        _("registration deadline"),
        help_text=_("Hong Kong time. Firms register on or before it."),
    )
    published_at = models.DateTimeField(_("published at"), null=True, blank=True, editable=False)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        editable=False,
        verbose_name=_("published by"),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        ordering = ["-day", "pk"]
        verbose_name = _("connectivity-test event")
        verbose_name_plural = _("connectivity-test events")

    def __str__(self) -> str:
        return f"{self.terminal}: {self.title} ({self.day:%Y-%m-%d})"

    @property
    def is_published(self) -> bool:
        return self.published_at is not None

    def registration_open(self, now: dt.datetime) -> bool:
        return self.is_published and now <= self.registration_deadline


class ConnectivitySessionQuerySet(models.QuerySet["ConnectivitySession"]):
    def running(self, now: dt.datetime) -> ConnectivitySessionQuerySet:
        """The sessions of published events running at `now`, the earliest first."""
        return self.filter(
            event__published_at__isnull=False, starts_at__lte=now, ends_at__gt=now
        ).order_by("starts_at")


class ConnectivitySession(models.Model):
    """One session of an event: when, at which data centre, which entries, and whether the
    account changes made in it are carried forward (Session 2's are undone at its end)."""

    event = models.ForeignKey(
        ConnectivityEvent,
        on_delete=models.CASCADE,
        related_name="sessions",
        verbose_name=_("event"),
    )
    position = models.PositiveSmallIntegerField(_("order"), default=1)
    name = models.CharField(_("name"), max_length=60)
    data_centre = models.CharField(_("data centre"), max_length=16, choices=DataCentre.choices)
    starts_at = models.DateTimeField(_("starts at"), help_text=_("Hong Kong time."))
    ends_at = models.DateTimeField(_("ends at"), help_text=_("Hong Kong time."))
    entries = models.JSONField(
        _("login entries open"),
        default=list,
        help_text=_("The login entries open in this session."),
    )
    carried_forward = models.BooleanField(
        _("account changes carried forward"),
        default=True,
        help_text=_(
            "If not, password, OTP device and backup-code changes made in this session are "
            "undone when it ends."
        ),
    )
    # The undo at the session's end, claimed once (not carried forward only).
    undone_at = models.DateTimeField(_("changes undone at"), null=True, blank=True, editable=False)
    undo_counts = models.JSONField(_("undo counts"), default=dict, blank=True, editable=False)

    objects = ConnectivitySessionQuerySet.as_manager()

    class Meta:
        ordering = ["event", "position", "starts_at"]
        verbose_name = _("connectivity-test session")
        verbose_name_plural = _("connectivity-test sessions")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")),
                name="connectivity_session_ends_after_start",
            ),
        ]
        indexes = [models.Index(fields=["starts_at", "ends_at"], name="connectivity_session_when")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_data_centre_display()})"

    def is_running(self, now: dt.datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def opens(self, entry: str) -> bool:
        return entry in (self.entries or [])


class ConnectivityRegistration(models.Model):
    """A firm registered for an event by one of its DAs (withdrawing deletes it)."""

    event = models.ForeignKey(
        ConnectivityEvent,
        on_delete=models.CASCADE,
        related_name="registrations",
        verbose_name=_("event"),
    )
    participant = models.ForeignKey(
        Participant,
        on_delete=models.CASCADE,
        related_name="connectivity_registrations",
        verbose_name=_("participant"),
    )
    registered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("registered by"),
    )
    registered_at = models.DateTimeField(_("registered at"))

    class Meta:
        ordering = ["event", "participant"]
        verbose_name = _("connectivity-test registration")
        verbose_name_plural = _("connectivity-test registrations")
        constraints = [
            models.UniqueConstraint(
                fields=["event", "participant"], name="connectivity_registration_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.participant_id} for event {self.event_id}"


class CheckMethod(models.TextChoices):
    SMARTCARD = "smartcard", _("Smartcard")
    OTP = "otp", _("OTP")


class ConnectivityCheck(models.Model):
    """A completed check: a user of a registered firm logged in during a session, once per
    user, session, method and scope."""

    session = models.ForeignKey(
        ConnectivitySession,
        on_delete=models.CASCADE,
        related_name="checks",
        verbose_name=_("session"),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("user"),
    )
    participant = models.ForeignKey(
        Participant, on_delete=models.CASCADE, related_name="+", verbose_name=_("participant")
    )
    method = models.CharField(_("method"), max_length=16, choices=CheckMethod.choices)
    scope = models.CharField(_("scope"), max_length=16)
    at = models.DateTimeField(_("completed at"))

    class Meta:
        ordering = ["session", "participant", "user", "at"]
        verbose_name = _("connectivity check")
        verbose_name_plural = _("connectivity checks")
        constraints = [
            models.UniqueConstraint(
                fields=["session", "user", "method", "scope"], name="connectivity_check_once"
            )
        ]
        indexes = [
            models.Index(fields=["participant", "session"], name="connectivity_check_firm"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.method} {self.scope} in session {self.session_id}"
