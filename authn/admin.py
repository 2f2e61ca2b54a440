from django.contrib import admin

from authn.models import ActivationToken, BackupCodeDevice, EmailOTPDevice, LoginThrottle


@admin.register(EmailOTPDevice)
class EmailOTPDeviceAdmin(admin.ModelAdmin):
    list_display = ["user", "name", "confirmed", "last_used_at", "throttling_failure_count"]
    search_fields = ["user__login_id"]
    raw_id_fields = ["user"]
    exclude = ["token_hash"]


@admin.register(BackupCodeDevice)
class BackupCodeDeviceAdmin(admin.ModelAdmin):
    list_display = ["user", "name", "confirmed", "throttling_failure_count"]
    search_fields = ["user__login_id"]
    raw_id_fields = ["user"]


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
