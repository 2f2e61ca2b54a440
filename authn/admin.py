from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

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
