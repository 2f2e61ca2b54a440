from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections, models
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


class EstimatedCountPaginator(Paginator):
    """A paginator that never counts a million audit rows to number the admin's pages.

    The whole table: PostgreSQL's own estimate (pg_class.reltuples, kept by ANALYZE and
    autovacuum). A filtered list, or another database: counted, but only up to a cap.
    """

    CAP = 10_000

    @property
    def count(self) -> int:  # type: ignore[override]
        if not hasattr(self, "_estimated_count"):
            self._estimated_count = self._estimate()
        return self._estimated_count

    def _estimate(self) -> int:
        queryset = self.object_list
        assert isinstance(queryset, QuerySet)
        connection = connections[queryset.db]
        if connection.vendor == "postgresql" and not queryset.query.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE relname = %s",
                    [queryset.model._meta.db_table],
                )
                found = cursor.fetchone()
            if found and found[0] > self.CAP:
                return int(found[0])
        return queryset.order_by().values("pk")[: self.CAP].count()


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit trail is append-only, and nobody edits it here."""

    # Neither the "N total" link nor the page numbers count the whole table.
    show_full_result_count = False
    paginator = EstimatedCountPaginator

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
