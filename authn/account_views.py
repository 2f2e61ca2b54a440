"""Account security: a logged-in user changes their own password, OTP channel, backup codes.

Only the session's own user is ever read or changed: no page takes a user, a device or a
firm from the request. The pages are for participants' users logged in by OTP, or by
smartcard while their terminal takes cards, who have set up 2FA; a user who has not sets it
up through their activation link instead.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST
from django_otp.models import Device
from django_otp.plugins.otp_totp.models import TOTPDevice

from authn import account, sessions
from authn.decorators import session_allows
from authn.devices import primary_device
from authn.display import (
    backup_codes_file,
    challenge_announce,
    code_error,
    mask_email,
    totp_enrolment,
)
from authn.entries import home_url, login_url
from authn.forms import ChannelChangeForm, CurrentCodeForm, PasswordChangeForm, SetupVerifyForm
from authn.models import EmailOTPDevice
from authn.otp import email_otp_challenge
from participants.models import Scope, User

View = Callable[[HttpRequest], HttpResponse]


def _account_user(request: HttpRequest) -> User | HttpResponse:
    """Return the session's user if it may use these pages, or where it goes instead."""
    user = request.user
    if not user.is_authenticated:
        return redirect("authn:landing")
    if not isinstance(user, User) or user.participant is None:
        # Exchange staff manage their credentials through the admin, not here.
        raise Http404
    held = sessions.session_scopes(request)
    if not any(session_allows(request, scope) for scope in held):
        # A card session after its terminal stopped taking cards, or an OTP session whose
        # device a DA reset: log in again, then come back.
        scope = held[0] if held else Scope.ONLINE
        query = urlencode({"next": request.get_full_path()})
        return HttpResponseRedirect(f"{login_url(scope, user.participant.terminal)}?{query}")
    return user


def _for_user(view: Callable[[HttpRequest, User], HttpResponse]) -> View:
    """Run `view` with the session's user, if it may use these pages; else go where it goes."""

    @functools.wraps(view)
    def page(request: HttpRequest) -> HttpResponse:
        user = _account_user(request)
        if isinstance(user, HttpResponse):
            return user
        return view(request, user)

    return page


def _for_device(view: Callable[[HttpRequest, User, Device], HttpResponse]) -> View:
    """Run `view` with the session's user and their OTP channel; a user without one has not
    set up 2FA, and has nothing to change here."""

    @functools.wraps(view)
    def page(request: HttpRequest, user: User) -> HttpResponse:
        device = primary_device(user)
        if device is None:
            return render(
                request,
                "authn/account_unavailable.html",
                {"terminal": user.participant.terminal if user.participant else None},
                status=403,
            )
        return view(request, user, device)

    return _for_user(page)


def _home_url(request: HttpRequest) -> str:
    """The page of the functions this session logged in for."""
    held = [scope for scope in sessions.session_scopes(request) if session_allows(request, scope)]
    return home_url(held[0]) if held else reverse("authn:landing")


def _page(
    request: HttpRequest, template: str, user: User, device: Device, **extra: Any
) -> HttpResponse:
    """Render an account page, which says whose account it is and where its codes come from."""
    channel = account.channel_of(device)
    context = {
        "account_user": user,
        "channel": channel,
        "masked_email": mask_email(user.email) if channel == "email" else "",
        "home": _home_url(request),
        **extra,
    }
    return render(request, template, context)


def _posted_change(
    request: HttpRequest,
    form: forms.Form,
    change: Callable[[dict[str, Any]], account.ChangeResult | None],
) -> account.ChangeResult | None:
    """Make the change a valid posted `form` asks for, and return it once done.

    None when nothing was posted, or the change was refused: then the form says why (a
    refused code here; `change` may have put another refusal on the form and returned None).
    """
    if request.method != "POST" or not form.is_valid():
        return None
    result = change(form.cleaned_data)
    if result is None:
        return None
    if not result.ok:
        code_error(form, result.refusal, result.locked_until)
        return None
    return result


@never_cache
@_for_device
def account_home(request: HttpRequest, user: User, device: Device) -> HttpResponse:
    """The account security page: the three changes, and the channel codes come from."""
    return _page(request, "authn/account.html", user, device)


# Which account page a code asked for by email returns to.
CODE_RETURNS = {
    "password": "authn:account-password",
    "channel": "authn:account-channel",
    "backup-codes": "authn:account-backup-codes",
}


@require_POST
@_for_user
def account_code_send(request: HttpRequest, user: User) -> HttpResponse:
    """Email the user a code to confirm a change with, when their codes come by email."""
    challenge_announce(request, account.reauth_code_send(request=request, user=user))
    return redirect(CODE_RETURNS.get(request.POST.get("back", ""), "authn:account"))


@sensitive_post_parameters("password1", "password2", "code")
@never_cache
@_for_device
def account_password(request: HttpRequest, user: User, device: Device) -> HttpResponse:
    form = PasswordChangeForm(request.POST or None)

    def change(data: dict[str, Any]) -> account.ChangeResult | None:
        try:
            return account.password_change(
                request=request,
                user=user,
                current_otp=data["code"],
                new_password=data["password1"],
            )
        except ValidationError as refused:
            form.add_error("password1", refused)
            return None

    if _posted_change(request, form, change) is not None:
        messages.success(
            request, _("Your password has been changed. A notice is on its way to your email.")
        )
        return redirect("authn:account")
    rules = password_validation.password_validators_help_texts()
    return _page(
        request,
        "authn/account_password.html",
        user,
        device,
        form=form,
        rules=rules,
        back="password",
    )


@sensitive_post_parameters("code")
@never_cache
@_for_device
def account_channel(request: HttpRequest, user: User, device: Device) -> HttpResponse:
    """Step one of a channel change: the new channel, and a code from the current one."""
    form = ChannelChangeForm(request.POST or None, current=account.channel_of(device))
    started = _posted_change(
        request,
        form,
        lambda data: account.channel_change_start(
            request=request, user=user, current_otp=data["code"], channel=data["channel"]
        ),
    )
    if started is not None:
        return redirect("authn:account-channel-verify")
    return _page(request, "authn/account_channel.html", user, device, form=form, back="channel")


def _channel_again(request: HttpRequest) -> HttpResponse:
    messages.info(request, _("Please choose your new channel again."))
    return redirect("authn:account-channel")


@sensitive_post_parameters("code")
@never_cache
@_for_device
def account_channel_verify(request: HttpRequest, user: User, device: Device) -> HttpResponse:
    """Step two of a channel change: a code from the new channel, which then replaces the old."""
    new = account.channel_change_device(request, user=user)
    if new is None:
        return _channel_again(request)
    form = SetupVerifyForm(request.POST or None)
    try:
        done = _posted_change(
            request,
            form,
            lambda data: account.channel_change_confirm(
                request=request, user=user, token=data["code"]
            ),
        )
    except account.ChannelChangeGone:
        return _channel_again(request)
    if done is not None:
        messages.success(
            request,
            _(
                "Your one-time passwords now come from your new channel; the old one no "
                "longer works. A notice is on its way to your email."
            ),
        )
        return redirect("authn:account")
    extra: dict[str, Any] = {"form": form, "new_channel": account.channel_of(new)}
    if isinstance(new, TOTPDevice):
        extra.update(totp_enrolment(new))
    else:
        extra.update(new_masked_email=mask_email(user.email))
    return _page(request, "authn/account_channel_verify.html", user, device, **extra)


@require_POST
@_for_user
def account_channel_resend(request: HttpRequest, user: User) -> HttpResponse:
    """Email a new code for the new email channel, unless one was sent a moment ago."""
    new = account.channel_change_device(request, user=user)
    if isinstance(new, EmailOTPDevice):
        challenge_announce(request, email_otp_challenge(device_id=new.pk, request=request))
    return redirect("authn:account-channel-verify")


@sensitive_post_parameters("code")
@never_cache
@_for_device
def account_backup_codes(request: HttpRequest, user: User, device: Device) -> HttpResponse:
    form = CurrentCodeForm(request.POST or None)
    renewed = _posted_change(
        request,
        form,
        lambda data: account.backup_codes_renew(
            request=request, user=user, current_otp=data["code"]
        ),
    )
    if renewed is not None:
        return redirect("authn:account-backup-codes-done")
    return _page(
        request, "authn/account_backup_codes.html", user, device, form=form, back="backup-codes"
    )


@never_cache
@_for_user
def account_backup_codes_done(request: HttpRequest, user: User) -> HttpResponse:
    """Show the new backup codes until the user says they kept them."""
    shown = account.renewed_codes(request, user=user) or {}
    return render(
        request,
        "authn/account_backup_codes_done.html",
        {
            "codes": shown.get("codes"),
            "kept": bool(shown) and not shown.get("codes"),
            "home": _home_url(request),
        },
    )


@never_cache
@_for_user
def account_backup_codes_download(request: HttpRequest, user: User) -> HttpResponse:
    """Give the new backup codes still on show as a text file."""
    codes = (account.renewed_codes(request, user=user) or {}).get("codes")
    if not codes:
        raise Http404
    return backup_codes_file(login_id=user.login_id, codes=codes)


@require_POST
@_for_user
def account_backup_codes_kept(request: HttpRequest, user: User) -> HttpResponse:
    """Forget the new backup codes: the user has kept them."""
    account.renewed_codes_kept(request)
    return redirect("authn:account-backup-codes-done")
