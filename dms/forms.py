"""Forms of the DMS pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _

from audit.models import AuditAction
from participants.models import DaDuty, Role


class EmailRequestForm(forms.Form):
    email = forms.EmailField(label=_("Designated email address"), max_length=254)


class RejectForm(forms.Form):
    reason = forms.CharField(label=_("Reason (shown to the maker)"), max_length=500)


class UserCreateForm(forms.Form):
    login_id = forms.CharField(
        label=_("Login ID"),
        max_length=32,
        validators=[
            RegexValidator(r"^[A-Za-z0-9._-]+$", _("Letters, digits, dot, dash, underscore."))
        ],
    )
    name = forms.CharField(label=_("Name"), max_length=200)
    role = forms.ChoiceField(label=_("Role"), choices=Role.choices, initial=Role.USER)
    da_duty = forms.ChoiceField(
        label=_("DA duty"), choices=[("", "—"), *DaDuty.choices], required=False
    )
    email = forms.EmailField(label=_("Designated email address"), required=False)
    scope_online = forms.BooleanField(label=_("Online Functions"), required=False, initial=True)
    scope_reports = forms.BooleanField(
        label=_("Overnight Report Download"), required=False, initial=True
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("role") == Role.DA and not cleaned.get("da_duty"):
            self.add_error("da_duty", _("Choose the DA's duty: maker, checker or both."))
        if cleaned.get("role") == Role.USER:
            cleaned["da_duty"] = ""
        return cleaned


class UserFilterForm(forms.Form):
    filter = forms.ChoiceField(
        label=_("Show"),
        required=False,
        choices=[
            ("", _("All users")),
            ("needs_email", _("Needs an email")),
            ("not_set_up", _("2FA not set up")),
            ("suspended", _("Suspended")),
            ("das", _("DAs")),
        ],
    )
    q = forms.CharField(label=_("Login ID or email"), required=False, max_length=254)


class AuditFilterForm(forms.Form):
    user = forms.CharField(label=_("Login ID"), required=False, max_length=64)
    action = forms.ChoiceField(
        label=_("Action"), required=False, choices=[("", _("All actions")), *AuditAction.choices]
    )
    date_from = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
