"""A user's OTP devices as a whole: fresh backup codes, a reset, a staff member's first device."""

from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_otp.models import Device
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditAction, Outcome
from audit.services import audit_record
from authn import rehearsal
from authn.models import BackupCodeDevice, EmailOTPDevice
from participants.models import User


def primary_device(user: User) -> Device | None:
    """Return the user's confirmed OTP channel: their authenticator app or their email."""
    totp = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if totp is not None:
        return totp
    return EmailOTPDevice.objects.filter(user=user, confirmed=True).first()


def primary_channel(user: User) -> tuple[str, int] | None:
    """("app", device id) or ("email", device id): the user's channel, as primary_device()
    chooses it, from the ids authn.selectors.account_for_login() read with the user."""
    if hasattr(user, "app_device_id"):
        app, email = user.app_device_id, getattr(user, "email_device_id", None)
    else:
        device = primary_device(user)
        app = device.pk if isinstance(device, TOTPDevice) else None
        email = device.pk if isinstance(device, EmailOTPDevice) else None
    if app is not None:
        return ("app", int(app))
    if email is not None:
        return ("email", int(email))
    return None


def unconfirmed_device_create(*, user: User, channel: str) -> Device:
    """Create a new, unconfirmed device for `channel` ("app" or "email"), in place of any
    other unconfirmed one of the user's: it counts only once proven with a code from it."""
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    EmailOTPDevice.objects.filter(user=user, confirmed=False).delete()
    if channel == "app":
        return TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    return EmailOTPDevice.objects.create(user=user, name="Email", confirmed=False)


def backup_codes_issue(*, user: User) -> list[str]:
    """Replace the user's backup codes with a fresh set and return them (shown once)."""
    rehearsal.account_change_guard(user=user)
    BackupCodeDevice.objects.filter(user=user).delete()
    backup = BackupCodeDevice.objects.create(user=user, name="Backup codes", confirmed=True)
    return backup.generate_codes(settings.BACKUP_CODE_COUNT)


def otp_devices_remove(*, user: User) -> None:
    """Remove every OTP device of the user, who must then set 2FA up again."""
    rehearsal.account_change_guard(user=user)
    TOTPDevice.objects.filter(user=user).delete()
    EmailOTPDevice.objects.filter(user=user).delete()
    BackupCodeDevice.objects.filter(user=user).delete()


@transaction.atomic
def staff_totp_create(*, user: User) -> tuple[TOTPDevice, list[str]]:
    """Give a staff member a confirmed authenticator-app device and fresh backup codes."""
    if not user.is_staff:
        raise ValueError(f"{user.login_id} is not exchange staff")
    TOTPDevice.objects.filter(user=user).delete()
    EmailOTPDevice.objects.filter(user=user).delete()
    device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
    codes = backup_codes_issue(user=user)
    User.objects.filter(pk=user.pk).update(two_factor_ready_at=timezone.now())
    audit_record(
        action=AuditAction.SETUP_COMPLETED,
        outcome=Outcome.SUCCESS,
        user=user,
        detail={"channel": "app", "by": "manage.py staff_otp_device"},
    )
    return device, codes
