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
