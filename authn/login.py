"""Between the steps of a login, and its end: the pending user, the bound session, logout."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import django_otp
from django.conf import settings
from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.http import HttpRequest
from django.utils import timezone
from django_otp.models import Device

from audit.models import AuditAction, Outcome
from audit.services import audit_record
from authn import sessions
from common.sql import update_by_pk
from participants.models import User


@dataclasses.dataclass(frozen=True)
class PendingLogin:
    """Who passed the password step, and the channel their code comes from ("app" or
    "email", and the device's id): what the code step needs before it touches the database."""

    user_id: int
    channel: str
    device_id: int
    # The connectivity-test session the password step was let in by, if one was running.
    connectivity_session: int | None = None


def login_pending_start(
    request: HttpRequest,
    *,
    user: User,
    scope: str,
    terminal: str | None,
    channel: tuple[str, int],
    connectivity_session: int | None = None,
) -> None:
    """Remember, between the password step and the OTP step, who passed the first."""
    request.session[sessions.PENDING_KEY] = {
        "user_id": user.pk,
        "scope": scope,
        "terminal": terminal,
        "at": int(time.time()),
        "channel": channel[0],
        "device_id": channel[1],
        **({"connectivity_session": connectivity_session} if connectivity_session else {}),
    }


def login_pending(request: HttpRequest, *, scope: str, terminal: str | None) -> PendingLogin | None:
    """The pending login of this session for this entry, if it has not timed out."""
    pending = request.session.get(sessions.PENDING_KEY)
    if not pending or pending.get("scope") != scope or pending.get("terminal") != terminal:
        return None
    if time.time() - pending.get("at", 0) > settings.LOGIN_PENDING_TIMEOUT:
        request.session.pop(sessions.PENDING_KEY, None)
        return None
    if pending.get("channel") not in ("app", "email"):
        # Started by an earlier release, without the channel: start again.
        return None
    return PendingLogin(
        user_id=int(pending["user_id"]),
        channel=str(pending["channel"]),
        device_id=int(pending["device_id"]),
        connectivity_session=pending.get("connectivity_session"),
    )


def login_pending_code_sent(request: HttpRequest, *, sent: bool) -> None:
    """Remember whether the last request for an emailed code sent one, for the code page.

    Within the cooldown no code is sent (the earlier one still works); the page must say so
    rather than announce an email that will never come.
    """
    pending = request.session.get(sessions.PENDING_KEY)
    if pending:
        request.session[sessions.PENDING_KEY] = {**pending, "code_sent": sent}


def login_pending_was_code_sent(request: HttpRequest) -> bool | None:
    """Return whether the last request for an emailed code sent one; None if none was made."""
    pending = request.session.get(sessions.PENDING_KEY) or {}
    sent = pending.get("code_sent")
    return None if sent is None else bool(sent)


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
    changes: dict[str, Any] = {
        "last_login": user.last_login,
        "last_login_method": user.last_login_method,
    }
    if method in (sessions.Method.OTP, sessions.Method.BACKUP_CODE):
        # Readiness counts who has logged in with OTP at least once: the first time stays.
        changes["first_otp_login_at"] = user.last_login
    update_by_pk(User, user.pk, changes, unless_set={"first_otp_login_at"})
    audit_record(
        action=AuditAction.LOGIN,
        outcome=Outcome.SUCCESS,
        request=request,
        user=user,
        scope=",".join(scopes),
        method=method,
    )


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
