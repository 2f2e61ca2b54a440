from django.contrib import admin

from migration.models import Programme


@admin.register(Programme)
class ProgrammeAdmin(admin.ModelAdmin):
    list_display = [
        "terminal",
        "phase",
        "da_email_registration_open",
        "planned_launch_at",
        "updated_at",
    ]
    list_editable = ["phase", "da_email_registration_open"]
    list_select_related = ["terminal"]

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False
