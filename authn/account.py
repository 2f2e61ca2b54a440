"""Self-service credential changes after login: the password, the OTP channel, backup codes.

Each change first asks for a code from the user's second factor (re-authentication): a
code from their confirmed channel or one of their backup codes, checked by `otp_verify`
under the device's own throttle, the one a login's code step uses. A backup code is
accepted because it is the user's second factor at login too: a user who lost their phone
and logged in with one can move to a new phone without waiting for their DA's reset. Only
the proof of a NEW channel refuses it (`channel_change_confirm`), as in setup.

A refused code changes nothing but the device's throttle, and is audited as a failure of
the change. A change that goes through is audited and emailed to the user's designated
address in the same transaction; no password or code ever reaches the email, the audit
detail or a log.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import Any

import django_otp
from django.conf import settings
from django.contrib.auth import password_validation, update_session_auth_hash
from django.contrib.auth.hashers import check_password, make_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditAction, Outcome
from audit.services import audit_record
from authn import rehearsal, sessions
from authn.devices import backup_codes_issue, primary_device, unconfirmed_device_create
from authn.emails import CredentialChange, credentials_changed_notify
from authn.models import BackupCodeDevice, EmailOTPDevice
from authn.otp import ChallengeResult, OtpResult, email_otp_challenge, otp_verify
from authn.setup import setup_code_verify
from participants.models import User

# What a channel change in progress keeps between its two steps, and the backup codes on
# show after a renewal until the user says they kept them.
CHANNEL_KEY = "authn_account_channel"
RENEWED_CODES_KEY = "authn_account_backup_codes"

CHANNELS = ("app", "email")


@dataclasses.dataclass(frozen=True)
class ChangeResult:
    """What a change came to: done, or refused and why (and until when, if throttled)."""

    refusal: str | None = None
    locked_until: dt.datetime | None = None
    # channel_change_start: the new, still unconfirmed device.
    device: Device | None = None
    # backup_codes_renew: the new codes, to show once.
    codes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.refusal is None


class ChannelChangeGone(Exception):
    """No channel change is in progress in this session (never begun, expired, or its
    device removed since, e.g. by a DA's reset): begin again."""


def channel_of(device: Device | None) -> str:
    """Return "app" or "email" for an OTP device, "" for none."""
    if isinstance(device, TOTPDevice):
        return "app"
    if isinstance(device, EmailOTPDevice):
        return "email"
    return ""


def _user_lock(user: User) -> User:
    """Lock the user's row for the change, and let a test session snapshot the account.

    The lock makes two changes of one account wait their turn (and a DA's reset of it).
    The connectivity test's guard runs before anything changes: in a session whose changes
    are not carried forward, it keeps the account as it was so that the session's end can
    put it back.
    """
    locked = (
        User.objects.select_related("participant").select_for_update(of=("self",)).get(pk=user.pk)
    )
    rehearsal.account_change_guard(user=locked)
    # The guard may first have put back what an ended test session left to undo.
    locked.refresh_from_db(fields=["password"])
    return locked


def _refusal_audit(
    *,
    request: HttpRequest,
    user: User,
    action: str,
    result: OtpResult,
    detail: dict[str, Any] | None = None,
) -> None:
    """Audit a refused code as a failure of `action`."""
    audit_record(
        action=action,
        outcome=Outcome.FAILURE,
        request=request,
        user=user,
        method=sessions.Method.OTP,
        reason=result.refusal or "",
        detail=detail,
    )


def _reauthenticate(*, request: HttpRequest, user: User, token: str, action: str) -> OtpResult:
    """Check a code from the user's second factor; audit a refusal as a failure of `action`.

    A right code is used up, as at login; a wrong one counts on the device's throttle.
    """
    result = otp_verify(user=user, token=token)
    if not result.ok:
        _refusal_audit(request=request, user=user, action=action, result=result)
    return result


def _reauth_method(result: OtpResult) -> str:
    if isinstance(result.device, BackupCodeDevice):
        return sessions.Method.BACKUP_CODE
    return sessions.Method.OTP


def _refused(result: OtpResult) -> ChangeResult:
    return ChangeResult(refusal=result.refusal, locked_until=result.locked_until)


def _changed(
    *,
    request: HttpRequest,
    user: User,
    action: str,
    method: str,
    change: str,
    detail: dict[str, Any] | None = None,
    notice: dict[str, str] | None = None,
) -> None:
    """Audit a change that went through (`detail` for the audit row), and tell the user of
    it at their designated address (`notice` for the email: never a secret)."""
    now = timezone.now()
    audit_record(
        action=action,
        outcome=Outcome.SUCCESS,
        request=request,
        user=user,
        method=method,
        detail=detail,
    )
    credentials_changed_notify(user=user, change=change, at=now, detail=notice)


def _session_held(request: HttpRequest, key: str, *, user: User) -> dict[str, Any] | None:
    """Return what this session holds under `key` for `user`; None if nothing, or if it is
    older than SETUP_SESSION_SECONDS (then it leaves the session)."""
    held = request.session.get(key)
    if not held or held.get("user_id") != user.pk:
        return None
    if time.time() - int(held.get("at", 0)) > settings.SETUP_SESSION_SECONDS:
        request.session.pop(key, None)
        return None
    return dict(held)


def _session_verified_with(request: HttpRequest, devices: list[Device]) -> bool:
    """Return whether this session logged in with one of `devices`.

    When a change replaces that device, the caller binds the session to the new one:
    django-otp forgets a session's device once the device is gone, which would log the
    user out of the very session that made the change. Their other sessions that logged in
    with the old device end, as they should.
    """
    return request.session.get(DEVICE_ID_SESSION_KEY) in {d.persistent_id for d in devices}


def reauth_code_send(*, request: HttpRequest, user: User) -> ChallengeResult | None:
    """Email a code to re-authenticate with, if the user's channel is email (None if not).

    Within the resend cooldown no code is sent; the result says when one can be.
    """
    device = primary_device(user)
    if not isinstance(device, EmailOTPDevice):
        return None
    return email_otp_challenge(device_id=device.pk, request=request)


# The password ----------------------------------------------------------------------------


def password_refusals(*, user: User, new_password: str) -> list[str]:
    """Return why the new password is refused (the policy, or the current one re-used)."""
    try:
        password_validation.validate_password(new_password, user)
    except ValidationError as error:
        return list(error.messages)
    # hashers.check_password, not user.check_password: no re-hash saved as a side effect.
    if check_password(new_password, user.password):
        return [_("The new password must differ from your current password.")]
    return []


@transaction.atomic
def password_change(
    *, request: HttpRequest, user: User, current_otp: str, new_password: str
) -> ChangeResult:
    """Set a new password once the user proved their second factor again.

    The new password is checked against the policy before the code, so that a refused
    password does not use the code up: ValidationError says why. The session that made the
    change stays logged in; the user's other sessions end (Django's session hash).
    """
    locked = _user_lock(user)
    refusals = password_refusals(user=locked, new_password=new_password)
    if refusals:
        raise ValidationError(refusals)
    proof = _reauthenticate(
        request=request, user=locked, token=current_otp, action=AuditAction.PASSWORD_CHANGED
    )
    if not proof.ok:
        return _refused(proof)
    locked.password = make_password(new_password)
    locked.save(update_fields=["password"])
    update_session_auth_hash(request, locked)
    _changed(
        request=request,
        user=locked,
        action=AuditAction.PASSWORD_CHANGED,
        method=_reauth_method(proof),
        change=CredentialChange.PASSWORD,
    )
    return ChangeResult()


# The OTP channel ---------------------------------------------------------------------------


@transaction.atomic
def channel_change_start(
    *, request: HttpRequest, user: User, current_otp: str, channel: str
) -> ChangeResult:
    """Begin moving the user's codes to `channel` ("app": a new authenticator-app key, also
    for a new phone; "email"): create the new device, unconfirmed, and keep it in the session.

    Nothing else changes: the current channel works until the new one is proven
    (`channel_change_confirm`); a change abandoned halfway is discarded by the next one.
    """
    if channel not in CHANNELS:
        raise ValueError(f"Unknown OTP channel {channel!r}")
    locked = _user_lock(user)
    current = primary_device(locked)
    if current is None:
        raise ValueError(f"{locked.login_id} has no OTP channel to change")
    if channel == "email" and isinstance(current, EmailOTPDevice):
        # The address is the designated one, which only a DA changes: nothing would change.
        raise ValueError(f"{locked.login_id} already receives codes by email")
    proof = _reauthenticate(
        request=request, user=locked, token=current_otp, action=AuditAction.OTP_CHANNEL_CHANGED
    )
    if not proof.ok:
        return _refused(proof)
    device = unconfirmed_device_create(user=locked, channel=channel)
    request.session[CHANNEL_KEY] = {
        "user_id": locked.pk,
        "device": device.persistent_id,
        "channel": channel,
        "at": int(time.time()),
    }
    if isinstance(device, EmailOTPDevice):
        email_otp_challenge(device_id=device.pk, request=request)
    return ChangeResult(device=device)


def channel_change_device(request: HttpRequest, *, user: User) -> Device | None:
    """Return the new device of the channel change in progress in this session, if any."""
    state = _session_held(request, CHANNEL_KEY, user=user)
    if state is None:
        return None
    device = Device.from_persistent_id(str(state.get("device", "")))
    if device is None or device.user_id != user.pk or device.confirmed:
        return None
    return device


@transaction.atomic
def channel_change_confirm(*, request: HttpRequest, user: User, token: str) -> ChangeResult:
    """Finish the channel change with a code from the NEW device, and only from it (never a
    backup code, nor a code of the old channel): then the old channel stops working.

    Raise ChannelChangeGone when no change is in progress.
    """
    locked = _user_lock(user)
    device = channel_change_device(request, user=locked)
    if device is None:
        request.session.pop(CHANNEL_KEY, None)
        raise ChannelChangeGone(locked.login_id)
    proof = setup_code_verify(device=device, token=token)
    if not proof.ok or proof.device is None:
        _refusal_audit(
            request=request,
            user=locked,
            action=AuditAction.OTP_CHANNEL_CHANGED,
            result=proof,
            detail={"to": channel_of(device)},
        )
        return _refused(proof)
    new = proof.device
    old_apps = TOTPDevice.objects.filter(user=locked, confirmed=True)
    old_emails = EmailOTPDevice.objects.filter(user=locked, confirmed=True)
    old = [*old_apps, *old_emails]
    # The first, as primary_device() chooses: an app before an email device.
    old_channel = channel_of(old[0]) if old else ""
    old_apps.delete()
    old_emails.delete()
    type(new).objects.filter(pk=new.pk).update(confirmed=True)
    new.confirmed = True
    if _session_verified_with(request, old):
        django_otp.login(request, new)
    request.session.pop(CHANNEL_KEY, None)
    change = {"from": old_channel, "to": channel_of(new)}
    _changed(
        request=request,
        user=locked,
        action=AuditAction.OTP_CHANNEL_CHANGED,
        method=sessions.Method.OTP,
        change=CredentialChange.OTP_CHANNEL,
        detail=change,
        notice=change,
    )
    return ChangeResult(device=new)


# Backup codes ------------------------------------------------------------------------------


@transaction.atomic
def backup_codes_renew(*, request: HttpRequest, user: User, current_otp: str) -> ChangeResult:
    """Replace the user's backup codes once they proved their second factor again; the new
    codes stay on show in this session until the user says they kept them."""
    locked = _user_lock(user)
    proof = _reauthenticate(
        request=request, user=locked, token=current_otp, action=AuditAction.BACKUP_CODES_RENEWED
    )
    if not proof.ok:
        return _refused(proof)
    old = list(BackupCodeDevice.objects.filter(user=locked))
    codes = backup_codes_issue(user=locked)
    if _session_verified_with(request, old):
        django_otp.login(request, BackupCodeDevice.objects.get(user=locked))
    _changed(
        request=request,
        user=locked,
        action=AuditAction.BACKUP_CODES_RENEWED,
        method=_reauth_method(proof),
        change=CredentialChange.BACKUP_CODES,
        detail={"count": len(codes)},
    )
    request.session[RENEWED_CODES_KEY] = {
        "user_id": locked.pk,
        "login_id": locked.login_id,
        "codes": codes,
        "at": int(time.time()),
    }
    return ChangeResult(codes=tuple(codes))


def renewed_codes(request: HttpRequest, *, user: User) -> dict[str, Any] | None:
    """Return what the end of a renewal shows: the codes until the user says they kept them
    (then no codes), None once that is over.

    As at the end of setup the codes stay in the session, not only on the first view, so
    that a reload or a language switch shows them again; they leave it when the user
    confirms, and at the latest SETUP_SESSION_SECONDS after the renewal.
    """
    return _session_held(request, RENEWED_CODES_KEY, user=user)


def renewed_codes_kept(request: HttpRequest) -> None:
    """Forget the renewed backup codes: the user has kept them."""
    shown = request.session.get(RENEWED_CODES_KEY)
    if shown and shown.get("codes"):
        shown = dict(shown)
        shown.pop("codes")
        request.session[RENEWED_CODES_KEY] = shown
