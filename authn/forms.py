"""Forms of the login and 2FA setup pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import password_validation
from django.utils.translation import gettext_lazy as _

from participants.models import User, validate_login_id


class PasswordLoginForm(forms.Form):
    login_id = forms.CharField(
        label=_("Login ID"),
        max_length=64,
        validators=[validate_login_id],
        widget=forms.TextInput(attrs={"autocomplete": "username"}),
    )
    password = forms.CharField(
        label=_("Password"),
        strip=False,
        max_length=256,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class SmartcardLoginForm(forms.Form):
    login_id = forms.CharField(
        label=_("Login ID"),
        max_length=64,
        validators=[validate_login_id],
        widget=forms.TextInput(attrs={"autocomplete": "username"}),
    )
    password = forms.CharField(
        label=_("Smartcard password"),
        strip=False,
        max_length=256,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
    )


class DemoSmartcardLoginForm(SmartcardLoginForm):
    card = forms.ChoiceField(label=_("Demo card"))

    def __init__(self, *args: Any, cards: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        card_field = self.fields["card"]
        assert isinstance(card_field, forms.ChoiceField)
        card_field.choices = cards
        self.order_fields(["card", "login_id", "password"])


class OtpForm(forms.Form):
    code = forms.CharField(
        label=_("Code"),
        max_length=16,
        help_text=_("The 6-digit code from your app or email, or one of your backup codes."),
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True}
        ),
    )


class NewPasswordForm(forms.Form):
    """A new password, typed twice: the two must be the same."""

    password1 = forms.CharField(
        label=_("New password"),
        strip=False,
        max_length=256,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password", "autofocus": True}),
    )
    password2 = forms.CharField(
        label=_("Repeat the new password"),
        strip=False,
        max_length=256,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first and second and first != second:
            self.add_error("password2", _("The two passwords differ."))
        elif first:
            self.new_password_check(first)
        return cleaned

    def new_password_check(self, password: str) -> None:
        """Refuse a new password typed the same twice by an error on password1, if it must be
        refused here: this form refuses none."""


class SetupPasswordForm(NewPasswordForm):
    def __init__(self, *args: Any, user: User, **kwargs: Any) -> None:
        self.user = user
        super().__init__(*args, **kwargs)

    def new_password_check(self, password: str) -> None:
        try:
            password_validation.validate_password(password, self.user)
        except forms.ValidationError as error:
            self.add_error("password1", error)


class ChannelForm(forms.Form):
    channel = forms.ChoiceField(
        label=_("How will you receive your one-time passwords?"),
        choices=[
            ("app", _("An authenticator app on my phone (recommended)")),
            ("email", _("By email to my designated address")),
        ],
        widget=forms.RadioSelect,
    )


class SetupVerifyForm(forms.Form):
    code = forms.CharField(
        label=_("Code"),
        max_length=8,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )


# Account security: changes a logged-in user makes to their own credentials ----------------


def _current_code_field() -> forms.CharField:
    """The code that proves, again, that the person at the keyboard is the user."""
    return forms.CharField(
        label=_("Your one-time password"),
        max_length=16,
        help_text=_(
            "A new 6-digit code from your app or email (not one you have already used), "
            "or one of your backup codes."
        ),
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "text"}),
    )


class PasswordChangeForm(NewPasswordForm):
    # The policy is checked with the change itself (account.password_change), under the
    # user's lock: there it is also checked that the new password is not the current one.
    code = _current_code_field()


class ChannelChangeForm(forms.Form):
    channel = forms.ChoiceField(
        label=_("Where should your one-time passwords come from?"),
        widget=forms.RadioSelect,
    )
    code = _current_code_field()

    def __init__(self, *args: Any, current: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [("app", _("A new authenticator app (a new phone, or a new key for this one)"))]
        if current != "email":
            # The address is the designated one, which only a DA changes: email to email
            # would change nothing.
            choices.append(("email", _("By email to my designated address")))
        channel_field = self.fields["channel"]
        assert isinstance(channel_field, forms.ChoiceField)
        channel_field.choices = choices
        if len(choices) == 1:
            channel_field.initial = choices[0][0]


class CurrentCodeForm(forms.Form):
    code = _current_code_field()
