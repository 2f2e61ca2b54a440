from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit trail is append-only, and nobody edits it here."""

    list_display = [
        "at",
        "action",
        "outcome",
        "login_id",
        "participant",
        "scope",
        "method",
        "ip",
        "reason",
    ]
    list_filter = ["action", "outcome", "method", "scope", "participant__terminal"]
    search_fields = ["login_id", "participant__participant_id", "ip"]
    date_hierarchy = "at"
    list_select_related = ["participant"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
