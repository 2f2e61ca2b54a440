"""The append-only audit trail of every login and every change."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F
from django.db.models.functions import Lower
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
    MILESTONE_RESCHEDULED = "milestone_rescheduled", _("Milestone rescheduled")
    MILESTONE_APPROVED = "milestone_approved", _("Milestone approved")
    MILESTONE_APPROVAL_REQUIRED = (
        "milestone_approval_required",
        _("Milestone's regulatory approval requirement changed"),
    )
    MILESTONE_CARRIED_OUT = "milestone_carried_out", _("Milestone carried out")
    REMINDER_SENT = "reminder_sent", _("Reminder sent to the firm's DAs")
    PASSWORD_CHANGED = "password_changed", _("Password changed")
    OTP_CHANNEL_CHANGED = "otp_channel_changed", _("OTP channel changed")
    BACKUP_CODES_RENEWED = "backup_codes_renewed", _("New backup codes issued")
    EVENT_PUBLISHED = "event_published", _("Connectivity test published")
    EVENT_RESCHEDULED = "event_rescheduled", _("Connectivity test rescheduled")
    EVENT_REGISTERED = "event_registered", _("Firm registered for a connectivity test")
    EVENT_WITHDRAWN = "event_withdrawn", _("Firm withdrawn from a connectivity test")
    CONNECTIVITY_CHECKED = "connectivity_checked", _("Connectivity check completed")
    ACCOUNT_RESTORED = "account_restored", _("Account changes of a test session undone")
    SESSION_CHANGES_UNDONE = "session_changes_undone", _("Test session's account changes undone")


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
        # The composite indexes below lead with this column: no index of its own.
        db_index=False,
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("acting user"),
        db_index=False,
    )
    participant = models.ForeignKey(
        "participants.Participant",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("participant"),
        db_index=False,
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
        # The DA's audit trail reads newest first by (at, id), a page at a time from a cursor
        # (common.keyset): each filter it offers has an index that ends in those keys, so that
        # a page reads a page's worth of one index at any depth, whatever the firm's size.
        indexes = [
            models.Index(fields=["participant", "-at", "-id"], name="audit_firm_at_idx"),
            models.Index(
                fields=["participant", "action", "-at", "-id"], name="audit_firm_action_at_idx"
            ),
            models.Index(fields=["user", "-at", "-id"], name="audit_user_at_id_idx"),
            models.Index(fields=["actor", "-at", "-id"], name="audit_actor_at_idx"),
            # Failed logins of an ID that names nobody: found by the ID as typed, any case.
            models.Index(
                F("participant"),
                Lower("login_id"),
                F("at").desc(),
                F("id").desc(),
                name="audit_firm_login_at_idx",
            ),
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


class ExportStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Being written")
    DONE = "done", _("Ready")
    FAILED = "failed", _("Failed")


class AuditExport(models.Model):
    """A firm's audit trail as a CSV file, written in the background when too large to stream."""

    participant = models.ForeignKey(
        "participants.Participant",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("participant"),
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("requested by"),
    )
    # The audit page's filters as the DA chose them (login ID, action, dates as ISO text).
    filters = models.JSONField(_("filters"), default=dict, blank=True)
    # The labels' language: the DA's, when they asked.
    language = models.CharField(_("language"), max_length=16, blank=True)
    # The export covers the rows up to this one: the newest when it was asked for.
    up_to_id = models.BigIntegerField(_("up to audit row"), default=0)
    status = models.CharField(
        _("status"), max_length=8, choices=ExportStatus.choices, default=ExportStatus.QUEUED
    )
    rows_written = models.PositiveBigIntegerField(_("rows written"), default=0)
    # At least this many: counted up to a cap when it was asked for.
    rows_expected = models.PositiveBigIntegerField(_("rows expected"), default=0)
    file_name = models.CharField(_("file name"), max_length=128, blank=True)
    created_at = models.DateTimeField(_("asked for at"), default=timezone.now)
    updated_at = models.DateTimeField(_("last progress at"), auto_now=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    error = models.CharField(_("error"), max_length=255, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("audit trail export")
        verbose_name_plural = _("audit trail exports")
        indexes = [
            models.Index(fields=["participant", "-created_at"], name="audit_export_firm_idx"),
        ]

    def __str__(self) -> str:
        return f"audit export {self.pk} ({self.status})"

    @property
    def is_done(self) -> bool:
        return self.status == ExportStatus.DONE

    @property
    def is_pending(self) -> bool:
        return self.status in (ExportStatus.QUEUED, ExportStatus.RUNNING)

    @property
    def progress_percent(self) -> int:
        if self.is_done:
            return 100
        if not self.rows_expected:
            return 0
        return min(99, self.rows_written * 100 // self.rows_expected)
