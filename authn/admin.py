from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy
from django_otp.models import Device
from django_otp.plugins.otp_totp.admin import TOTPDeviceAdmin
from django_otp.plugins.otp_totp.models import TOTPDevice

from authn.activation import activation_send
from authn.models import ActivationToken, BackupCodeDevice, EmailOTPDevice, LoginThrottle
from migration import phases
from participants.admin import UserAdmin
from participants.models import User

# participants registers the user admin; the activation email is authn's, so authn adds
# the action that sends it (participants, below authn, cannot import it).
admin.site.unregister(User)


@admin.register(User)
class UserActivationAdmin(UserAdmin):
    actions = ["send_activation"]

    @admin.action(description=_("Send an activation email"))
    def send_activation(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        sent = skipped = 0
        for user in queryset.select_related("participant__terminal__programme"):
            if user.has_registered_email() and phases.setup_open_for(user):
                activation_send(user=user, acting_user=request.user, request=request)  # type: ignore[arg-type]
                sent += 1
            else:
                skipped += 1
        self.message_user(request, _("Activation emails sent: %(n)d.") % {"n": sent})
        if skipped:
            self.message_user(
                request,
                _("Skipped %(n)d users without a designated email or whose 2FA setup is not open.")
                % {"n": skipped},
                level=messages.WARNING,
            )


# A device's name is data, stored in English (authn.devices, authn.setup); staff read it in
# the admin's language. django-otp's own fields have English labels, so the device lists
# label their columns here.
DEVICE_NAMES = {
    "Authenticator app": pgettext_lazy("OTP device", "Authenticator app"),
    "Email": pgettext_lazy("OTP device", "Email"),
    "Backup codes": pgettext_lazy("OTP device", "Backup codes"),
}


def device_name(device: Device) -> str:
    """Return the device's name in the active language, when it is one the portal gives."""
    return str(DEVICE_NAMES.get(device.name, device.name))


class DeviceColumns:
    """The columns of a device list, labelled in the admin's language."""

    @admin.display(description=_("user"), ordering="user__login_id")
    def device_user(self, device: Device) -> str:
        return str(device.user)

    @admin.display(description=_("name"), ordering="name")
    def device_name(self, device: Device) -> str:
        return device_name(device)

    @admin.display(description=_("confirmed"), boolean=True, ordering="confirmed")
    def device_confirmed(self, device: Device) -> bool:
        return bool(device.confirmed)

    @admin.display(description=_("last used at"), ordering="last_used_at")
    def device_last_used_at(self, device: Device) -> object:
        return getattr(device, "last_used_at", None)

    @admin.display(description=_("failed attempts"), ordering="throttling_failure_count")
    def device_failures(self, device: Device) -> int:
        return int(getattr(device, "throttling_failure_count", 0))


@admin.register(EmailOTPDevice)
class EmailOTPDeviceAdmin(DeviceColumns, admin.ModelAdmin):
    list_display = [
        "device_user",
        "device_name",
        "device_confirmed",
        "device_last_used_at",
        "device_failures",
    ]
    search_fields = ["user__login_id"]
    raw_id_fields = ["user"]
    exclude = ["token_hash"]


@admin.register(BackupCodeDevice)
class BackupCodeDeviceAdmin(DeviceColumns, admin.ModelAdmin):
    list_display = ["device_user", "device_name", "device_confirmed", "device_failures"]
    search_fields = ["user__login_id"]
    raw_id_fields = ["user"]


# django-otp registers its own list of authenticator apps; the same list, in the staff's language.
admin.site.unregister(TOTPDevice)


@admin.register(TOTPDevice)
class PortalTOTPDeviceAdmin(DeviceColumns, TOTPDeviceAdmin):
    list_display = [
        "device_user",
        "device_name",
        "device_confirmed",
        "device_last_used_at",
        "device_failures",
    ]


@admin.register(ActivationToken)
class ActivationTokenAdmin(admin.ModelAdmin):
    list_display = ["user", "created_at", "expires_at", "used_at", "revoked_at"]
    search_fields = ["user__login_id"]
    readonly_fields = ["user", "created_at", "expires_at", "used_at", "revoked_at"]
    exclude = ["token_hash"]

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(LoginThrottle)
class LoginThrottleAdmin(admin.ModelAdmin):
    """Staff help a locked-out user by clearing the throttle here."""

    list_display = ["key", "failures", "last_failure_at", "locked_until"]
    search_fields = ["key"]
