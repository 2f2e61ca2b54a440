"""Each terminal's migration programme and the phase it is in."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from participants.models import Terminal


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
    """The migration programme of one terminal: its current phase, set by staff for now."""

    terminal = models.OneToOneField(
        Terminal, on_delete=models.PROTECT, related_name="programme", verbose_name=_("terminal")
    )
    phase = models.CharField(
        _("phase"), max_length=24, choices=Phase.choices, default=Phase.PREPARATION
    )
    da_email_registration_open = models.BooleanField(
        _("DAs' email registration open"), default=False
    )
    planned_launch_at = models.DateTimeField(
        _("planned 2FA launch"),
        null=True,
        blank=True,
        help_text=_("Shown to users whose 2FA setup has not opened yet."),
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
