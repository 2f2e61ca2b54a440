from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from audit.models import AuditEvent
from participants.models import LoginMethod, Scope


class _CodeFilter(admin.SimpleListFilter):
    """Filter a code field without choices by the labels of its known codes."""

    choices_class: type[models.TextChoices]

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(value, str(label)) for value, label in self.choices_class.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{str(self.parameter_name): value}) if value else queryset


class MethodFilter(_CodeFilter):
    title = _("method")
    parameter_name = "method"
    choices_class = LoginMethod


class ScopeFilter(_CodeFilter):
    title = _("scope")
    parameter_name = "scope"
    choices_class = Scope


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit trail is append-only, and nobody edits it here."""

    # action and outcome have choices, which the admin shows by their labels; scope, method
    # and reason keep unconstrained codes, shown through the model's displays.
    list_display = [
        "at",
        "action",
        "outcome",
        "login_id",
        "participant",
        "scope_label",
        "method_label",
        "ip",
        "reason_label",
    ]
    list_filter = ["action", "outcome", MethodFilter, ScopeFilter, "participant__terminal"]
    search_fields = ["login_id", "participant__participant_id", "ip"]
    date_hierarchy = "at"
    list_select_related = ["participant"]

    @admin.display(description=_("scope"), ordering="scope")
    def scope_label(self, event: AuditEvent) -> str:
        return event.get_scope_display()

    @admin.display(description=_("method"), ordering="method")
    def method_label(self, event: AuditEvent) -> str:
        return event.get_method_display()

    @admin.display(description=_("reason"), ordering="reason")
    def reason_label(self, event: AuditEvent) -> str:
        return event.get_reason_display()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
