"""The emails authn sends through the outbox: OTP codes, activation links, and the notice
that a user changed their own credentials.

The code or link is issued by the relay when it first sends the email (`prepare`), derived
from the outbox row (`outbox.composers.row_secret`): nothing secret is stored in clear or
passes through the broker, and a resend after a crash carries the same code or link.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from typing import Any

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from authn.models import EmailOTPDevice
from outbox.composers import Composer, NothingToSend, Outcomes, register, row_secret, row_subject
from outbox.models import OutboxEmail
from outbox.services import email_queue
from participants.models import User

OTP_CODE = "otp-code"
ACTIVATION = "activation"
CREDENTIALS_CHANGED = "credentials-changed"


class CredentialChange(models.TextChoices):
    """What a user changed of their own credentials (authn.account), as the notice says."""

    PASSWORD = "password"
    OTP_CHANNEL = "otp_channel"
    BACKUP_CODES = "backup_codes"


def _otp_code(row: OutboxEmail) -> str:
    return f"{int.from_bytes(row_secret(row, OTP_CODE)[:8], 'big') % 10**6:06d}"


def _otp_validity() -> dt.timedelta:
    return dt.timedelta(seconds=settings.OTP_EMAIL_TOKEN_VALIDITY)


def _otp_device(row: OutboxEmail, *, lock: bool = False) -> EmailOTPDevice:
    devices = EmailOTPDevice.objects.select_related("user")
    if lock:
        devices = devices.select_for_update(of=("self",))
    return row_subject(
        row, devices, param="device_id", gone="The email OTP device no longer exists"
    )


def _otp_prepare(row: OutboxEmail) -> None:
    _otp_device(row, lock=True).issue_token(_otp_code(row))


def _otp_context(row: OutboxEmail) -> dict[str, Any]:
    device = _otp_device(row)
    # The code is valid from when it was issued: say how long it still is.
    issued = row.prepared_at or timezone.now()
    left = issued + _otp_validity() - timezone.now()
    return {
        "code": _otp_code(row),
        "minutes": max(1, math.ceil(left.total_seconds() / 60)),
        "user": device.user,
    }


def activation_token(row: OutboxEmail) -> str:
    """Return the activation link's token that this email carries."""
    return base64.urlsafe_b64encode(row_secret(row, ACTIVATION)).rstrip(b"=").decode()


def _activation_users(rows: list[OutboxEmail]) -> dict[int, User | NothingToSend]:
    """Return, per row, the user its activation email is for, read in one statement, or
    why there is nothing to send."""
    ids = {row.params.get("user_id") for row in rows}
    users = User.objects.select_related("participant__terminal").in_bulk(
        [pk for pk in ids if isinstance(pk, int)]
    )
    found: dict[int, User | NothingToSend] = {}
    for row in rows:
        user = users.get(row.params.get("user_id"))
        if user is None:
            found[row.pk] = NothingToSend("The user no longer exists")
        elif not user.is_active:
            found[row.pk] = NothingToSend("The user is suspended")
        else:
            found[row.pk] = user
    return found


def _activation_prepare_many(rows: list[OutboxEmail]) -> Outcomes:
    # authn.activation queues this email kind, so it imports this module: import it late.
    from authn.activation import activation_issue_many

    users = _activation_users(rows)
    activation_issue_many(
        [(user, activation_token(row)) for row in rows if isinstance(user := users[row.pk], User)]
    )
    return {pk: gone for pk, gone in users.items() if isinstance(gone, NothingToSend)}


def _activation_contexts(rows: list[OutboxEmail]) -> Outcomes:
    # The token travels in the fragment, which browsers do not send: it never reaches an
    # access log. The page reads it and posts it.
    page = settings.SITE_URL + reverse("authn:activate") + "#"
    users = _activation_users(rows)
    contexts: Outcomes = {}
    for row in rows:
        user = users[row.pk]
        contexts[row.pk] = (
            user
            if isinstance(user, NothingToSend)
            else {
                "login_id": user.login_id,
                "link": page + activation_token(row),
                "hours": settings.ACTIVATION_LINK_HOURS,
                "terminal": user.participant.terminal if user.participant else None,
            }
        )
    return contexts


def credentials_changed_notify(
    *, user: User, change: str, at: dt.datetime, detail: dict[str, str] | None = None
) -> None:
    """Tell the user at their designated address what of their credentials changed, and when.

    The parameters say which change it was, never its secret: no password, no code.
    """
    email_queue(
        kind=CREDENTIALS_CHANGED,
        to=user.email,
        params={"user_id": user.pk, "change": change, "at": at.isoformat(), **(detail or {})},
    )


def _credentials_changed_context(row: OutboxEmail) -> dict[str, Any]:
    user = row_subject(
        row,
        User.objects.select_related("participant__terminal"),
        param="user_id",
        gone="The user no longer exists",
    )
    at = parse_datetime(str(row.params.get("at", ""))) or row.created_at
    return {
        "login_id": user.login_id,
        "change": row.params.get("change", ""),
        "old_channel": row.params.get("from", ""),
        "new_channel": row.params.get("to", ""),
        "at": at,
        "terminal": user.participant.terminal if user.participant else None,
    }


def register_emails() -> None:
    register(
        OTP_CODE,
        Composer(
            template="otp-code",
            context=_otp_context,
            prepare=_otp_prepare,
            lifetime=_otp_validity,
            retryable=False,
        ),
    )
    register(
        ACTIVATION,
        Composer(
            template="activation",
            contexts=_activation_contexts,
            prepare_many=_activation_prepare_many,
            merge=("login_id", "link"),
        ),
    )
    register(
        CREDENTIALS_CHANGED,
        Composer(template="credentials-changed", context=_credentials_changed_context),
    )
