"""Every email the portal sends, written in the transaction of the change that causes it."""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class EmailStatus(models.TextChoices):
    PENDING = "pending", _("Waiting to be sent")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


class OutboxEmailQuerySet(models.QuerySet["OutboxEmail"]):
    def due(self, now: dt.datetime) -> OutboxEmailQuerySet:
        """Return the emails waiting to be sent whose next attempt has come."""
        return self.filter(status=EmailStatus.PENDING, next_attempt_at__lte=now)


class OutboxEmail(models.Model):
    """One email to one address, relayed by the workers until sent, failed or cancelled.

    The row holds no secret: a code or a link is issued when the email is first sent (see
    `outbox.relay`), from the row's own identity, so a second send carries the same one.
    """

    kind = models.CharField(_("kind"), max_length=32)
    to = models.CharField(_("to"), max_length=254)
    # What the kind's composer needs to write the email: ids and plain values, never a secret.
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    status = models.CharField(
        _("status"), max_length=12, choices=EmailStatus.choices, default=EmailStatus.PENDING
    )
    created_at = models.DateTimeField(_("queued at"), default=timezone.now)
    next_attempt_at = models.DateTimeField(_("next attempt at"), default=timezone.now)
    # After this the email is no longer worth sending (an OTP code expires within minutes).
    deadline = models.DateTimeField(_("deadline"))
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    # When the kind's one-time preparation (issuing the code or link) was committed.
    prepared_at = models.DateTimeField(_("prepared at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    last_error = models.CharField(_("last error"), max_length=500, blank=True)

    objects = OutboxEmailQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("outbox email")
        verbose_name_plural = _("outbox emails")
        indexes = [
            # The relay's claim: pending rows, the one that expires soonest first (an OTP
            # code's email before the thousands of activations queued ahead of it).
            models.Index(
                fields=["deadline", "id"],
                condition=Q(status="pending"),
                name="outbox_soonest_idx",
            ),
            models.Index(fields=["status", "-created_at"], name="outbox_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.to} ({self.get_status_display()})"

    def is_past_deadline(self, now: dt.datetime) -> bool:
        return now >= self.deadline
