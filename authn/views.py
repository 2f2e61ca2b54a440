"""Landing pages, logins by OTP and by smartcard, logout, activation and 2FA setup."""

from __future__ import annotations

import datetime as dt
import functools
import math
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import password_validation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import get_script_prefix, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditAction, Outcome
from audit.services import audit_record
from authn import activation, credentials, login, otp, rehearsal, sessions, setup
from authn.decorators import session_in_transaction
from authn.display import (
    backup_codes_file,
    challenge_announce,
    code_error,
    mask_email,
    totp_enrolment,
)
from authn.entries import (
    LABEL_OTP_DMS,
    LABEL_OTP_ONLINE,
    LABEL_OTP_REPORTS,
    OTP_SCOPES,
    SMARTCARD_ENTRIES,
    entries_for,
    home_url,
    landing_url,
)
from authn.forms import (
    ChannelForm,
    DemoSmartcardLoginForm,
    OtpForm,
    PasswordLoginForm,
    SetupPasswordForm,
    SetupVerifyForm,
    SmartcardLoginForm,
)
from authn.models import EmailOTPDevice
from authn.smartcard import (
    CertificateRefused,
    card_for_certificate,
    certificate_from_request,
    smartcard_password_check,
)
from common.pages import shared_render
from migration import phases
from migration.models import DataCentre
from participants.models import Scope, Smartcard, Terminal, User

GENERIC_LOGIN_ERROR = gettext_lazy(
    "Login failed. Check your login ID and password. After repeated failures you must wait "
    "a few minutes before trying again."
)

CARD_MESSAGES = {
    "card_untrusted": gettext_lazy(
        "Your smartcard could not be read through the secure connection."
    ),
    "card_not_verified": gettext_lazy("Your smartcard certificate could not be verified."),
    "card_missing": gettext_lazy("No smartcard was presented. Insert your card and try again."),
    "card_unreadable": gettext_lazy("Your smartcard certificate could not be read."),
    "card_unknown": gettext_lazy("This smartcard is not registered for terminal access."),
    "card_expired": gettext_lazy("This smartcard has expired."),
    "card_not_yet_valid": gettext_lazy("This smartcard is not valid yet."),
    "card_revoked": gettext_lazy("This smartcard has been revoked."),
}


def _terminal(slug: str) -> Terminal:
    terminal = phases.entry_terminal(slug)
    if terminal is None:
        raise Http404
    return terminal


def _landing(request: HttpRequest, console: str) -> HttpResponse:
    terminals = list(
        phases.with_connectivity_session(Terminal.objects.select_related("programme")).order_by(
            "code"
        )
    )
    upcoming = phases.next_milestones(terminals)
    sections = [
        entries_for(terminal, console=console, next_milestone=upcoming.get(terminal.pk))
        for terminal in terminals
    ]
    return render(request, "authn/landing.html", {"sections": sections, "console": console})


def landing(request: HttpRequest) -> HttpResponse:
    """The CCASS/CCMS landing page: the login entries each terminal's phase allows."""
    return _landing(request, "functions")


def dms_landing(request: HttpRequest) -> HttpResponse:
    """The Security Management Functions landing page, or the DMS home for a DMS session."""
    from authn.decorators import session_allows

    if session_allows(request, Scope.DMS):
        return redirect("dms:home")
    return _landing(request, "dms")


def _phase_closed(request: HttpRequest, terminal: Terminal, *, method: str) -> HttpResponse:
    return render(
        request,
        "authn/phase_closed.html",
        {
            "terminal": terminal,
            "phase": phases.terminal_phase(terminal),
            "launch_at": phases.launch_planned_at(terminal),
            "method": method,
        },
        status=403,
    )


def _safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


def _login_context(
    request: HttpRequest, *, scope: str, terminal: Terminal | None, **extra: Any
) -> dict[str, Any]:
    return {
        "scope": Scope(scope),
        "terminal": terminal,
        "next": request.POST.get("next") or request.GET.get("next") or "",
        **extra,
    }


def _otp_routes(
    scope: str, terminal: Terminal | None, slug: str | None = None
) -> tuple[str, str, str]:
    slug = terminal.slug if terminal is not None else slug
    return _otp_paths(scope, slug, get_script_prefix())


@functools.cache
def _otp_paths(scope: str, slug: str | None, _prefix: str) -> tuple[str, str, str]:
    """The three paths of an OTP entry, reversed once a process (each request of every
    login asks for them); the script prefix is part of the key, as reverse() depends on it."""
    if slug is None:
        return (
            reverse("authn:staff-login"),
            reverse("authn:staff-login-verify"),
            reverse("authn:staff-login-resend"),
        )
    kwargs = {"terminal": slug, "scope": scope}
    return (
        reverse("authn:otp-login", kwargs=kwargs),
        reverse("authn:otp-login-verify", kwargs=kwargs),
        reverse("authn:otp-login-resend", kwargs=kwargs),
    )


def _resolve_otp_entry(terminal_slug: str | None, scope: str) -> Terminal | None:
    if terminal_slug is None:
        if scope != Scope.STAFF:
            raise Http404
        return None
    if scope not in OTP_SCOPES:
        raise Http404
    return _terminal(terminal_slug)


@sensitive_post_parameters("password")
@never_cache
@session_in_transaction
def otp_login(request: HttpRequest, scope: str, terminal: str | None = None) -> HttpResponse:
    """Step one of a login with OTP: login ID and regular password."""
    term = _resolve_otp_entry(terminal, scope)
    if term is not None and not phases.otp_login_open(term):
        return _phase_closed(request, term, method="otp")
    login_path, verify_path, _resend = _otp_routes(scope, term)
    form = PasswordLoginForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        result = credentials.password_check(
            request=request,
            login_id=form.cleaned_data["login_id"],
            password=form.cleaned_data["password"],
            scopes=[scope],
            terminal=term,
            method=sessions.Method.PASSWORD,
        )
        gate = (
            rehearsal.login_gate(
                user=result.user, terminal=term, method=sessions.Method.OTP, scopes=[scope]
            )
            if result.ok and result.user is not None
            else None
        )
        if gate is not None and gate.refusal:
            form.add_error(None, gate.refusal)
        elif result.ok and result.user is not None:
            # The user's channel came with the user (credentials' lookup annotates it).
            channel = otp.primary_channel(result.user)
            if channel is None:
                form.add_error(
                    None,
                    _(
                        "You have not set up two-factor authentication yet. Use the link in your "
                        "activation email, or ask your Delegated Administrator to resend it."
                    ),
                )
            else:
                terminal_code = term.code if term else None
                login.login_pending_start(
                    request,
                    user=result.user,
                    scope=scope,
                    terminal=terminal_code,
                    channel=channel,
                    connectivity_session=gate.session.pk if gate is not None else None,
                )
                kind, device_id = channel
                if kind == "email":
                    challenge = otp.email_otp_challenge(
                        device_id=device_id, request=request, scope=scope
                    )
                    login.login_pending_code_sent(request, sent=challenge.sent)
                nxt = request.POST.get("next")
                query = "?" + urlencode({"next": nxt}) if nxt else ""
                return HttpResponseRedirect(verify_path + query)
        else:
            form.add_error(None, GENERIC_LOGIN_ERROR)
    # The form as first shown is the same for everyone at this entry: rendered once.
    return shared_render(
        request,
        "authn/login_password.html",
        _login_context(request, scope=scope, terminal=term, form=form, action=login_path),
        depends_on=term,
    )


@never_cache
@session_in_transaction
def otp_login_verify(request: HttpRequest, scope: str, terminal: str | None = None) -> HttpResponse:
    """Step two of a login with OTP: the code from the user's channel, or a backup code."""
    if (terminal is None) != (scope == Scope.STAFF):
        raise Http404
    # What the page needs is in the session, from the password step: the user is read
    # only when a code is checked, in the same query as the device (otp.otp_login).
    terminal_code = terminal.upper() if terminal else None
    pending = login.login_pending(request, scope=scope, terminal=terminal_code)
    login_path, verify_path, resend_path = _otp_routes(scope, None, terminal)
    start_over = login_path + _next_query(request)
    if pending is None:
        messages.info(request, _("Please start again with your login ID and password."))
        return HttpResponseRedirect(start_over)
    form = OtpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        result = otp.otp_login(
            request,
            pending=pending,
            token=form.cleaned_data["code"],
            scope=scope,
            terminal=terminal_code,
        )
        if result is None:
            messages.info(request, _("Please start again with your login ID and password."))
            return HttpResponseRedirect(start_over)
        if result.ok:
            if rehearsal.rehearsal_login(request):
                return redirect("authn:connectivity-test")
            return HttpResponseRedirect(_safe_next(request, home_url(scope)))
        code_error(form, result.refusal, result.locked_until)
    resend: dict[str, Any] = {}
    if pending.channel == "email":
        device = EmailOTPDevice.objects.filter(pk=pending.device_id).first()
        if device is not None:
            resend = _resend_context(request, device)
    # The app's code form is the same for everyone at this entry: rendered once. The email
    # one says when the code was sent and when another may be asked for.
    return (shared_render if pending.channel == "app" else render)(
        request,
        "authn/login_otp.html",
        _login_context(
            request,
            scope=scope,
            # Only its name is shown: the code from the URL, with no query.
            terminal=Terminal(code=terminal_code) if terminal_code else None,
            form=form,
            action=verify_path,
            resend_action=resend_path,
            start_over=start_over,
            channel=pending.channel,
            **resend,
        ),
    )


def _next_query(request: HttpRequest) -> str:
    nxt = request.POST.get("next") or request.GET.get("next")
    return "?" + urlencode({"next": nxt}) if nxt else ""


def _resend_context(request: HttpRequest, device: EmailOTPDevice) -> dict[str, Any]:
    """Say whether the code was sent, and when another can be asked for."""
    allowed, data = device.generate_is_allowed()
    next_at = None if allowed else (data or {}).get("next_generation_at")
    context: dict[str, Any] = {"code_sent": login.login_pending_was_code_sent(request)}
    if next_at is not None:
        # django-otp allows the next code only once the cooldown is strictly over.
        wait = max(1, math.floor((next_at - timezone.now()).total_seconds()) + 1)
        context.update(
            resend_wait=wait,
            resend_at=timezone.localtime(timezone.now() + dt.timedelta(seconds=wait)),
            # The countdown's words, one per plural form, for the script to fill in.
            resend_in_one=ngettext("(in %(count)s second)", "(in %(count)s seconds)", 1)
            % {"count": "{n}"},
            resend_in_other=ngettext("(in %(count)s second)", "(in %(count)s seconds)", 2)
            % {"count": "{n}"},
        )
    return context


@require_POST
def otp_login_resend(request: HttpRequest, scope: str, terminal: str | None = None) -> HttpResponse:
    """Email a new code, unless one was sent less than a minute ago."""
    term = _resolve_otp_entry(terminal, scope)
    login_path, verify_path, _resend = _otp_routes(scope, term)
    pending = login.login_pending(request, scope=scope, terminal=term.code if term else None)
    if pending is None:
        return HttpResponseRedirect(login_path + _next_query(request))
    if pending.channel == "email":
        result = otp.email_otp_challenge(device_id=pending.device_id, request=request, scope=scope)
        # The code page says when no code was sent, and when the next one can be asked for.
        login.login_pending_code_sent(request, sent=result.sent)
        if result.sent:
            messages.success(request, _("A new code is on its way to your email."))
    return HttpResponseRedirect(verify_path + _next_query(request))


@require_POST
def logout(request: HttpRequest) -> HttpResponse:
    scopes = sessions.session_scopes(request)
    login.logout_complete(request)
    messages.info(request, _("You have logged out."))
    return HttpResponseRedirect(landing_url(scopes[0] if scopes else ""))


@never_cache
def connectivity_test(request: HttpRequest) -> HttpResponse:
    """What a login made in a connectivity-test session sees: the check is done."""
    marker = rehearsal.rehearsal_login(request)
    if marker is None or not request.user.is_authenticated:
        return redirect("authn:landing")
    return render(
        request,
        "authn/connectivity_test.html",
        {
            "session_name": marker["name"],
            "data_centre": DataCentre(marker["data_centre"]).label,
            "terminal": phases.entry_terminal(sessions.session_terminal(request) or ""),
        },
    )


@require_POST
@never_cache
def session_keepalive(request: HttpRequest) -> HttpResponse:
    """Restart a logged-in session's idle clock: the time-out warning's "Stay logged in"."""
    if not request.user.is_authenticated or sessions.AUTH_AT_KEY not in request.session:
        return HttpResponse(status=403)
    # Always written, even within SessionTimeoutMiddleware's slack: the person asked for it.
    sessions.session_touch(request)
    return HttpResponse(status=204)


# Smartcard ------------------------------------------------------------------------------


def _smartcard_entry(terminal_slug: str, entry: str) -> tuple[Terminal, tuple[Scope, ...]]:
    if entry not in SMARTCARD_ENTRIES:
        raise Http404
    return _terminal(terminal_slug), SMARTCARD_ENTRIES[entry]


def _refused_attempt_audit(
    request: HttpRequest, *, method: str, reason: str, user: User | None = None
) -> None:
    """Record a refused smartcard login, if it was one.

    Only an attempt is recorded: a login ID and password posted. Merely opening (or
    reloading, or switching the language of) the refusal page is not a login. Card headers
    the front proxy did not vouch for are recorded whenever they come: they are a forgery.
    """
    if request.method != "POST" and reason != "card_untrusted":
        return
    audit_record(
        action=AuditAction.LOGIN,
        outcome=Outcome.FAILURE,
        request=request,
        user=user,
        login_id=request.POST.get("login_id", "").strip()[:64],
        method=method,
        reason=reason,
    )


def _card_refused(
    request: HttpRequest, terminal: Terminal, reason: str, *, user: User | None = None
) -> HttpResponse:
    _refused_attempt_audit(request, method=sessions.Method.SMARTCARD, reason=reason, user=user)
    return render(
        request,
        "authn/smartcard_refused.html",
        {
            "terminal": terminal,
            "message": CARD_MESSAGES.get(reason, CARD_MESSAGES["card_unreadable"]),
        },
        status=403,
    )


def _smartcard_closed(request: HttpRequest, terminal: Terminal, method: str) -> HttpResponse:
    _refused_attempt_audit(request, method=method, reason=credentials.Refusal.PHASE_CLOSED)
    return _phase_closed(request, terminal, method="smartcard")


def _smartcard_finish(
    request: HttpRequest,
    *,
    form: SmartcardLoginForm,
    card: Smartcard,
    terminal: Terminal,
    scopes: tuple[Scope, ...],
    method: str,
) -> HttpResponse | None:
    result = smartcard_password_check(
        request=request,
        login_id=form.cleaned_data["login_id"],
        password=form.cleaned_data["password"],
        card=card,
        scopes=list(scopes),
        terminal=terminal,
        method=method,
    )
    if not result.ok or result.user is None:
        form.add_error(None, GENERIC_LOGIN_ERROR)
        return None
    granted = [scope for scope in scopes if result.user.has_scope(scope)]
    gate = rehearsal.login_gate(user=result.user, terminal=terminal, method=method, scopes=scopes)
    if gate is not None and gate.refusal:
        form.add_error(None, gate.refusal)
        return None
    login.login_complete(
        request, user=result.user, scopes=granted, method=method, terminal=terminal.code
    )
    if gate is not None:
        rehearsal.rehearsal_login_complete(
            request, session=gate.session, user=result.user, method=method, scopes=granted
        )
        return redirect("authn:connectivity-test")
    return HttpResponseRedirect(_safe_next(request, home_url(granted[0])))


@sensitive_post_parameters("password")
@never_cache
def smartcard_login(request: HttpRequest, terminal: str, entry: str) -> HttpResponse:
    """Login with the smartcard the front proxy verified, and its smartcard password."""
    term, scopes = _smartcard_entry(terminal, entry)
    if not phases.smartcard_login_open(term):
        return _smartcard_closed(request, term, sessions.Method.SMARTCARD)
    try:
        cert = certificate_from_request(request)
        card = card_for_certificate(cert, now=timezone.now())
    except CertificateRefused as refused:
        return _card_refused(request, term, refused.reason)
    form = SmartcardLoginForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        response = _smartcard_finish(
            request,
            form=form,
            card=card,
            terminal=term,
            scopes=scopes,
            method=sessions.Method.SMARTCARD,
        )
        if response is not None:
            return response
    return render(
        request,
        "authn/login_smartcard.html",
        {
            "form": form,
            "terminal": term,
            "entry": entry,
            "card": cert,
            "demo": False,
            "next": request.POST.get("next") or request.GET.get("next") or "",
        },
    )


@sensitive_post_parameters("password")
@never_cache
def smartcard_demo_login(request: HttpRequest, terminal: str, entry: str) -> HttpResponse:
    """A simulated card reader for the demo; it exists only with DEBUG and SMARTCARD_DEMO on."""
    if not (settings.DEBUG and settings.SMARTCARD_DEMO):
        raise Http404
    term, scopes = _smartcard_entry(terminal, entry)
    if not phases.smartcard_login_open(term):
        return _smartcard_closed(request, term, sessions.Method.SMARTCARD_DEMO)
    cards = list(
        Smartcard.objects.filter(user__participant__terminal=term, serial__startswith="DEMO-")
        .select_related("user")
        .order_by("serial")
    )
    choices = [(str(card.pk), f"{card.serial} ({card.user.login_id})") for card in cards]
    form = DemoSmartcardLoginForm(request.POST or None, cards=choices)
    if request.method == "POST" and form.is_valid():
        card = next(card for card in cards if str(card.pk) == form.cleaned_data["card"])
        if not card.is_usable(timezone.now()):
            return _card_refused(
                request, term, "card_revoked" if card.revoked_at else "card_expired", user=card.user
            )
        response = _smartcard_finish(
            request,
            form=form,
            card=card,
            terminal=term,
            scopes=scopes,
            method=sessions.Method.SMARTCARD_DEMO,
        )
        if response is not None:
            return response
    return render(
        request,
        "authn/login_smartcard.html",
        {
            "form": form,
            "terminal": term,
            "entry": entry,
            "card": None,
            "demo": True,
            "next": request.POST.get("next") or request.GET.get("next") or "",
        },
    )


# Activation and 2FA setup ---------------------------------------------------------------


def _setup_not_open(request: HttpRequest, user: User) -> HttpResponse:
    terminal = user.participant.terminal if user.participant else None
    return render(
        request,
        "authn/setup_not_open.html",
        {
            "terminal": terminal,
            "launch_at": phases.launch_planned_at(terminal) if terminal else None,
        },
        status=403,
    )


@sensitive_post_parameters("token")
@never_cache
def activate(request: HttpRequest) -> HttpResponse:
    """Open an activation link.

    The token travels in the link's fragment (`/activate/#<token>`), which browsers never
    send, so it reaches no access log; the page's script posts it. The first post shows
    whose link it is and asks to begin; only "Begin setup" uses the link up, so a mail
    scanner that follows or even runs the link does not burn it.
    """
    if request.method != "POST":
        return render(request, "authn/activate_open.html")
    token = request.POST.get("token", "").strip()
    link = activation.activation_lookup(token=token) if token else None
    now = timezone.now()
    if link is None:
        return render(request, "authn/activation_invalid.html", {"reason": "unknown"}, status=404)
    if not link.is_open(now):
        reason = "used" if link.used_at else "expired"
        return render(request, "authn/activation_invalid.html", {"reason": reason}, status=410)
    if not link.user.is_active:
        return _suspended(request)
    if not phases.setup_open_for(link.user):
        return _setup_not_open(request, link.user)
    if request.POST.get("begin"):
        if activation.activation_consume(token=token, request=request) is None:
            return render(request, "authn/activation_invalid.html", {"reason": "used"}, status=410)
        return redirect("authn:setup-password")
    return render(request, "authn/activate.html", {"activation": link, "token": token})


def _suspended(request: HttpRequest) -> HttpResponse:
    return render(request, "authn/activation_invalid.html", {"reason": "suspended"}, status=403)


def _setup_user_or_redirect(request: HttpRequest) -> User | HttpResponse:
    user = setup.setup_user(request)
    if user is None:
        return render(request, "authn/activation_invalid.html", {"reason": "session"}, status=403)
    if not user.is_active:
        return _suspended(request)
    if not phases.setup_open_for(user):
        return _setup_not_open(request, user)
    return user


@sensitive_post_parameters("password1", "password2")
@never_cache
def setup_password(request: HttpRequest) -> HttpResponse:
    user = _setup_user_or_redirect(request)
    if isinstance(user, HttpResponse):
        return user
    form = SetupPasswordForm(request.POST or None, user=user)
    if request.method == "POST" and form.is_valid():
        setup.setup_password_choose(
            request=request, user=user, password=form.cleaned_data["password1"]
        )
        return redirect("authn:setup-channel")
    rules = password_validation.password_validators_help_texts()
    return render(
        request,
        "authn/setup_password.html",
        {"form": form, "rules": rules, "setup_user": user, "step": 1},
    )


@never_cache
def setup_channel(request: HttpRequest) -> HttpResponse:
    user = _setup_user_or_redirect(request)
    if isinstance(user, HttpResponse):
        return user
    if not (setup.setup_state(request) or {}).get("password_hash"):
        return redirect("authn:setup-password")
    form = ChannelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        setup.setup_channel_choose(request=request, user=user, channel=form.cleaned_data["channel"])
        return redirect("authn:setup-verify")
    return render(
        request, "authn/setup_channel.html", {"form": form, "setup_user": user, "step": 2}
    )


@never_cache
def setup_verify(request: HttpRequest) -> HttpResponse:
    user = _setup_user_or_redirect(request)
    if isinstance(user, HttpResponse):
        return user
    device = setup.setup_device(request, user=user)
    if device is None:
        return redirect("authn:setup-channel")
    form = SetupVerifyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        proof = setup.setup_code_verify(device=device, token=form.cleaned_data["code"])
        if proof.ok and proof.device is not None:
            try:
                setup.setup_complete(request=request, user=user, device=proof.device)
            except setup.UserSuspended:
                return _suspended(request)
            return redirect("authn:setup-done")
        code_error(form, proof.refusal, proof.locked_until)
    context: dict[str, Any] = {"form": form, "setup_user": user, "step": 3}
    if isinstance(device, TOTPDevice):
        context.update(channel="app", **totp_enrolment(device))
    else:
        context.update(channel="email", masked_email=mask_email(user.email))
    return render(request, "authn/setup_verify.html", context)


@require_POST
def setup_resend(request: HttpRequest) -> HttpResponse:
    user = setup.setup_user(request)
    if user is None:
        return redirect("authn:landing")
    device = setup.setup_device(request, user=user)
    if isinstance(device, EmailOTPDevice):
        challenge_announce(request, otp.email_otp_challenge(device_id=device.pk, request=request))
    return redirect("authn:setup-verify")


@never_cache
def setup_done(request: HttpRequest) -> HttpResponse:
    """Show the backup codes until the user says they kept them, then where to log in."""
    shown = setup.setup_finished(request) or {}
    entries = []
    if shown.get("terminal"):
        labels = {
            Scope.ONLINE: LABEL_OTP_ONLINE,
            Scope.REPORTS: LABEL_OTP_REPORTS,
            Scope.DMS: LABEL_OTP_DMS,
        }
        entries = [
            (
                labels[Scope(scope)],
                reverse("authn:otp-login", kwargs={"terminal": shown["terminal"], "scope": scope}),
            )
            for scope in shown.get("scopes", [])
        ]
    return render(
        request,
        "authn/setup_done.html",
        {
            "codes": shown.get("codes"),
            "kept": bool(shown) and not shown.get("codes"),
            "entries": entries,
            "step": 4,
        },
    )


@never_cache
def setup_backup_codes_download(request: HttpRequest) -> HttpResponse:
    """Give the backup codes still on show as a text file."""
    shown = setup.setup_finished(request) or {}
    codes = shown.get("codes")
    if not codes:
        raise Http404
    return backup_codes_file(login_id=shown.get("login_id", ""), codes=codes)


@require_POST
def setup_backup_codes_kept(request: HttpRequest) -> HttpResponse:
    """Forget the backup codes: the user has kept them."""
    setup.backup_codes_kept(request)
    return redirect("authn:setup-done")
