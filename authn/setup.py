"""2FA setup after an activation link: password, OTP channel, proof, backup codes."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django_otp.models import Device
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditAction, Outcome
from audit.services import audit_record
from authn import rehearsal, sessions
from authn.credentials import Refusal
from authn.devices import backup_codes_issue, unconfirmed_device_create
from authn.models import EmailOTPDevice
from authn.otp import OtpResult, email_otp_challenge
from participants.models import Scope, User


def setup_state(request: HttpRequest) -> dict[str, object] | None:
    state = request.session.get(sessions.SETUP_KEY)
    if not state:
        return None
    if time.time() - int(state.get("at", 0)) > settings.SETUP_SESSION_SECONDS:
        request.session.pop(sessions.SETUP_KEY, None)
        return None
    return dict(state)


def setup_user(request: HttpRequest) -> User | None:
    state = setup_state(request)
    if state is None:
        return None
    return (
        User.objects.select_related("participant__terminal__programme")
        .filter(pk=state["user_id"])
        .first()
    )


def _setup_update(request: HttpRequest, **changes: object) -> None:
    state = request.session[sessions.SETUP_KEY]
    state.update(changes)
    request.session[sessions.SETUP_KEY] = state


def setup_password_choose(*, request: HttpRequest, user: User, password: str) -> None:
    """Hold the chosen password's hash until setup completes; nothing is applied before then."""
    _setup_update(request, password_hash=make_password(password))
    audit_record(
        action=AuditAction.SETUP_PASSWORD, outcome=Outcome.SUCCESS, request=request, user=user
    )


@transaction.atomic
def setup_channel_choose(*, request: HttpRequest, user: User, channel: str) -> Device:
    """Create the unconfirmed device for the chosen channel; it counts only once proven."""
    device = unconfirmed_device_create(user=user, channel=channel)
    _setup_update(request, device=device.persistent_id, channel=channel)
    audit_record(
        action=AuditAction.SETUP_CHANNEL,
        outcome=Outcome.SUCCESS,
        request=request,
        user=user,
        detail={"channel": channel},
    )
    if isinstance(device, EmailOTPDevice):
        email_otp_challenge(device_id=device.pk, request=request)
    return device


def setup_device(request: HttpRequest, *, user: User) -> Device | None:
    state = setup_state(request) or {}
    persistent_id = state.get("device")
    if not isinstance(persistent_id, str):
        return None
    device = Device.from_persistent_id(persistent_id)
    if device is None or device.user_id != user.pk:
        return None
    return device


@transaction.atomic
def setup_code_verify(*, device: Device, token: str) -> OtpResult:
    """Check a code against the device being set up, and only that one: the new
    channel must be proven with its own code, never with a backup code.

    Like a login, a code that comes too soon after a wrong one is not checked at all
    (django-otp's throttle); the result says until when, so the page can say how long.
    """
    locked = type(device).objects.select_for_update().get(pk=device.pk)
    allowed, data = locked.verify_is_allowed()
    if not allowed:
        return OtpResult(
            device=None, refusal=Refusal.THROTTLED, locked_until=(data or {}).get("locked_until")
        )
    if locked.verify_token(token.strip().replace(" ", "")):
        return OtpResult(device=locked)
    return OtpResult(device=None, refusal=Refusal.BAD_CODE)


class UserSuspended(Exception):
    """The user was suspended: no setup step may go on."""


@transaction.atomic
def setup_complete(*, request: HttpRequest, user: User, device: Device) -> list[str]:
    """Apply the whole setup at once: password, proven channel, fresh backup codes."""
    state = setup_state(request) or {}
    password_hash = state.get("password_hash")
    if not isinstance(password_hash, str):
        raise ValueError("No password was chosen")
    user = User.objects.select_for_update().get(pk=user.pk)
    if not user.is_active:
        # Suspended while setting up: nothing of the setup is applied.
        raise UserSuspended(user.login_id)
    rehearsal.account_change_guard(user=user)
    user.password = password_hash
    user.two_factor_ready_at = timezone.now()
    user.save(update_fields=["password", "two_factor_ready_at"])
    TOTPDevice.objects.filter(user=user).exclude(
        pk=device.pk if isinstance(device, TOTPDevice) else None
    ).delete()
    EmailOTPDevice.objects.filter(user=user).exclude(
        pk=device.pk if isinstance(device, EmailOTPDevice) else None
    ).delete()
    type(device).objects.filter(pk=device.pk).update(confirmed=True)
    codes = backup_codes_issue(user=user)
    audit_record(
        action=AuditAction.SETUP_COMPLETED,
        outcome=Outcome.SUCCESS,
        request=request,
        user=user,
        detail={"channel": state.get("channel", "")},
    )
    request.session.pop(sessions.SETUP_KEY, None)
    terminal = user.participant.terminal.slug if user.participant else None
    request.session[sessions.BACKUP_CODES_KEY] = {
        "codes": codes,
        "login_id": user.login_id,
        "at": int(time.time()),
        "terminal": terminal,
        "scopes": [
            scope for scope in (Scope.ONLINE, Scope.REPORTS, Scope.DMS) if user.has_scope(scope)
        ],
    }
    return codes


def setup_finished(request: HttpRequest) -> dict[str, Any] | None:
    """Return what the end of setup shows: the backup codes until the user says they kept
    them, and the logins to go on to; None once that is over.

    The codes stay in the session, not only on the first page view, so that switching the
    language or reloading shows them again; they leave it when the user confirms, and at
    the latest SETUP_SESSION_SECONDS after setup completed.
    """
    finished = request.session.get(sessions.BACKUP_CODES_KEY)
    if not finished:
        return None
    if time.time() - int(finished.get("at", 0)) > settings.SETUP_SESSION_SECONDS:
        request.session.pop(sessions.BACKUP_CODES_KEY, None)
        return None
    return dict(finished)


def backup_codes_kept(request: HttpRequest) -> None:
    """Forget the backup codes once the user has kept them (what comes next stays)."""
    finished = request.session.get(sessions.BACKUP_CODES_KEY)
    if finished and finished.get("codes"):
        finished = dict(finished)
        finished.pop("codes")
        request.session[sessions.BACKUP_CODES_KEY] = finished
