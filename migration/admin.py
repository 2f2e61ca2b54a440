from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminDateWidget
from django.core.exceptions import PermissionDenied
from django.db.models import Max, QuerySet
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from common.admin_widgets import DATETIME_OVERRIDES, LabelledSplitDateTime
from migration import connectivity, services
from migration.models import (
    ConnectivityEvent,
    ConnectivitySession,
    Milestone,
    Programme,
    TestEntry,
)
from participants.models import Terminal


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


# Connectivity-test events ----------------------------------------------------------------

# Times that move through services.event_reschedule, which audits a published event's move
# and emails its DAs; the admin saves the other fields itself.
EVENT_TIMES = ("day", "registration_deadline")
SESSION_TIMES = ("starts_at", "ends_at")


class ConnectivitySessionForm(forms.ModelForm):
    entries = forms.MultipleChoiceField(
        label=_("login entries open"),
        choices=TestEntry.choices,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose the login entries this session opens.")},
    )

    class Meta:
        model = ConnectivitySession
        fields = ["name", "data_centre", "starts_at", "ends_at", "entries", "carried_forward"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "entries" in (self._meta.exclude or ()):
            # Read-only (a published event's session): the declared field goes with it.
            del self.fields["entries"]

    def clean_entries(self) -> list[str]:
        chosen = set(self.cleaned_data.get("entries") or [])
        return [entry.value for entry in TestEntry if entry.value in chosen]

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        starts, ends = cleaned.get("starts_at"), cleaned.get("ends_at")
        if starts is not None and ends is not None and ends <= starts:
            self.add_error("ends_at", _("A session must end after it starts."))
        # The instance still has the times it was saved with: construct_instance comes later.
        if self.instance.pk is not None and self.has_changed():
            try:
                services.session_change_check(session=self.instance)
            except connectivity.ConnectivityError as error:
                raise forms.ValidationError(str(error)) from None
        return cleaned


class ConnectivitySessionFormSet(forms.BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        for form in self.deleted_forms:
            if form.instance.pk is not None:
                try:
                    services.session_change_check(session=form.instance)
                except connectivity.ConnectivityError as error:
                    raise forms.ValidationError(str(error)) from None


class ConnectivitySessionInline(admin.StackedInline):
    model = ConnectivitySession
    form = ConnectivitySessionForm
    formset = ConnectivitySessionFormSet
    fields = ["name", "data_centre", "starts_at", "ends_at", "entries", "carried_forward"]
    formfield_overrides = DATETIME_OVERRIDES
    extra = 0

    # Once the DAs have the schedule, a session comes or goes with a new event: the emails
    # of a move list the sessions' times, not sessions added or removed.
    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return super().has_add_permission(request, obj) and not (obj and obj.is_published)

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return super().has_delete_permission(request, obj) and not (obj and obj.is_published)

    # What a session is (its name, data centre, entries, and whether its changes are
    # carried forward) is what the DAs were told and what they registered for: once
    # published only its times move, and a move is audited and emailed (event_reschedule).
    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        if obj is not None and obj.is_published:
            return ["name", "data_centre", "entries", "carried_forward"]
        return super().get_readonly_fields(request, obj)


class EventFromCircularForm(forms.Form):
    terminal = forms.ModelChoiceField(
        label=_("Terminal"), queryset=Terminal.objects.order_by("code"), empty_label=None
    )
    day = forms.DateField(label=_("Day of the test"), widget=AdminDateWidget)
    deadline = forms.SplitDateTimeField(
        label=_("Registration deadline"),
        required=False,
        widget=LabelledSplitDateTime,
        help_text=_(
            "Hong Kong time. If left empty: 23:59 eight days before the test, as in the circular."
        ),
    )

    def clean_day(self) -> dt.date:
        day: dt.date = self.cleaned_data["day"]
        if day < timezone.localdate(timezone=connectivity.HONG_KONG):
            raise forms.ValidationError(_("The day of the test cannot be in the past."))
        return day

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        day, deadline = cleaned.get("day"), cleaned.get("deadline")
        if day is not None and deadline is not None:
            first = connectivity.hong_kong_at(day, connectivity.CIRCULAR_SESSIONS[0].starts)
            if deadline >= first:
                self.add_error(
                    "deadline",
                    _("Registration must close before the first session starts (%(when)s).")
                    % {"when": first.strftime("%Y-%m-%d %H:%M")},
                )
        return cleaned


@admin.register(ConnectivityEvent)
class ConnectivityEventAdmin(admin.ModelAdmin):
    list_display = ["terminal", "day", "registration_deadline", "published"]
    list_filter = ["terminal"]
    list_select_related = ["terminal"]
    fields = ["terminal", "title", "day", "registration_deadline", "published_at", "published_by"]
    readonly_fields = ["published_at", "published_by"]
    inlines = [ConnectivitySessionInline]
    formfield_overrides = DATETIME_OVERRIDES

    @admin.display(boolean=True, description=_("published"), ordering="published_at")
    def published(self, event: ConnectivityEvent) -> bool:
        return event.is_published

    def get_readonly_fields(self, request, obj=None):  # type: ignore[no-untyped-def]
        fields = list(super().get_readonly_fields(request, obj))
        # Its firms registered for it: a published event stays with its terminal.
        if obj is not None and obj.is_published:
            fields.insert(0, "terminal")
        return fields

    def has_delete_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        # Deleting a published event would take its firms' registrations and checks along.
        return super().has_delete_permission(request, obj) and not (obj and obj.is_published)

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # it does not ask has_delete_permission per event
        return actions

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path(
                "from-circular/",
                view(self.from_circular_view),
                name="migration_connectivityevent_from_circular",
            ),
            path(
                "<path:object_id>/publish/",
                view(self.publish_view),
                name="migration_connectivityevent_publish",
            ),
            *super().get_urls(),
        ]

    # Saving: the times through the service -------------------------------------------------

    def save_model(
        self, request: HttpRequest, obj: ConnectivityEvent, form: Any, change: bool
    ) -> None:
        if not change:
            obj.save()
            return
        fields = [name for name in form.changed_data if name not in EVENT_TIMES]
        if fields:
            obj.save(update_fields=fields)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        if formset.model is not ConnectivitySession:
            super().save_formset(request, form, formset, change)
            return
        formset.save(commit=False)
        for session in formset.deleted_objects:
            session.delete()
        position = form.instance.sessions.aggregate(last=Max("position"))["last"] or 0
        for session in formset.new_objects:
            position += 1
            session.position = position
            session.save()
        for session, changed in formset.changed_objects:
            fields = [name for name in changed if name not in SESSION_TIMES]
            if fields:
                session.save(update_fields=fields)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        if not change:
            return
        sessions = {
            session.pk: (session.starts_at, session.ends_at)
            for formset in formsets
            if formset.model is ConnectivitySession
            for session, changed in formset.changed_objects
            if any(name in SESSION_TIMES for name in changed)
        }
        moved = {name: form.cleaned_data[name] for name in EVENT_TIMES if name in form.changed_data}
        if not sessions and not moved:
            return
        services.event_reschedule(
            event=form.instance,
            changes=services.EventTimes(**moved, sessions=sessions),
            acting_user=request.user,  # type: ignore[arg-type]
        )

    # The circular's template and publishing ------------------------------------------------

    def from_circular_view(self, request: HttpRequest) -> HttpResponseBase:
        """Create an unpublished event with the circular's two sessions; then its page."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = EventFromCircularForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            event = connectivity.event_from_circular(
                terminal=form.cleaned_data["terminal"],
                day=form.cleaned_data["day"],
                deadline=form.cleaned_data["deadline"],
            )
            self.log_addition(request, event, _("Created from the circular's template."))
            self.message_user(
                request,
                _(
                    "The event was created with the circular's two sessions. Check it, then "
                    "publish it."
                ),
                messages.SUCCESS,
            )
            return HttpResponseRedirect(
                reverse("admin:migration_connectivityevent_change", args=[event.pk])
            )
        context = {
            **self.admin_site.each_context(request),
            "title": _("New event from the circular's template"),
            "opts": self.opts,
            "form": form,
            "media": self.media + form.media,
            "sessions": connectivity.CIRCULAR_SESSIONS,
        }
        return TemplateResponse(
            request, "admin/migration/connectivityevent/from_circular.html", context
        )

    def publish_view(self, request: HttpRequest, object_id: str) -> HttpResponseBase:
        """Ask to confirm; on POST publish the event and email its terminal's DAs, once."""
        event = self.get_object(request, object_id)
        if event is None:
            raise Http404
        if not self.has_change_permission(request, event):
            raise PermissionDenied
        change_url = reverse("admin:migration_connectivityevent_change", args=[event.pk])
        if request.method == "POST":
            if event.is_published:
                self.message_user(request, _("This event was published already."), messages.INFO)
                return HttpResponseRedirect(change_url)
            try:
                services.event_publish(event=event, acting_user=request.user)  # type: ignore[arg-type]
            except connectivity.ConnectivityError as error:
                self.message_user(request, str(error), messages.ERROR)
            else:
                self.log_change(request, event, _("Published."))
                self.message_user(
                    request,
                    _(
                        "The event is published: its schedule is on its way to the DAs of "
                        "%(terminal)s's firms."
                    )
                    % {"terminal": event.terminal},
                    messages.SUCCESS,
                )
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": _("Publish the connectivity-test event?"),
            "opts": self.opts,
            "original": event,
            "event": event,
            "sessions": event.sessions.order_by("position", "starts_at"),
            "recipients": services.terminal_das(event.terminal).count(),
        }
        return TemplateResponse(
            request, "admin/migration/connectivityevent/publish_confirmation.html", context
        )
