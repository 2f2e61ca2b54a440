"""One-time passwords: the user's channel, emailed codes, and the OTP step of a login."""

from __future__ import annotations

import dataclasses
import datetime as dt

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django_otp.models import Device
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditAction, Outcome
from audit.services import audit_record
from authn import rehearsal, sessions
from authn.credentials import Refusal
from authn.devices import primary_channel as primary_channel
from authn.emails import OTP_CODE
from authn.login import PendingLogin, login_complete
from authn.models import BackupCodeDevice, EmailOTPDevice
from authn.selectors import device_for_code
from common.sql import saving_changes_only
from migration.models import ConnectivitySession
from outbox.services import email_queue, emails_cancel
from participants.models import User


@dataclasses.dataclass(frozen=True)
class ChallengeResult:
    sent: bool
    next_allowed_at: dt.datetime | None = None


@transaction.atomic(savepoint=False)
def email_otp_challenge(
    *, device_id: int, request: HttpRequest | None, scope: str = ""
) -> ChallengeResult:
    """Have a fresh code emailed to the device's user, unless the resend cooldown is running."""
    device = (
        EmailOTPDevice.objects.select_for_update(of=("self",))
        .select_related("user")
        .filter(pk=device_id)
        .first()
    )
    if device is None:
        # Removed since the login began (a DA reset the user's OTP): no code to send.
        return ChallengeResult(sent=False)
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
    return _device_check(device, token)


def _device_check(device: Device, token: str) -> OtpResult:
    """Check and use up `token` on a locked device, under the device's own throttle."""
    allowed, data = device.verify_is_allowed()
    if not allowed:
        return OtpResult(
            device=None, refusal=Refusal.THROTTLED, locked_until=(data or {}).get("locked_until")
        )
    # The device's row is locked in this transaction; a code used up writes what changed.
    with saving_changes_only(device):
        verified = device.verify_token(token)
    if verified:
        return OtpResult(device=device)
    return OtpResult(device=None, refusal=Refusal.BAD_CODE)


def _pending_device(pending: PendingLogin, token: str) -> Device | None:
    """The device that checks `token` for the pending login, locked, with its user and the
    user's firm (the audit row names both): one query."""
    if _is_numeric_code(token):
        model: type[Device] = TOTPDevice if pending.channel == "app" else EmailOTPDevice
        return device_for_code(model=model, user_id=pending.user_id, device_id=pending.device_id)
    return device_for_code(model=BackupCodeDevice, user_id=pending.user_id, device_id=None)


@transaction.atomic(savepoint=False)
def otp_login(
    request: HttpRequest, *, pending: PendingLogin, token: str, scope: str, terminal: str | None
) -> OtpResult | None:
    """Check the code of a pending login and log its user in, in one transaction: the code is
    used up only by a login that is recorded, and a failure is audited.

    The device and the user come in one query. Return None if the pending user is gone.
    """
    token = token.strip().replace(" ", "")
    device = _pending_device(pending, token)
    if device is not None:
        user = device.user
        result = _device_check(device, token)
    else:
        # The device was reset or replaced since the password step: check as before, which
        # refuses the code unless the user's channel changed to one that takes it.
        found = User.objects.select_related("participant").filter(pk=pending.user_id).first()
        if found is None:
            return None
        user = found
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
        if pending.connectivity_session is not None:
            _rehearsal_login(
                request,
                session_id=pending.connectivity_session,
                user=user,
                method=method,
                scope=scope,
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


def _rehearsal_login(
    request: HttpRequest, *, session_id: int, user: User, method: str, scope: str
) -> None:
    """A login let in by a connectivity-test session: its check, if the session still runs."""
    session = ConnectivitySession.objects.filter(pk=session_id).first()
    if session is not None and session.is_running(timezone.now()):
        rehearsal.rehearsal_login_complete(
            request, session=session, user=user, method=method, scopes=[scope]
        )
