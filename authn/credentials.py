"""The first step of every login: a login ID and a secret, checked under the per-account throttle.

The regular password is checked here (`password_check`); the smartcard password is checked
by `authn.smartcard.smartcard_password_check`. Both go through `credentials_check`, which
owns the lock, the throttle and the audit of refusals.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from django.contrib.auth.hashers import make_password
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from audit.models import AuditAction, Outcome
from audit.models import Refusal as Refusal  # Why a login step was refused.
from audit.services import audit_record
from authn.models import LoginThrottle
from authn.selectors import account_for_login, throttle_for_update
from participants.models import Scope, Terminal, User, normalize_login_id


@dataclasses.dataclass(frozen=True)
class LoginResult:
    user: User | None
    refusal: str | None = None
    locked_until: dt.datetime | None = None

    @property
    def ok(self) -> bool:
        return self.refusal is None


def _throttle_key(login_id: str) -> str:
    # The same normalisation as the lookup: one counter per account, whatever its spelling.
    # A value that cannot be a login ID (the forms refuse those) gets a counter of its own.
    return normalize_login_id(login_id) or "invalid:" + login_id.strip().casefold()[:56]


def burn_hash_time(password: str) -> None:
    """Spend the time of one password hash, so that a refusal takes as long as a check."""
    make_password(password)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What checking the secret of a (possibly unknown) user found."""

    verified: bool
    reason: str = Refusal.BAD_CREDENTIALS
    detail: dict[str, str] | None = None


# Checks the secret against the user the login ID named (None when it names nobody).
Verifier = Callable[[User | None], Verdict]


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


@transaction.atomic(savepoint=False)
def credentials_check(
    *,
    request: HttpRequest,
    login_id: str,
    password: str,
    scopes: list[str],
    terminal: Terminal | None,
    method: str,
    verify: Verifier,
) -> LoginResult:
    """Check a login ID and its secret with `verify`, under the per-account throttle.

    Unknown IDs, wrong secrets, locked accounts and users who may not use this
    entry all come back as refusals that the page words identically.
    """
    now = timezone.now()
    key = _throttle_key(login_id)
    normalized = normalize_login_id(login_id)
    # The user's row, locked, comes with the firm the audit row names and the OTP channel
    # (authn.otp.primary_channel); the entry's phase was read already.
    user = account_for_login(normalized_login_id=normalized) if normalized is not None else None
    # Read only once the user's row is locked. The throttle row exists only once an
    # ID has failed; a clean login does not write it.
    throttle = throttle_for_update(key=key)

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
        burn_hash_time(password)
        return refuse(Refusal.LOCKED)

    verdict = verify(user)
    if (
        not verdict.verified
        or user is None
        or not _login_allowed(user, scopes=scopes, terminal=terminal)
    ):
        if throttle is None:
            throttle, _created = LoginThrottle.objects.select_for_update().get_or_create(key=key)
        throttle.record_failure(now)
        throttle.save()
        return refuse(verdict.reason, verdict.detail)

    if throttle is not None and throttle.failures:
        throttle.failures = 0
        throttle.locked_until = None
        throttle.save(update_fields=["failures", "locked_until"])
    return LoginResult(user=user)


def password_check(
    *,
    request: HttpRequest,
    login_id: str,
    password: str,
    scopes: list[str],
    terminal: Terminal | None,
    method: str,
) -> LoginResult:
    """Check a login ID and its regular password, under the per-account throttle."""

    def verify(user: User | None) -> Verdict:
        if user is None:
            burn_hash_time(password)
            return Verdict(verified=False)
        return Verdict(verified=user.check_password(password))

    return credentials_check(
        request=request,
        login_id=login_id,
        password=password,
        scopes=scopes,
        terminal=terminal,
        method=method,
        verify=verify,
    )
