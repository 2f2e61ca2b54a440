from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from participants.models import Participant, ReportFile, Smartcard, Terminal, User


@admin.register(Terminal)
class TerminalAdmin(admin.ModelAdmin):
    list_display = ["code", "operator", "hotline_name", "hotline", "enquiry_email"]


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    list_display = ["participant_id", "name", "kind", "terminal", "single_da_allowed"]
    list_filter = ["terminal", "kind", "single_da_allowed"]
    search_fields = ["participant_id", "name"]


class SmartcardInline(admin.TabularInline):
    model = Smartcard
    extra = 0
    fields = ["serial", "fingerprint_sha256", "valid_from", "valid_to", "revoked_at"]
    readonly_fields = ["fingerprint_sha256"]
    can_delete = False


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    list_display = [
        "login_id",
        "name",
        "participant",
        "role",
        "da_duty",
        "status",
        "email",
        "two_factor_ready_at",
        "last_login",
    ]
    list_filter = ["role", "status", "is_staff", "participant__terminal"]
    search_fields = ["login_id", "name", "email", "participant__participant_id"]
    list_select_related = ["participant"]
    raw_id_fields = ["participant", "email_registered_by"]
    readonly_fields = ["last_login", "last_login_method", "date_joined", "two_factor_ready_at"]
    fieldsets = [
        (None, {"fields": ["login_id", "name", "participant", "role", "da_duty", "status"]}),
        (_("Access scopes"), {"fields": ["scope_online", "scope_reports", "scope_dms"]}),
        (
            _("Designated email"),
            {"fields": ["email", "email_registered_by", "email_registered_at"]},
        ),
        (
            _("Staff"),
            {"fields": ["is_staff", "is_superuser", "groups", "user_permissions"]},
        ),
        (
            _("History"),
            {"fields": ["date_joined", "last_login", "last_login_method", "two_factor_ready_at"]},
        ),
    ]
    filter_horizontal = ["groups", "user_permissions"]
    inlines = [SmartcardInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("participant")


@admin.register(Smartcard)
class SmartcardAdmin(admin.ModelAdmin):
    list_display = ["serial", "user", "valid_from", "valid_to", "revoked_at"]
    search_fields = ["serial", "fingerprint_sha256", "user__login_id"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    exclude = ["password_hash"]


@admin.register(ReportFile)
class ReportFileAdmin(admin.ModelAdmin):
    list_display = ["participant", "business_date", "title"]
    list_filter = ["business_date"]
    search_fields = ["participant__participant_id", "title"]
    list_select_related = ["participant"]
