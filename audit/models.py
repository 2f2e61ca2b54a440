"""The append-only audit trail of every login and every change."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from participants.models import LoginMethod, Scope


class AuditAction(models.TextChoices):
    LOGIN = "login", _("Login")
    LOGOUT = "logout", _("Logout")
    SESSION_EXPIRED = "session_expired", _("Session expired")
    OTP_CHALLENGE = "otp_challenge", _("Email code sent")
    ACTIVATION_SENT = "activation_sent", _("Activation email sent")
    ACTIVATION_OPENED = "activation_opened", _("Activation link opened")
    SETUP_PASSWORD = "setup_password", _("Password chosen in setup")
    SETUP_CHANNEL = "setup_channel", _("OTP channel chosen in setup")
    SETUP_COMPLETED = "setup_completed", _("2FA setup completed")
    REPORT_DOWNLOAD = "report_download", _("Report downloaded")
    REQUEST_MADE = "request_made", _("Request made")
    REQUEST_APPROVED = "request_approved", _("Request approved")
    REQUEST_REJECTED = "request_rejected", _("Request rejected")
    REQUEST_OUTDATED = "request_outdated", _("Request outdated")
    EMAIL_REGISTERED = "email_registered", _("Designated email registered")
    USER_CREATED = "user_created", _("User created")
    USER_SUSPENDED = "user_suspended", _("User suspended")
    USER_RESTORED = "user_restored", _("User restored")
    OTP_RESET = "otp_reset", _("OTP device reset")
    BULK_UPLOADED = "bulk_uploaded", _("Bulk email file uploaded")
    BULK_APPLIED = "bulk_applied", _("Bulk email registration applied")


class Outcome(models.TextChoices):
    SUCCESS = "success", _("Success")
    FAILURE = "failure", _("Failure")


class Refusal(models.TextChoices):
    """Why a login step was refused, as the audit row's reason records it."""

    BAD_CREDENTIALS = "bad_credentials", _("Wrong login ID or password")
    LOCKED = "locked", _("Account waiting after failed logins")
    BAD_CODE = "bad_code", _("Wrong code")
    THROTTLED = "throttled", _("Too many wrong codes")
    CARD_FOREIGN = "card_foreign", _("Smartcard of another user")
    PHASE_CLOSED = "phase_closed", _("Login not open in this phase")


class AppendOnlyError(Exception):
    """Raised when code tries to change or delete an audit row."""


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError("Audit rows cannot be changed")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit rows cannot be deleted")

    def for_participant(self, participant: models.Model) -> AuditEventQuerySet:
        return self.filter(participant=participant)


class AuditEvent(models.Model):
    """One audited event: who, which firm, what, through which scope and method, from where."""

    at = models.DateTimeField(_("time"), default=timezone.now, db_index=True)
    action = models.CharField(_("action"), max_length=32, choices=AuditAction.choices)
    outcome = models.CharField(_("outcome"), max_length=8, choices=Outcome.choices)
    # The login ID as typed or as it was, so that a failure for an unknown ID is recorded too.
    login_id = models.CharField(_("login ID"), max_length=64, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("user"),
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("acting user"),
    )
    participant = models.ForeignKey(
        "participants.Participant",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("participant"),
    )
    scope = models.CharField(_("scope"), max_length=16, blank=True)
    method = models.CharField(_("method"), max_length=16, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    reason = models.CharField(_("reason"), max_length=64, blank=True)
    detail = models.JSONField(_("detail"), default=dict, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = _("audit event")
        verbose_name_plural = _("audit events")
        indexes = [
            models.Index(fields=["participant", "-at"], name="audit_participant_at_idx"),
            models.Index(fields=["user", "-at"], name="audit_user_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.action} {self.outcome} {self.login_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise AppendOnlyError("Audit rows cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("Audit rows cannot be deleted")

    # The scope and the method keep their codes unconstrained (an old row keeps what it
    # recorded), so their labels come from the choices here rather than from the fields.
    def get_method_display(self) -> str:
        return LoginMethod.label_of(self.method)

    def get_reason_display(self) -> str:
        # A refusal is a code; a checker's reason for a rejection is free text, shown as typed.
        return str(Refusal(self.reason).label) if self.reason in Refusal.values else self.reason

    def get_scope_display(self) -> str:
        return str(Scope(self.scope).label) if self.scope in Scope.values else self.scope
