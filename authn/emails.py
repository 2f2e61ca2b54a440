"""The emails authn sends through the outbox: OTP codes and activation links.

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
from django.urls import reverse
from django.utils import timezone

from authn.models import EmailOTPDevice
from outbox.composers import Composer, NothingToSend, register, row_secret
from outbox.models import OutboxEmail
from participants.models import User

OTP_CODE = "otp-code"
ACTIVATION = "activation"


def _otp_code(row: OutboxEmail) -> str:
    return f"{int.from_bytes(row_secret(row, OTP_CODE)[:8], 'big') % 10**6:06d}"


def _otp_validity() -> dt.timedelta:
    return dt.timedelta(seconds=settings.OTP_EMAIL_TOKEN_VALIDITY)


def _otp_device(row: OutboxEmail, *, lock: bool = False) -> EmailOTPDevice:
    devices = EmailOTPDevice.objects.select_related("user")
    if lock:
        devices = devices.select_for_update(of=("self",))
    device = devices.filter(pk=row.params.get("device_id")).first()
    if device is None:
        raise NothingToSend("The email OTP device no longer exists")
    return device


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


def _activation_user(row: OutboxEmail) -> User:
    user = (
        User.objects.select_related("participant__terminal")
        .filter(pk=row.params.get("user_id"))
        .first()
    )
    if user is None:
        raise NothingToSend("The user no longer exists")
    if not user.is_active:
        raise NothingToSend("The user is suspended")
    return user


def _activation_prepare(row: OutboxEmail) -> None:
    # authn.activation queues this email kind, so it imports this module: import it late.
    from authn.activation import activation_issue

    activation_issue(user=_activation_user(row), token=activation_token(row))


def _activation_context(row: OutboxEmail) -> dict[str, Any]:
    user = _activation_user(row)
    # The token travels in the fragment, which browsers do not send: it never reaches an
    # access log. The page reads it and posts it.
    link = settings.SITE_URL + reverse("authn:activate") + "#" + activation_token(row)
    return {
        "user": user,
        "link": link,
        "hours": settings.ACTIVATION_LINK_HOURS,
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
        Composer(template="activation", context=_activation_context, prepare=_activation_prepare),
    )
