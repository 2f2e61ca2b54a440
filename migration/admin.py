from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from migration import services
from migration.models import Milestone, Programme


class MilestoneInline(admin.TabularInline):
    model = Milestone
    fields = ("kind", "planned_at", "needs_approval", "approved_at", "carried_out_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Programme)
class ProgrammeAdmin(admin.ModelAdmin):
    list_display = [
        "terminal",
        "phase",
        "da_email_registration_open",
        "updated_at",
    ]
    list_select_related = ["terminal"]
    # The phase follows the milestones carried out (migration.services): not edited here.
    readonly_fields = ["terminal", "phase", "da_email_registration_open", "updated_at"]
    inlines = [MilestoneInline]

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


class MilestoneForm(forms.ModelForm):
    class Meta:
        model = Milestone
        fields = ["planned_at", "needs_approval"]

    def clean_needs_approval(self) -> Any:
        required = self.cleaned_data.get("needs_approval")
        milestone = self.instance
        if required != milestone.needs_approval and (
            milestone.carried_out_at is not None or milestone.approved_at is not None
        ):
            raise forms.ValidationError(
                _("A milestone carried out or approved keeps its approval requirement.")
            )
        return required

    def clean_planned_at(self) -> Any:
        planned_at = self.cleaned_data.get("planned_at")
        if planned_at is None:
            if self.instance.planned_at is not None:
                raise forms.ValidationError(_("A scheduled milestone keeps a date: move it."))
            return planned_at
        if planned_at != self.instance.planned_at:
            try:
                services.milestone_reschedule_check(milestone=self.instance, planned_at=planned_at)
            except services.MilestoneError as error:
                raise forms.ValidationError(str(error)) from None
        return planned_at


@admin.register(Milestone)
class MilestoneAdmin(admin.ModelAdmin):
    form = MilestoneForm
    list_display = [
        "__str__",
        "planned_at",
        "needs_approval",
        "approved_at",
        "approved_by",
        "carried_out_at",
    ]
    list_filter = ["programme__terminal", "kind"]
    list_select_related = ["programme__terminal", "approved_by"]
    readonly_fields = [
        "programme",
        "kind",
        "approved_by",
        "approved_at",
        "carried_out_at",
    ]
    actions = ["approve"]

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def save_model(self, request: HttpRequest, obj: Milestone, form: Any, change: bool) -> None:
        # Each change is audited (and a new date told to the DAs): the services, never save().
        if "needs_approval" in form.changed_data:
            services.milestone_approval_require(
                milestone=obj,
                required=obj.needs_approval,
                acting_user=request.user,  # type: ignore[arg-type]
            )
        if "planned_at" in form.changed_data and obj.planned_at is not None:
            services.milestone_reschedule(
                milestone=obj,
                planned_at=obj.planned_at,
                acting_user=request.user,  # type: ignore[arg-type]
            )

    @admin.action(description=_("Approve (regulatory approval received)"))
    def approve(self, request: HttpRequest, queryset: QuerySet[Milestone]) -> None:
        for milestone in queryset:
            try:
                services.milestone_approve(milestone=milestone, acting_user=request.user)  # type: ignore[arg-type]
            except services.MilestoneError as error:
                self.message_user(request, f"{milestone}: {error}", messages.ERROR)
            else:
                self.message_user(request, _("%(m)s: approved.") % {"m": milestone})
