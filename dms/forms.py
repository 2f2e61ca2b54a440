"""Forms of the DMS pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from audit.models import AuditAction
from audit.selectors import TrailFilters
from participants.models import (
    DaDuty,
    Participant,
    Role,
    in_firm_namespace,
    validate_login_id,
)


class EmailRequestForm(forms.Form):
    email = forms.EmailField(label=_("Designated email address"), max_length=254)


class RejectForm(forms.Form):
    reason = forms.CharField(label=_("Reason (shown to the maker)"), max_length=500)


class UserCreateForm(forms.Form):
    login_id = forms.CharField(
        label=_("Login ID"),
        max_length=32,
        validators=[validate_login_id],
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

    def __init__(self, *args: Any, participant: Participant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.participant = participant
        self.fields["login_id"].help_text = _(
            "Begins with your firm's participant ID, %(prefix)s (for example %(prefix)sU07)."
        ) % {"prefix": participant.participant_id}

    def clean_login_id(self) -> str:
        login_id: str = self.cleaned_data["login_id"]
        if not in_firm_namespace(login_id, self.participant):
            raise forms.ValidationError(
                _("A new login ID begins with your firm's participant ID, %(prefix)s.")
                % {"prefix": self.participant.participant_id}
            )
        return login_id

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
    q = forms.CharField(
        label=_("Login ID or email"),
        required=False,
        max_length=254,
        help_text=_("Its first letters, in any case: B10000 or mary."),
    )


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

    def filters(self) -> TrailFilters:
        """The filters chosen; none at all while any of them is invalid (shown as an error)."""
        if not self.is_valid():
            return TrailFilters()
        data = self.cleaned_data
        return TrailFilters(
            login_id=data["user"].strip(),
            action=data["action"],
            date_from=data["date_from"],
            date_to=data["date_to"],
        )
