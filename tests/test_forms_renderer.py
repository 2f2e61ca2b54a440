"""The direct form renderer (common.forms) writes exactly what Django's templates write."""

from __future__ import annotations

import pytest
from django import forms
from django.forms.renderers import DjangoTemplates
from django.utils import translation

from authn.forms import OtpForm, PasswordLoginForm, SmartcardLoginForm
from common.forms import DirectRenderer
from dms.forms import AuditFilterForm, EmailRequestForm, RejectForm, UserFilterForm


class EveryInput(forms.Form):
    text = forms.CharField(label='Name <b>&"quoted"', help_text="Help & more", max_length=5)
    email = forms.EmailField(required=False)
    password = forms.CharField(widget=forms.PasswordInput(render_value=True))
    number = forms.IntegerField(min_value=1)
    day = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    hidden = forms.CharField(widget=forms.HiddenInput, required=False)
    flags = forms.CharField(widget=forms.TextInput(attrs={"autofocus": True, "disabled": False}))
    choice = forms.ChoiceField(choices=[("a", "A"), ("b", "<B>")])
    agree = forms.BooleanField(required=False)


FORMS = [
    EveryInput,
    PasswordLoginForm,
    SmartcardLoginForm,
    OtpForm,
    EmailRequestForm,
    RejectForm,
    UserFilterForm,
    AuditFilterForm,
]
DATA = [
    None,
    {},
    {
        "text": 'x"><script>alert(1)</script>',
        "email": "not an email",
        "password": "p&ss",
        "number": "0",
        "day": "2026-02-30",
        "login_id": "B01234U01 ",
        "code": "12 34 56",
        "password1": "a",
        "password2": "b",
        "user": "<x>",
        "q": "'",
    },
]


def _render(form_class: type[forms.Form], data: dict[str, str] | None, renderer) -> str:
    form = form_class(data=data, renderer=renderer)
    form.is_valid() if data is not None else None
    fields = "".join(
        f"{field.label_tag()}|{field}|{field.as_hidden()}|{field.errors}" for field in form
    )
    return fields + str(form)


@pytest.mark.parametrize("form_class", FORMS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("data", DATA, ids=["unbound", "empty", "bad"])
@pytest.mark.parametrize("language", ["en", "zh-hant"])
def test_direct_renderer_writes_what_the_templates_write(form_class, data, language):
    with translation.override(language):
        expected = _render(form_class, data, DjangoTemplates())
        written = _render(form_class, data, DirectRenderer())
    assert written == expected
    assert "<input" in written


def test_the_portal_uses_it(settings):
    from django.forms.renderers import get_default_renderer

    assert settings.FORM_RENDERER == "common.forms.DirectRenderer"
    assert isinstance(get_default_renderer(), DirectRenderer)
