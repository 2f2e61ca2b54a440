"""A form renderer that writes inputs and labels in Python rather than through templates.

Django renders every widget and label through a template of its own (input.html, which
includes attrs.html; label.html, which includes attrs.html): a login page's two fields cost
more than the rest of the page. Those few templates are simple enough to write directly,
with the same escaping; every other template goes to Django's renderer as before.
tests/test_forms_renderer.py holds the output to what the templates give, form by form.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.forms.renderers import DjangoTemplates
from django.utils.html import conditional_escape
from django.utils.safestring import SafeString, mark_safe

# The widgets whose template is input.html, directly or through one include.
INPUT_TEMPLATES = frozenset(
    f"django/forms/widgets/{name}.html"
    for name in (
        "input",
        "text",
        "email",
        "password",
        "number",
        "url",
        "tel",
        "search",
        "date",
        "time",
        "datetime",
        "hidden",
        "color",
    )
)
LABEL_TEMPLATE = "django/forms/label.html"


def _attrs(attrs: Mapping[str, Any]) -> str:
    """attrs.html: ` name="value"` each, a True value bare, a False one left out."""
    parts = []
    for name, value in attrs.items():
        if value is False:
            continue
        if value is True:
            parts.append(f" {conditional_escape(name)}")
        else:
            parts.append(f' {conditional_escape(name)}="{conditional_escape(str(value))}"')
    return "".join(parts)


def render_input(widget: Mapping[str, Any]) -> SafeString:
    value = widget["value"]
    shown = "" if value is None else f' value="{conditional_escape(str(value))}"'
    return mark_safe(  # noqa: S308 - every part is escaped above
        f'<input type="{conditional_escape(widget["type"])}"'
        f' name="{conditional_escape(widget["name"])}"{shown}{_attrs(widget["attrs"])}>'
    )


def render_label(context: Mapping[str, Any]) -> SafeString:
    label = conditional_escape(context["label"])
    if not context.get("use_tag"):
        return mark_safe(str(label).strip())  # noqa: S308 - escaped
    tag = conditional_escape(context["tag"])
    return mark_safe(  # noqa: S308 - escaped
        f"<{tag}{_attrs(context.get('attrs') or {})}>{label}</{tag}>"
    )


class DirectRenderer(DjangoTemplates):
    """Django's default form renderer, with inputs and labels written directly."""

    def render(self, template_name: str, context: dict[str, Any], request: Any = None) -> str:
        if template_name in INPUT_TEMPLATES and isinstance(context.get("widget"), Mapping):
            return render_input(context["widget"])
        if template_name == LABEL_TEMPLATE:
            return render_label(context)
        return super().render(template_name, context, request=request)
