"""OTP devices with hashed secrets, activation links and the per-account login throttle."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_otp.models import CooldownMixin, Device, ThrottlingMixin, TimestampMixin

from authn.secrets import (
    backup_code,
    normalize_backup_code,
    numeric_code,
    secret_hash,
    secret_matches,
)


class EmailOTPDevice(TimestampMixin, CooldownMixin, ThrottlingMixin, Device):
    """An OTP channel that emails a 6-digit code to the user's designated address.

    Unlike django-otp's EmailDevice the code is stored only as a keyed hash, and
    it is generated and mailed by a task, so it never transits the broker.
    """

    token_hash = models.CharField(_("code hash"), max_length=64, blank=True)
    valid_until = models.DateTimeField(_("code valid until"), null=True, blank=True)

    class Meta(Device.Meta):
        verbose_name = _("email OTP device")
        verbose_name_plural = _("email OTP devices")

    def issue_token(self, token: str | None = None) -> str:
        """Set the code (a fresh random one unless given), valid for OTP_EMAIL_TOKEN_VALIDITY
        seconds, and return it."""
        token = token if token is not None else numeric_code(6)
        self.token_hash = secret_hash("email-otp", token)
        self.valid_until = timezone.now() + dt.timedelta(seconds=settings.OTP_EMAIL_TOKEN_VALIDITY)
        self.save(update_fields=["token_hash", "valid_until"])
        return token

    def verify_token(self, token: Any) -> bool:
        allowed, _data = self.verify_is_allowed()
        if not allowed:
            return False
        token = str(token).strip()
        now = timezone.now()
        if (
            self.valid_until is not None
            and now < self.valid_until
            and secret_matches("email-otp", token, self.token_hash)
        ):
            # Single use: the code is gone the moment it is accepted.
            self.token_hash = ""
            self.valid_until = None
            self.throttle_reset(commit=False)
            self.cooldown_reset(commit=False)
            self.set_last_used_timestamp(commit=False)
            self.save()
            return True
        self.throttle_increment(commit=True)
        return False

    def get_cooldown_duration(self) -> int:
        return int(settings.OTP_EMAIL_COOLDOWN_DURATION)

    def get_throttle_factor(self) -> int:
        return int(settings.OTP_EMAIL_THROTTLE_FACTOR)


class BackupCodeDevice(ThrottlingMixin, Device):
    """The user's single-use backup codes, stored hashed."""

    class Meta(Device.Meta):
        verbose_name = _("backup code set")
        verbose_name_plural = _("backup code sets")

    def generate_codes(self, count: int) -> list[str]:
        """Replace the codes with `count` fresh ones and return them in clear, once."""
        self.codes.all().delete()
        codes = [backup_code() for _ in range(count)]
        BackupCode.objects.bulk_create(
            BackupCode(device=self, code_hash=secret_hash("backup-code", code)) for code in codes
        )
        return codes

    def verify_token(self, token: Any) -> bool:
        allowed, _data = self.verify_is_allowed()
        if not allowed:
            return False
        code_hash = secret_hash("backup-code", normalize_backup_code(str(token)))
        deleted, _rows = self.codes.filter(code_hash=code_hash).delete()
        if deleted:
            self.throttle_reset(commit=True)
            return True
        self.throttle_increment(commit=True)
        return False

    def get_throttle_factor(self) -> int:
        return int(getattr(settings, "OTP_BACKUP_THROTTLE_FACTOR", 1))


class BackupCode(models.Model):
    device = models.ForeignKey(
        BackupCodeDevice,
        on_delete=models.CASCADE,
        related_name="codes",
        verbose_name=_("backup code set"),
    )
    code_hash = models.CharField(_("code hash"), max_length=64)

    class Meta:
        verbose_name = _("backup code")
        verbose_name_plural = _("backup codes")
        constraints = [
            models.UniqueConstraint(fields=["device", "code_hash"], name="backup_code_unique")
        ]

    def __str__(self) -> str:
        return f"backup code of {self.device.user_id}"


class ActivationTokenQuerySet(models.QuerySet["ActivationToken"]):
    def open(self, now: dt.datetime) -> ActivationTokenQuerySet:
        return self.filter(used_at__isnull=True, revoked_at__isnull=True, expires_at__gt=now)


class ActivationToken(models.Model):
    """A single-use, expiring link that lets a user set up 2FA; only its hash is kept."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="activation_tokens",
        verbose_name=_("user"),
    )
    token_hash = models.CharField(_("link hash"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("sent at"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires at"))
    used_at = models.DateTimeField(_("used at"), null=True, blank=True)
    revoked_at = models.DateTimeField(
        _("revoked at"),
        null=True,
        blank=True,
        help_text=_("Set when a newer link replaced this one."),
    )

    objects = ActivationTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("activation link")
        verbose_name_plural = _("activation links")

    def __str__(self) -> str:
        return f"{self.user} {self.created_at:%Y-%m-%d %H:%M}"

    def is_open(self, now: dt.datetime) -> bool:
        return self.used_at is None and self.revoked_at is None and now < self.expires_at


class LoginThrottle(models.Model):
    """Consecutive password failures of one login ID, whether or not the ID exists."""

    key = models.CharField(_("login ID"), max_length=64, unique=True)
    failures = models.PositiveIntegerField(_("failed logins"), default=0)
    last_failure_at = models.DateTimeField(_("last failure at"), null=True, blank=True)
    locked_until = models.DateTimeField(_("waiting until"), null=True, blank=True)

    class Meta:
        verbose_name = _("login throttle")
        verbose_name_plural = _("login throttles")

    def __str__(self) -> str:
        return f"{self.key}: {self.failures}"

    def is_locked(self, now: dt.datetime) -> bool:
        return self.locked_until is not None and now < self.locked_until

    def record_failure(self, now: dt.datetime) -> None:
        self.failures += 1
        self.last_failure_at = now
        over = self.failures - settings.LOGIN_FREE_FAILURES
        if over >= 0:
            delay = min(
                settings.LOGIN_LOCKOUT_BASE_SECONDS * (2 ** min(over, 20)),
                settings.LOGIN_LOCKOUT_MAX_SECONDS,
            )
            self.locked_until = now + dt.timedelta(seconds=delay)


class AccountSnapshot(models.Model):
    """An account's credentials as they were when a connectivity-test session that is not
    carried forward first changed them: what the session's undo puts back.

    Taken once per user and session, before the first change (a password, an OTP device,
    backup codes, 2FA initiation); accounts not changed in the session have none.
    """

    session = models.ForeignKey(
        "migration.ConnectivitySession",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("session"),
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("user"),
    )
    taken_at = models.DateTimeField(_("taken at"), default=timezone.now)
    password = models.CharField(_("password hash"), max_length=128)
    two_factor_ready_at = models.DateTimeField(null=True, blank=True)
    # The user's device rows, field by field, as the undo re-creates them.
    devices = models.JSONField(default=dict, encoder=DjangoJSONEncoder)
    restored_at = models.DateTimeField(_("restored at"), null=True, blank=True)

    class Meta:
        verbose_name = _("account snapshot")
        verbose_name_plural = _("account snapshots")
        constraints = [
            models.UniqueConstraint(fields=["session", "user"], name="account_snapshot_once")
        ]

    def __str__(self) -> str:
        return f"snapshot of {self.user_id} for session {self.session_id}"
