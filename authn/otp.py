"""One-time passwords: the user's channel, emailed codes, and the OTP step of a login."""

from __future__ import annotations

import dataclasses
import datetime as dt

from django.db import transaction
from django.http import HttpRequest
from django_otp.models import Device
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditAction, Outcome
from audit.services import audit_record
from authn import sessions
from authn.credentials import Refusal
from authn.emails import OTP_CODE
from authn.login import login_complete
from authn.models import BackupCodeDevice, EmailOTPDevice
from outbox.services import email_queue, emails_cancel
from participants.models import User


def primary_device(user: User) -> Device | None:
    """Return the user's confirmed OTP channel: their authenticator app or their email."""
    totp = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if totp is not None:
        return totp
    return EmailOTPDevice.objects.filter(user=user, confirmed=True).first()


@dataclasses.dataclass(frozen=True)
class ChallengeResult:
    sent: bool
    next_allowed_at: dt.datetime | None = None


@transaction.atomic
def email_otp_challenge(
    *, device: EmailOTPDevice, request: HttpRequest | None, scope: str = ""
) -> ChallengeResult:
    """Have a fresh code emailed to the device's user, unless the resend cooldown is running."""
    device = (
        EmailOTPDevice.objects.select_for_update(of=("self",))
        .select_related("user")
        .get(pk=device.pk)
    )
    allowed, data = device.generate_is_allowed()
    if not allowed:
        return ChallengeResult(sent=False, next_allowed_at=(data or {}).get("next_generation_at"))
    device.cooldown_set(commit=False)
    device.save(update_fields=["last_generated_timestamp"])
    audit_record(
        action=AuditAction.OTP_CHALLENGE,
        outcome=Outcome.SUCCESS,
        request=request,
        user=device.user,
        scope=scope,
        method=sessions.Method.OTP,
    )
    # A newer code replaces the one an email still waiting would carry.
    emails_cancel(kind=OTP_CODE, device_id=device.pk)
    email_queue(kind=OTP_CODE, to=device.user.email, params={"device_id": device.pk})
    return ChallengeResult(sent=True)


def _is_numeric_code(token: str) -> bool:
    return token.isdigit() and len(token) in (6, 8)


@dataclasses.dataclass(frozen=True)
class OtpResult:
    device: Device | None
    refusal: str | None = None
    locked_until: dt.datetime | None = None

    @property
    def ok(self) -> bool:
        return self.refusal is None


@transaction.atomic(savepoint=False)
def otp_verify(*, user: User, token: str) -> OtpResult:
    """Verify a code from the user's OTP channel, or a backup code, consuming it.

    The device row is locked while it is checked so that two requests racing
    with one code cannot both succeed.
    """
    token = token.strip().replace(" ", "")
    device: Device | None
    if _is_numeric_code(token):
        device = (
            TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True).first()
            or EmailOTPDevice.objects.select_for_update().filter(user=user, confirmed=True).first()
        )
    else:
        device = (
            BackupCodeDevice.objects.select_for_update().filter(user=user, confirmed=True).first()
        )
    if device is None:
        return OtpResult(device=None, refusal=Refusal.BAD_CODE)
    allowed, data = device.verify_is_allowed()
    if not allowed:
        return OtpResult(
            device=None, refusal=Refusal.THROTTLED, locked_until=(data or {}).get("locked_until")
        )
    if device.verify_token(token):
        return OtpResult(device=device)
    return OtpResult(device=None, refusal=Refusal.BAD_CODE)


@transaction.atomic
def otp_login(
    request: HttpRequest, *, user: User, token: str, scope: str, terminal: str | None
) -> OtpResult:
    """Check the code and log the user in, in one transaction: the code is used up only
    by a login that is recorded, and a failure is audited."""
    result = otp_verify(user=user, token=token)
    if result.ok and result.device is not None:
        method = (
            sessions.Method.BACKUP_CODE
            if isinstance(result.device, BackupCodeDevice)
            else sessions.Method.OTP
        )
        login_complete(
            request,
            user=user,
            scopes=[scope],
            method=method,
            terminal=terminal,
            device=result.device,
        )
    else:
        audit_record(
            action=AuditAction.LOGIN,
            outcome=Outcome.FAILURE,
            request=request,
            user=user,
            scope=scope,
            method=sessions.Method.OTP,
            reason=result.refusal or "",
        )
    return result
