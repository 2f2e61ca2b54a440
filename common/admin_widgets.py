"""Django admin widgets with the accessible names Django's own leave out."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.widgets import AdminSplitDateTime
from django.db import models


class LabelledSplitDateTime(AdminSplitDateTime):
    """The admin's date and time boxes, each named for a screen reader.

    Django writes "Date:" and "Time:" as bare text beside the two boxes, which labels
    neither of them (axe: "Form elements must have labels", critical).
    """

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        date, time = context["widget"]["subwidgets"]
        date["attrs"]["aria-label"] = str(context["date_label"]).rstrip(":：")
        time["attrs"]["aria-label"] = str(context["time_label"]).rstrip(":：")
        return context


# ModelAdmin.formfield_overrides for every admin with an editable date and time.
DATETIME_OVERRIDES: dict[type[models.Field[Any, Any]], dict[str, Any]] = {
    models.DateTimeField: {"widget": LabelledSplitDateTime},
}
