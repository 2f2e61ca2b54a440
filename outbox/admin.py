from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from outbox.models import EmailStatus, OutboxEmail
from outbox.services import emails_retry


@admin.register(OutboxEmail)
class OutboxEmailAdmin(admin.ModelAdmin):
    """Staff see what was sent, what waits and what failed, and can send failed ones again."""

    list_display = ["id", "kind", "to", "status", "created_at", "attempts", "sent_at", "last_error"]
    list_filter = ["status", "kind"]
    search_fields = ["to"]
    date_hierarchy = "created_at"
    actions = ["retry"]
    readonly_fields = [field.name for field in OutboxEmail._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description=_("Send the failed ones again"))
    def retry(self, request: HttpRequest, queryset: QuerySet[OutboxEmail]) -> None:
        ids = list(queryset.filter(status=EmailStatus.FAILED).values_list("pk", flat=True))
        retried = emails_retry(ids=ids)
        self.message_user(request, _("Queued again: %(n)d.") % {"n": retried})
