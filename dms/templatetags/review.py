"""{{ address|reviewed_email }}: an email as a DA should review it (see common.idn)."""

from __future__ import annotations

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from common.idn import review_email

register = template.Library()


@register.filter
def reviewed_email(address: str) -> SafeString | str:
    if not address:
        return ""
    reviewed = review_email(address)
    if not reviewed.internationalised:
        return address
    html = format_html(
        '<span class="email-review">{} <span class="punycode">({})</span></span>',
        reviewed.address,
        reviewed.ascii,
    )
    if reviewed.mixed_scripts:
        html = format_html(
            '{} <strong class="badge warning">{}</strong>',
            html,
            _("Look-alike domain: it mixes scripts (%(scripts)s). Check it letter by letter.")
            % {"scripts": ", ".join(script.title() for script in reviewed.scripts)},
        )
    return html
