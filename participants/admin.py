from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from common.admin_widgets import DATETIME_OVERRIDES
from participants.models import Participant, ReportFile, Smartcard, Terminal, User


@admin.register(Terminal)
class TerminalAdmin(admin.ModelAdmin):
    list_display = ["code", "operator", "hotline_name", "hotline", "enquiry_email"]


@admin.register(Participant)
class ParticipantAdmin(admin.ModelAdmin):
    list_display = ["participant_id", "name", "kind", "terminal", "single_da_allowed"]
    list_filter = ["terminal", "kind", "single_da_allowed"]
    search_fields = ["participant_id", "name"]


class SmartcardForm(forms.ModelForm):
    """A card with its smartcard password, which is hashed and never shown."""

    card_password = forms.CharField(
        label=_("smartcard password"),
        strip=False,
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("Required for a new card. Leave blank to keep the current password."),
    )

    class Meta:
        model = Smartcard
        # Never password_hash: the hash is neither shown nor typed in.
        fields = ["user", "serial", "fingerprint_sha256", "valid_from", "valid_to", "revoked_at"]

    def clean_card_password(self) -> str:
        password = self.cleaned_data["card_password"]
        if not password and self.instance._state.adding:
            raise ValidationError(
                _("A new card needs a smartcard password."), code="card_password_required"
            )
        return password

    def save(self, commit: bool = True) -> Smartcard:
        card = super().save(commit=False)
        if self.cleaned_data["card_password"]:
            card.set_password(self.cleaned_data["card_password"])
        if commit:
            card.save()
            self.save_m2m()
        return card


class SmartcardInlineForm(SmartcardForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A registered card keeps its certificate, but a new row must be able to give one:
        # a read-only field would save the new card without a fingerprint.
        if not self.instance._state.adding:
            self.fields["fingerprint_sha256"].disabled = True


class SmartcardInline(admin.TabularInline):
    model = Smartcard
    form = SmartcardInlineForm
    formfield_overrides = DATETIME_OVERRIDES
    extra = 0
    fields = [
        "serial",
        "fingerprint_sha256",
        "valid_from",
        "valid_to",
        "revoked_at",
        "card_password",
    ]
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
        "last_login_method_label",
    ]
    list_filter = ["role", "status", "is_staff", "participant__terminal"]
    search_fields = ["login_id", "name", "email", "participant__participant_id"]
    list_select_related = ["participant"]
    raw_id_fields = ["participant", "email_registered_by"]
    readonly_fields = [
        "last_login",
        "last_login_method_label",
        "date_joined",
        "two_factor_ready_at",
    ]
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
            {
                "fields": [
                    "date_joined",
                    "last_login",
                    "last_login_method_label",
                    "two_factor_ready_at",
                ]
            },
        ),
    ]
    # Not filter_horizontal: its script's search boxes carry ARIA names a span may not have
    # (axe: aria-prohibited-attr); the plain multiple select is labelled.
    formfield_overrides = DATETIME_OVERRIDES
    inlines = [SmartcardInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return super().get_queryset(request).select_related("participant")

    @admin.display(description=_("last login method"), ordering="last_login_method")
    def last_login_method_label(self, user: User) -> str:
        return user.get_last_login_method_display()


@admin.register(Smartcard)
class SmartcardAdmin(admin.ModelAdmin):
    list_display = ["serial", "user", "valid_from", "valid_to", "revoked_at"]
    search_fields = ["serial", "fingerprint_sha256", "user__login_id"]
    list_select_related = ["user"]
    raw_id_fields = ["user"]
    form = SmartcardForm
    formfield_overrides = DATETIME_OVERRIDES
    exclude = ["password_hash"]


@admin.register(ReportFile)
class ReportFileAdmin(admin.ModelAdmin):
    list_display = ["participant", "business_date", "title_label"]
    list_filter = ["business_date"]
    search_fields = ["participant__participant_id", "title"]
    list_select_related = ["participant"]

    @admin.display(description=_("title"), ordering="title")
    def title_label(self, report: ReportFile) -> str:
        return report.get_title_display()
