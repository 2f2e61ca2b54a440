"""Logins (password, OTP, smartcard), activation links and 2FA setup."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Sequence

import django_otp
from django.conf import settings
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django_otp.models import Device
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditAction, Outcome
from audit.services import audit_record
from authn import sessions
from authn.models import (
    ActivationToken,
    BackupCodeDevice,
    EmailOTPDevice,
    LoginThrottle,
)
from authn.secrets import secret_hash, url_token
from participants.models import Scope, Smartcard, Terminal, User

logger = logging.getLogger(__name__)

# A password hashed once at import, so that an unknown login ID costs the same
# hash verification as a known one and response times do not reveal which IDs exist.
_DUMMY_PASSWORD = "not-a-real-password-" + url_token()


class Refusal:
    """Why a login step was refused; the page words the password refusals identically."""

    BAD_CREDENTIALS = "bad_credentials"
    LOCKED = "locked"
    BAD_CODE = "bad_code"
    THROTTLED = "throttled"
    CARD_FOREIGN = "card_foreign"
    PHASE_CLOSED = "phase_closed"


@dataclasses.dataclass(frozen=True)
class LoginResult:
    user: User | None
    refusal: str | None = None
    locked_until: dt.datetime | None = None

    @property
    def ok(self) -> bool:
        return self.refusal is None


def _throttle_key(login_id: str) -> str:
    return login_id.strip().casefold()[:64]


def _burn_hash_time(password: str) -> None:
    make_password(password)


def _user_for_login(login_id: str) -> User | None:
    # The row lock makes parallel guesses at one account wait their turn, so the
    # throttle counts each of them, whether or not its throttle row exists yet.
    return (
        User.objects.select_for_update(of=("self",))
        .select_related("participant__terminal__programme")
        .filter(login_id__iexact=login_id.strip())
        .first()
    )


def _login_allowed(user: User, *, scopes: list[str], terminal: Terminal | None) -> bool:
    """Return whether this (password-verified) user may log in for a scope on the terminal."""
    if not user.is_active or not any(user.has_scope(scope) for scope in scopes):
        return False
    if Scope.STAFF in scopes:
        return terminal is None
    return (
        user.participant is not None
        and terminal is not None
        and (user.participant.terminal_id == terminal.pk)
    )


@transaction.atomic
def credentials_check(
    *,
    request: HttpRequest,
    login_id: str,
    password: str,
    scopes: list[str],
    terminal: Terminal | None,
    method: str,
    check: str = "password",
    smartcard: Smartcard | None = None,
) -> LoginResult:
    """Check a login ID and its password (or smartcard password), under the per-account throttle.

    Unknown IDs, wrong passwords, locked accounts and users who may not use this
    entry all come back as refusals that the page words identically.
    """
    now = timezone.now()
    key = _throttle_key(login_id)
    user = _user_for_login(login_id) if login_id.strip() else None
    # Read only once the user's row is locked. The throttle row exists only once an
    # ID has failed; a clean login does not write it.
    throttle = LoginThrottle.objects.select_for_update().filter(key=key).first()

    def refuse(reason: str, detail: dict[str, str] | None = None) -> LoginResult:
        audit_record(
            action=AuditAction.LOGIN,
            outcome=Outcome.FAILURE,
            request=request,
            user=user,
            login_id=login_id,
            scope=",".join(scopes),
            method=method,
            reason=reason,
            detail=detail,
        )
        return LoginResult(
            user=None, refusal=reason, locked_until=throttle.locked_until if throttle else None
        )

    if throttle is not None and throttle.is_locked(now):
        _burn_hash_time(password)
        return refuse(Refusal.LOCKED)

    reason, detail = Refusal.BAD_CREDENTIALS, None
    if check == "smartcard":
        if smartcard is None:
            raise ValueError("A smartcard login needs the card")
        if user is not None and smartcard.user_id != user.pk:
            # Another person's card with this login ID: recorded, then worded as any failure.
            reason = Refusal.CARD_FOREIGN
            detail = {"card_serial": smartcard.serial, "card_owner": smartcard.user.login_id}
        if user is None or reason == Refusal.CARD_FOREIGN:
            _burn_hash_time(password)
            verified = False
        else:
            verified = smartcard.check_password(password)
    elif user is None:
        _burn_hash_time(password)
        verified = False
    else:
        verified = user.check_password(password)

    if not verified or user is None or not _login_allowed(user, scopes=scopes, terminal=terminal):
        if throttle is None:
            throttle, _created = LoginThrottle.objects.select_for_update().get_or_create(key=key)
        throttle.record_failure(now)
        throttle.save()
        return refuse(reason, detail)

    if throttle is not None and throttle.failures:
        throttle.failures = 0
        throttle.locked_until = None
        throttle.save(update_fields=["failures", "locked_until"])
    return LoginResult(user=user)


def primary_device(user: User) -> Device | None:
    """Return the user's confirmed OTP channel: their authenticator app or their email."""
    totp = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if totp is not None:
        return totp
    return EmailOTPDevice.objects.filter(user=user, confirmed=True).first()


def login_pending_start(
    request: HttpRequest, *, user: User, scope: str, terminal: str | None
) -> None:
    """Remember, between the password step and the OTP step, who passed the first."""
    request.session[sessions.PENDING_KEY] = {
        "user_id": user.pk,
        "scope": scope,
        "terminal": terminal,
        "at": int(time.time()),
    }


def login_pending_user(request: HttpRequest, *, scope: str, terminal: str | None) -> User | None:
    pending = request.session.get(sessions.PENDING_KEY)
    if not pending or pending.get("scope") != scope or pending.get("terminal") != terminal:
        return None
    if time.time() - pending.get("at", 0) > settings.LOGIN_PENDING_TIMEOUT:
        request.session.pop(sessions.PENDING_KEY, None)
        return None
    return (
        User.objects.select_related("participant__terminal__programme")
        .filter(pk=pending["user_id"])
        .first()
    )


@dataclasses.dataclass(frozen=True)
class ChallengeResult:
    sent: bool
    next_allowed_at: dt.datetime | None = None


@transaction.atomic
def email_otp_challenge(
    *, device: EmailOTPDevice, request: HttpRequest | None, scope: str = ""
) -> ChallengeResult:
    """Have a fresh code emailed to the device's user, unless the resend cooldown is running."""
    from authn.tasks import email_otp_deliver

    device = (
        EmailOTPDevice.objects.select_for_update(of=("self",))
        .select_related("user")
        .get(pk=device.pk)
    )
    allowed, data = device.generate_is_allowed()
    if not allowed:
        return ChallengeResult(sent=False, next_allowed_at=(data or {}).get("next_generation_at"))
    device.cooldown_set(commit=False)
    device.save(update_fields=["last_generated_timestamp"])
    audit_record(
        action=AuditAction.OTP_CHALLENGE,
        outcome=Outcome.SUCCESS,
        request=request,
        user=device.user,
        scope=scope,
        method=sessions.Method.OTP,
    )
    device_id = device.pk
    transaction.on_commit(lambda: email_otp_deliver.delay(device_id))
    return ChallengeResult(sent=True)


def email_otp_send(*, device_id: int) -> None:
    """Generate the code and mail it (run by the worker, so the code never enters the broker)."""
    from ccass.mail import send_templated

    with transaction.atomic():
        device = (
            EmailOTPDevice.objects.select_for_update(of=("self",))
            .select_related("user")
            .get(pk=device_id)
        )
        token = device.issue_token()
        address = device.user.email
    minutes = settings.OTP_EMAIL_TOKEN_VALIDITY // 60
    send_templated(
        "otp-code", to=[address], context={"code": token, "minutes": minutes, "user": device.user}
    )


def _is_numeric_code(token: str) -> bool:
    return token.isdigit() and len(token) in (6, 8)


@dataclasses.dataclass(frozen=True)
class OtpResult:
    device: Device | None
    refusal: str | None = None
    locked_until: dt.datetime | None = None

    @property
    def ok(self) -> bool:
        return self.refusal is None


@transaction.atomic(savepoint=False)
def otp_verify(*, user: User, token: str) -> OtpResult:
    """Verify a code from the user's OTP channel, or a backup code, consuming it.

    The device row is locked while it is checked so that two requests racing
    with one code cannot both succeed.
    """
    token = token.strip().replace(" ", "")
    device: Device | None
    if _is_numeric_code(token):
        device = (
            TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True).first()
            or EmailOTPDevice.objects.select_for_update().filter(user=user, confirmed=True).first()
        )
    else:
        device = (
            BackupCodeDevice.objects.select_for_update().filter(user=user, confirmed=True).first()
        )
    if device is None:
        return OtpResult(device=None, refusal=Refusal.BAD_CODE)
    allowed, data = device.verify_is_allowed()
    if not allowed:
        return OtpResult(
            device=None, refusal=Refusal.THROTTLED, locked_until=(data or {}).get("locked_until")
        )
    if device.verify_token(token):
        return OtpResult(device=device)
    return OtpResult(device=None, refusal=Refusal.BAD_CODE)


def login_complete(
    request: HttpRequest,
    *,
    user: User,
    scopes: Sequence[str],
    method: str,
    terminal: str | None,
    device: Device | None = None,
) -> None:
    """Log the user in for the scopes: a new session key, bound to scope, method and terminal."""
    request.session.pop(sessions.PENDING_KEY, None)
    # auth.login cycles the session key, so a key fixed before login is useless after it.
    auth_login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    if device is not None:
        django_otp.login(request, device)
    sessions.bind_session(request, scopes=scopes, method=method, terminal=terminal)
    # One write for both; Django's own update_last_login receiver is disconnected in
    # ParticipantsConfig.ready() so that a login does not update the user row twice.
    user.last_login = timezone.now()
    user.last_login_method = method
    User.objects.filter(pk=user.pk).update(
        last_login=user.last_login, last_login_method=user.last_login_method
    )
    audit_record(
        action=AuditAction.LOGIN,
        outcome=Outcome.SUCCESS,
        request=request,
        user=user,
        scope=",".join(scopes),
        method=method,
    )


@transaction.atomic
def otp_login(
    request: HttpRequest, *, user: User, token: str, scope: str, terminal: str | None
) -> OtpResult:
    """Check the code and log the user in, in one transaction: the code is used up only
    by a login that is recorded, and a failure is audited."""
    result = otp_verify(user=user, token=token)
    if result.ok and result.device is not None:
        method = (
            sessions.Method.BACKUP_CODE
            if isinstance(result.device, BackupCodeDevice)
            else sessions.Method.OTP
        )
        login_complete(
            request,
            user=user,
            scopes=[scope],
            method=method,
            terminal=terminal,
            device=result.device,
        )
    else:
        audit_record(
            action=AuditAction.LOGIN,
            outcome=Outcome.FAILURE,
            request=request,
            user=user,
            scope=scope,
            method=sessions.Method.OTP,
            reason=result.refusal or "",
        )
    return result


def logout_complete(request: HttpRequest, *, action: str = AuditAction.LOGOUT) -> None:
    user = request.user if request.user.is_authenticated else None
    if isinstance(user, User):
        audit_record(
            action=action,
            outcome=Outcome.SUCCESS,
            request=request,
            user=user,
            scope=",".join(sessions.session_scopes(request)),
            method=sessions.session_method(request),
        )
    auth_logout(request)


# Activation and 2FA setup -------------------------------------------------------------


def setup_open_for(user: User) -> bool:
    """Return whether 2FA setup is open for the user under their terminal's phase."""
    if user.participant is None:
        return False
    programme = getattr(user.participant.terminal, "programme", None)
    return programme is not None and programme.current_phase.allows_2fa_setup


@transaction.atomic
def activation_send(
    *, user: User, acting_user: User | None, request: HttpRequest | None = None
) -> None:
    """Have an activation email sent to the user's designated address."""
    from authn.tasks import activation_deliver

    if not user.has_registered_email():
        raise ValueError("The user has no designated email address")
    audit_record(
        action=AuditAction.ACTIVATION_SENT,
        outcome=Outcome.SUCCESS,
        request=request,
        user=user,
        actor=acting_user,
    )
    user_id = user.pk
    transaction.on_commit(lambda: activation_deliver.delay(user_id))


def activation_issue(*, user: User) -> str:
    """Create a fresh activation link for the user, retiring older ones, and return its token."""
    now = timezone.now()
    token = url_token()
    with transaction.atomic():
        ActivationToken.objects.filter(user=user).open(now).update(revoked_at=now)
        ActivationToken.objects.create(
            user=user,
            token_hash=secret_hash("activation", token),
            created_at=now,
            expires_at=now + dt.timedelta(hours=settings.ACTIVATION_LINK_HOURS),
        )
    return token


def activation_email_send(*, user_id: int) -> None:
    """Issue a link and mail it (run by the worker, so the link never enters the broker)."""
    from django.urls import reverse

    from ccass.mail import send_templated

    user = User.objects.select_related("participant__terminal").get(pk=user_id)
    token = activation_issue(user=user)
    link = settings.SITE_URL + reverse("authn:activate", kwargs={"token": token})
    send_templated(
        "activation",
        to=[user.email],
        context={
            "user": user,
            "link": link,
            "hours": settings.ACTIVATION_LINK_HOURS,
            "terminal": user.participant.terminal if user.participant else None,
        },
    )


def activation_lookup(*, token: str) -> ActivationToken | None:
    return (
        ActivationToken.objects.select_related("user__participant__terminal__programme")
        .filter(token_hash=secret_hash("activation", token))
        .first()
    )


@transaction.atomic
def activation_consume(*, token: str, request: HttpRequest) -> ActivationToken | None:
    """Use up an activation link and bind 2FA setup to this browser session."""
    activation = activation_lookup(token=token)
    if activation is None:
        return None
    activation = ActivationToken.objects.select_for_update().get(pk=activation.pk)
    if not activation.is_open(timezone.now()):
        return None
    activation.used_at = timezone.now()
    activation.save(update_fields=["used_at"])
    # A fresh session key: nothing from before the link was opened carries over.
    request.session.cycle_key()
    request.session[sessions.SETUP_KEY] = {
        "user_id": activation.user_id,
        "activation_id": activation.pk,
        "at": int(time.time()),
    }
    audit_record(
        action=AuditAction.ACTIVATION_OPENED,
        outcome=Outcome.SUCCESS,
        request=request,
        user=activation.user,
    )
    return activation


def setup_state(request: HttpRequest) -> dict[str, object] | None:
    state = request.session.get(sessions.SETUP_KEY)
    if not state:
        return None
    if time.time() - int(state.get("at", 0)) > settings.SETUP_SESSION_SECONDS:
        request.session.pop(sessions.SETUP_KEY, None)
        return None
    return dict(state)


def setup_user(request: HttpRequest) -> User | None:
    state = setup_state(request)
    if state is None:
        return None
    return (
        User.objects.select_related("participant__terminal__programme")
        .filter(pk=state["user_id"])
        .first()
    )


def _setup_update(request: HttpRequest, **changes: object) -> None:
    state = request.session[sessions.SETUP_KEY]
    state.update(changes)
    request.session[sessions.SETUP_KEY] = state


def setup_password_choose(*, request: HttpRequest, user: User, password: str) -> None:
    """Hold the chosen password's hash until setup completes; nothing is applied before then."""
    _setup_update(request, password_hash=make_password(password))
    audit_record(
        action=AuditAction.SETUP_PASSWORD, outcome=Outcome.SUCCESS, request=request, user=user
    )


@transaction.atomic
def setup_channel_choose(*, request: HttpRequest, user: User, channel: str) -> Device:
    """Create the unconfirmed device for the chosen channel; it counts only once proven."""
    TOTPDevice.objects.filter(user=user, confirmed=False).delete()
    EmailOTPDevice.objects.filter(user=user, confirmed=False).delete()
    device: Device
    if channel == "app":
        device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    else:
        device = EmailOTPDevice.objects.create(user=user, name="Email", confirmed=False)
    _setup_update(request, device=device.persistent_id, channel=channel)
    audit_record(
        action=AuditAction.SETUP_CHANNEL,
        outcome=Outcome.SUCCESS,
        request=request,
        user=user,
        detail={"channel": channel},
    )
    if isinstance(device, EmailOTPDevice):
        email_otp_challenge(device=device, request=request)
    return device


def setup_device(request: HttpRequest, *, user: User) -> Device | None:
    state = setup_state(request) or {}
    persistent_id = state.get("device")
    if not isinstance(persistent_id, str):
        return None
    device = Device.from_persistent_id(persistent_id)
    if device is None or device.user_id != user.pk:
        return None
    return device


@transaction.atomic
def setup_code_verify(*, device: Device, token: str) -> Device | None:
    """Check a code against the device being set up, and only that one: the new
    channel must be proven with its own code, never with a backup code."""
    locked = type(device).objects.select_for_update().get(pk=device.pk)
    return locked if locked.verify_token(token.strip().replace(" ", "")) else None


@transaction.atomic
def setup_complete(*, request: HttpRequest, user: User, device: Device) -> list[str]:
    """Apply the whole setup at once: password, proven channel, fresh backup codes."""
    state = setup_state(request) or {}
    password_hash = state.get("password_hash")
    if not isinstance(password_hash, str):
        raise ValueError("No password was chosen")
    user = User.objects.select_for_update().get(pk=user.pk)
    user.password = password_hash
    user.two_factor_ready_at = timezone.now()
    user.save(update_fields=["password", "two_factor_ready_at"])
    TOTPDevice.objects.filter(user=user).exclude(
        pk=device.pk if isinstance(device, TOTPDevice) else None
    ).delete()
    EmailOTPDevice.objects.filter(user=user).exclude(
        pk=device.pk if isinstance(device, EmailOTPDevice) else None
    ).delete()
    type(device).objects.filter(pk=device.pk).update(confirmed=True)
    BackupCodeDevice.objects.filter(user=user).delete()
    backup = BackupCodeDevice.objects.create(user=user, name="Backup codes", confirmed=True)
    codes = backup.generate_codes(settings.BACKUP_CODE_COUNT)
    audit_record(
        action=AuditAction.SETUP_COMPLETED,
        outcome=Outcome.SUCCESS,
        request=request,
        user=user,
        detail={"channel": state.get("channel", "")},
    )
    request.session.pop(sessions.SETUP_KEY, None)
    terminal = user.participant.terminal.slug if user.participant else None
    request.session[sessions.BACKUP_CODES_KEY] = {
        "codes": codes,
        "terminal": terminal,
        "scopes": [
            scope for scope in (Scope.ONLINE, Scope.REPORTS, Scope.DMS) if user.has_scope(scope)
        ],
    }
    return codes


@transaction.atomic
def staff_totp_create(*, user: User) -> tuple[TOTPDevice, list[str]]:
    """Give a staff member a confirmed authenticator-app device and fresh backup codes."""
    if not user.is_staff:
        raise ValueError(f"{user.login_id} is not exchange staff")
    TOTPDevice.objects.filter(user=user).delete()
    EmailOTPDevice.objects.filter(user=user).delete()
    device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
    BackupCodeDevice.objects.filter(user=user).delete()
    backup = BackupCodeDevice.objects.create(user=user, name="Backup codes", confirmed=True)
    codes = backup.generate_codes(settings.BACKUP_CODE_COUNT)
    User.objects.filter(pk=user.pk).update(two_factor_ready_at=timezone.now())
    audit_record(
        action=AuditAction.SETUP_COMPLETED,
        outcome=Outcome.SUCCESS,
        user=user,
        detail={"channel": "app", "by": "manage.py staff_otp_device"},
    )
    return device, codes
