"""Maker-checker requests and bulk email registrations: a DA's changes to the firm's users.

The tables keep the names they had in `participants` (dms/migrations/0001 moved the
models here without touching the data).
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from participants.models import Participant, User


class RequestKind(models.TextChoices):
    EMAIL_REGISTER = "email_register", _("Register or change designated email")
    USER_CREATE = "user_create", _("Create a user")
    USER_SUSPEND = "user_suspend", _("Suspend a user")
    USER_RESTORE = "user_restore", _("Restore a user")
    OTP_RESET = "otp_reset", _("Reset the OTP device")
    ACTIVATION_RESEND = "activation_resend", _("Resend the activation email")
    BULK_EMAIL = "bulk_email", _("Bulk email registration")


class RequestStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    OUTDATED = "outdated", _("Outdated")


class ChangeRequestQuerySet(models.QuerySet["ChangeRequest"]):
    def for_participant(self, participant: Participant) -> ChangeRequestQuerySet:
        return self.filter(participant=participant)


class ChangeRequest(models.Model):
    """A DA's change to the firm's users, which takes effect only when a checker approves it."""

    participant = models.ForeignKey(
        Participant,
        on_delete=models.PROTECT,
        related_name="requests",
        verbose_name=_("participant"),
    )
    kind = models.CharField(_("kind"), max_length=24, choices=RequestKind.choices)
    status = models.CharField(
        _("status"), max_length=12, choices=RequestStatus.choices, default=RequestStatus.PENDING
    )
    target = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="change_requests",
        verbose_name=_("user"),
    )
    # The target's version when the request was made; a different one at approval
    # means somebody changed the user meanwhile, and the request is outdated.
    target_version = models.PositiveIntegerField(_("user version"), null=True, blank=True)
    payload = models.JSONField(_("details"), default=dict, blank=True)
    maker = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", verbose_name=_("maker")
    )
    created_at = models.DateTimeField(_("made at"), default=timezone.now)
    checker = models.ForeignKey(
        User,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("checker"),
    )
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    reason = models.CharField(_("reason"), max_length=500, blank=True)

    objects = ChangeRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        # The table keeps the name it had before the model moved here from participants.
        db_table = "participants_changerequest"
        verbose_name = _("change request")
        verbose_name_plural = _("change requests")
        indexes = [
            # The requests list, newest first a page at a time (keyset on created_at, id):
            # each status tab, and all of them.
            models.Index(
                fields=["participant", "status", "-created_at", "-id"],
                name="request_firm_status_key_idx",
            ),
            models.Index(fields=["participant", "-created_at", "-id"], name="request_firm_key_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["target", "kind"],
                condition=Q(status="pending"),
                name="request_one_pending_per_user_and_kind",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.get_status_display()})"

    @property
    def is_pending(self) -> bool:
        return self.status == RequestStatus.PENDING


class BulkStatus(models.TextChoices):
    VALIDATING = "validating", _("Checking the file")
    READY = "ready", _("Checked: ready to submit")
    SUBMITTED = "submitted", _("Waiting for a checker")
    APPLIED = "applied", _("Applied")
    REJECTED = "rejected", _("Rejected")
    FAILED = "failed", _("Could not be applied")


class BulkOutcome(models.TextChoices):
    REGISTER = "register", _("Will be registered")
    CHANGE = "change", _("Will be changed")
    UNCHANGED = "unchanged", _("Unchanged")
    REFUSED = "refused", _("Refused")


class BulkReason(models.TextChoices):
    UNKNOWN_LOGIN_ID = "unknown_login_id", _("Unknown login ID")
    INVALID_EMAIL = "invalid_email", _("Invalid email address")
    EMAIL_TOO_LONG = "email_too_long", _("Email address longer than 254 characters")
    DUPLICATE = "duplicate", _("Login ID appears more than once in the file")
    OWN_ROW = "own_row", _("This row is you: another DA must register your email")
    DA_NOT_OPEN = "da_not_open", _("DAs' email registration has not opened yet")
    TOO_MANY_ROWS = "too_many_rows", _("Too many rows in the file")
    MALFORMED = "malformed", _("Expected a login ID and an email")


class BulkEmailBatch(models.Model):
    """A CSV of designated emails uploaded by a maker, checked row by row, applied all at once."""

    participant = models.ForeignKey(
        Participant,
        on_delete=models.PROTECT,
        related_name="bulk_batches",
        verbose_name=_("participant"),
    )
    maker = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="+", verbose_name=_("maker")
    )
    filename = models.CharField(_("file name"), max_length=255)
    # The upload itself, kept in the database so that a worker on another host can read it.
    source = models.BinaryField(_("file"))
    created_at = models.DateTimeField(_("uploaded at"), default=timezone.now)
    status = models.CharField(
        _("status"), max_length=12, choices=BulkStatus.choices, default=BulkStatus.VALIDATING
    )
    error = models.CharField(_("error"), max_length=500, blank=True)
    total_rows = models.PositiveIntegerField(_("rows"), default=0)
    processed_rows = models.PositiveIntegerField(_("rows checked"), default=0)
    register_count = models.PositiveIntegerField(default=0)
    change_count = models.PositiveIntegerField(default=0)
    unchanged_count = models.PositiveIntegerField(default=0)
    refused_count = models.PositiveIntegerField(default=0)
    change_request = models.OneToOneField(
        "ChangeRequest",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="bulk_batch",
        verbose_name=_("request"),
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        db_table = "participants_bulkemailbatch"
        verbose_name = _("bulk email registration")
        verbose_name_plural = _("bulk email registrations")

    def __str__(self) -> str:
        return f"{self.filename} ({self.get_status_display()})"

    @property
    def progress_percent(self) -> int:
        if not self.total_rows:
            return 0 if self.status == BulkStatus.VALIDATING else 100
        return min(100, self.processed_rows * 100 // self.total_rows)


class BulkEmailRow(models.Model):
    batch = models.ForeignKey(BulkEmailBatch, on_delete=models.CASCADE, related_name="rows")
    line = models.PositiveIntegerField(_("line"))
    # As they are in the file, whole: a value that does not fit is refused, never cut.
    login_id = models.TextField(_("login ID"), blank=True)
    email = models.TextField(_("email"), blank=True)
    outcome = models.CharField(_("outcome"), max_length=12, choices=BulkOutcome.choices)
    reason = models.CharField(_("reason"), max_length=24, choices=BulkReason.choices, blank=True)
    user = models.ForeignKey(
        User, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    user_version = models.PositiveIntegerField(null=True, blank=True)
    previous_email = models.CharField(max_length=254, blank=True)

    class Meta:
        db_table = "participants_bulkemailrow"
        ordering = ["line"]
        indexes = [
            models.Index(fields=["batch", "outcome"], name="bulkrow_batch_outcome_idx"),
            models.Index(fields=["batch", "user"], name="bulkrow_batch_user_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.line}: {self.login_id} {self.outcome}"
