"""Maker-checker requests: a DA's change to the firm's users takes effect only once checked."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditAction, Outcome
from audit.services import audit_record
from participants.models import (
    ChangeRequest,
    Participant,
    RequestKind,
    RequestStatus,
    Role,
    User,
    UserStatus,
)


class RequestRefused(Exception):
    """A request cannot be made, approved or rejected; the message is for the DA."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RequestForbidden(RequestRefused):
    """The DA's role or identity does not allow the action at all."""


def _programme_allows_da_email(participant: Participant) -> bool:
    programme = getattr(participant.terminal, "programme", None)
    return bool(programme and programme.da_email_registration_open)


def normalize_email(email: str) -> str:
    """Return the address as it is stored, or raise ValidationError if it is not one."""
    email = email.strip()
    validate_email(email)
    local, _at, domain = email.rpartition("@")
    return f"{local}@{domain.lower()}"


def _check_target(kind: str, target: User, payload: dict[str, Any]) -> None:
    """Refuse a request that could not take effect on the target as it is now."""
    if kind == RequestKind.EMAIL_REGISTER:
        if target.is_da and not _programme_allows_da_email(target.participant):  # type: ignore[arg-type]
            raise RequestRefused(_("DAs' email registration has not opened yet."))
        if payload.get("email") == target.email:
            raise RequestRefused(_("This is already the user's designated email."))
    elif kind == RequestKind.USER_SUSPEND and target.status == UserStatus.SUSPENDED:
        raise RequestRefused(_("The user is already suspended."))
    elif kind == RequestKind.USER_RESTORE and target.status != UserStatus.SUSPENDED:
        raise RequestRefused(_("The user is not suspended."))
    elif kind == RequestKind.ACTIVATION_RESEND:
        from authn.services import setup_open_for

        if not target.has_registered_email():
            raise RequestRefused(_("The user has no designated email to send it to."))
        if not setup_open_for(target):
            raise RequestRefused(_("2FA setup has not opened yet for this terminal."))


@transaction.atomic
def request_make(
    *,
    kind: str,
    acting_user: User,
    target: User | None = None,
    payload: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
) -> ChangeRequest:
    """File a maker's request; nothing changes until a checker approves it."""
    payload = dict(payload or {})
    participant = acting_user.participant
    if participant is None or not acting_user.is_maker:
        raise RequestForbidden(_("Only a maker DA can make requests."))
    if target is not None:
        if target.participant_id != participant.pk:
            raise RequestForbidden(_("The user does not belong to your firm."))
        if target.pk == acting_user.pk:
            raise RequestForbidden(_("You cannot make a request about yourself."))
        if ChangeRequest.objects.filter(
            target=target, kind=kind, status=RequestStatus.PENDING
        ).exists():
            raise RequestRefused(_("A request of this kind for this user is already waiting."))
        _check_target(kind, target, payload)
    elif kind == RequestKind.USER_CREATE:
        if User.objects.filter(login_id__iexact=payload.get("login_id", "")).exists():
            raise RequestRefused(_("This login ID is already in use."))
        if (
            payload.get("role") == Role.DA
            and payload.get("email")
            and not (_programme_allows_da_email(participant))
        ):
            raise RequestRefused(_("DAs' email registration has not opened yet."))
    try:
        with transaction.atomic():
            change = ChangeRequest.objects.create(
                participant=participant,
                kind=kind,
                target=target,
                target_version=target.version if target else None,
                payload=payload,
                maker=acting_user,
            )
    except IntegrityError as error:
        # Another maker filed the same request a moment ago (request_one_pending_per_user_and_kind).
        raise RequestRefused(
            _("A request of this kind for this user is already waiting.")
        ) from error
    audit_record(
        action=AuditAction.REQUEST_MADE,
        outcome=Outcome.SUCCESS,
        request=request,
        user=target,
        actor=acting_user,
        participant=participant,
        detail={"request": change.pk, "kind": kind, **_audit_payload(payload)},
    )
    _notify_checkers(change)
    return change


def _audit_payload(payload: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in payload.items() if key in {"email", "login_id", "role"}}


def _notify_checkers(change: ChangeRequest) -> None:
    from participants.tasks import checkers_notify

    change_id = change.pk
    transaction.on_commit(lambda: checkers_notify.delay(change_id))


def can_check(change: ChangeRequest, acting_user: User) -> bool:
    """Return whether the DA may approve or reject the request (four eyes)."""
    if acting_user.participant_id != change.participant_id or not acting_user.is_checker:
        return False
    # Four eyes: a DA no more checks a change to their own account than makes one.
    if change.target_id is not None and change.target_id == acting_user.pk:
        return False
    if change.maker_id != acting_user.pk:
        return True
    # A sole proprietor's only DA may check their own request, when staff allow it.
    return bool(change.participant.single_da_allowed)


def _lock_pending(change: ChangeRequest) -> ChangeRequest:
    locked = (
        ChangeRequest.objects.select_for_update(of=("self",))
        .select_related("participant__terminal__programme", "maker")
        .get(pk=change.pk)
    )
    if not locked.is_pending:
        raise RequestRefused(_("This request has already been decided."))
    return locked


STALE_MESSAGE = gettext_noop(
    "The user was changed after this request was made, so it can no longer be approved. "
    "Make a new request if it is still needed."
)


def request_approve(
    *, change: ChangeRequest, acting_user: User, request: HttpRequest | None = None
) -> ChangeRequest:
    """Approve a pending request and apply it, or mark it outdated if its user changed meanwhile.

    Applying runs in a savepoint: a refusal while applying leaves nothing applied,
    and the request is recorded as outdated; any other error leaves it pending.
    """
    outdated: str | None = None
    with transaction.atomic():
        change = _lock_pending(change)
        if not can_check(change, acting_user):
            raise RequestForbidden(
                _("Another DA of your firm with the checker duty must approve this request.")
            )
        target = None
        if change.target_id is not None:
            target = (
                User.objects.select_for_update(of=("self",))
                .select_related("participant__terminal__programme")
                .get(pk=change.target_id)
            )
            if target.version != change.target_version:
                outdated = _(STALE_MESSAGE)
            else:
                try:
                    _check_target(change.kind, target, change.payload)
                except RequestRefused as refused:
                    outdated = refused.message
        if outdated is None:
            try:
                with transaction.atomic():
                    _apply(change, target=target, acting_user=acting_user, request=request)
            except RequestRefused as refused:
                outdated = refused.message
        if outdated is None:
            _decide(change, RequestStatus.APPROVED, acting_user, request)
        else:
            _decide(change, RequestStatus.OUTDATED, acting_user, request, reason=outdated)
            if change.kind == RequestKind.BULK_EMAIL:
                from participants.models import BulkEmailBatch, BulkStatus

                BulkEmailBatch.objects.filter(change_request=change).update(
                    status=BulkStatus.FAILED, error=outdated[:500]
                )
    if outdated is not None:
        raise RequestRefused(outdated)
    return change


@transaction.atomic
def request_reject(
    *, change: ChangeRequest, acting_user: User, reason: str, request: HttpRequest | None = None
) -> ChangeRequest:
    """Reject a pending request, saying why."""
    change = _lock_pending(change)
    if not can_check(change, acting_user):
        raise RequestForbidden(
            _("Another DA of your firm with the checker duty must reject this request.")
        )
    if not reason.strip():
        raise RequestRefused(_("Give the maker a reason for the rejection."))
    _decide(change, RequestStatus.REJECTED, acting_user, request, reason=reason.strip())
    if change.kind == RequestKind.BULK_EMAIL:
        from participants.models import BulkEmailBatch, BulkStatus

        BulkEmailBatch.objects.filter(change_request=change).update(status=BulkStatus.REJECTED)
    return change


def _decide(
    change: ChangeRequest,
    status: str,
    acting_user: User,
    request: HttpRequest | None,
    *,
    reason: str = "",
) -> None:
    change.status = status
    change.checker = acting_user
    change.decided_at = timezone.now()
    change.reason = reason[:500]
    change.save(update_fields=["status", "checker", "decided_at", "reason"])
    action = {
        RequestStatus.APPROVED: AuditAction.REQUEST_APPROVED,
        RequestStatus.REJECTED: AuditAction.REQUEST_REJECTED,
        RequestStatus.OUTDATED: AuditAction.REQUEST_OUTDATED,
    }[RequestStatus(status)]
    _audit_change(change, action, acting_user, request, reason=reason[:64], kind=change.kind)


def _audit_change(
    change: ChangeRequest,
    action: str,
    acting_user: User,
    request: HttpRequest | None,
    *,
    reason: str = "",
    **detail: Any,
) -> None:
    audit_record(
        action=action,
        outcome=Outcome.SUCCESS,
        request=request,
        user=change.target,
        actor=acting_user,
        participant=change.participant,
        reason=reason,
        detail={"request": change.pk, **detail},
    )


def _bump(user: User, **fields: Any) -> None:
    User.objects.filter(pk=user.pk).update(version=F("version") + 1, **fields)
    for name, value in fields.items():
        setattr(user, name, value)
    user.version += 1


def _apply(
    change: ChangeRequest, *, target: User | None, acting_user: User, request: HttpRequest | None
) -> None:
    kind = change.kind
    if kind == RequestKind.BULK_EMAIL:
        from participants.bulk import bulk_apply

        bulk_apply(change=change, acting_user=acting_user, request=request)
        return
    # Whether the user needs an activation email once the change is recorded.
    activate = False
    if kind == RequestKind.USER_CREATE:
        target = _user_create(change)
        change.target = target
        change.save(update_fields=["target"])
        action, activate = AuditAction.USER_CREATED, True
    elif target is None:
        raise RequestRefused(_("This request has no user."))
    elif kind == RequestKind.EMAIL_REGISTER:
        # PRODUCT.md: once 2FA setup is open, every user with a registered email gets one.
        activate = not target.has_registered_email() and target.two_factor_ready_at is None
        email_set(user=target, email=change.payload["email"], registered_by=change.maker)
        action = AuditAction.EMAIL_REGISTERED
    elif kind == RequestKind.USER_SUSPEND:
        _bump(target, status=UserStatus.SUSPENDED)
        action = AuditAction.USER_SUSPENDED
    elif kind == RequestKind.USER_RESTORE:
        _bump(target, status=UserStatus.ACTIVE)
        action = AuditAction.USER_RESTORED
    elif kind == RequestKind.OTP_RESET:
        otp_devices_remove(user=target)
        _bump(target, two_factor_ready_at=None)
        action, activate = AuditAction.OTP_RESET, True
    elif kind == RequestKind.ACTIVATION_RESEND:
        _activation(target, acting_user, request)
        return
    else:
        raise RequestRefused(_("This request cannot be applied."))
    _audit_change(change, action, acting_user, request, **_audit_payload(change.payload))
    if activate and target is not None:
        _activation(target, acting_user, request)


def _activation(target: User, acting_user: User, request: HttpRequest | None) -> None:
    from authn.services import activation_send, setup_open_for

    if target.has_registered_email() and setup_open_for(target):
        activation_send(user=target, acting_user=acting_user, request=request)


def _user_create(change: ChangeRequest) -> User:
    data = change.payload
    if User.objects.filter(login_id__iexact=data["login_id"]).exists():
        raise RequestRefused(_("This login ID is already in use."))
    is_da = data.get("role") == Role.DA
    user = User(
        login_id=data["login_id"],
        name=data.get("name", ""),
        participant=change.participant,
        role=Role.DA if is_da else Role.USER,
        da_duty=data.get("da_duty", "") if is_da else "",
        scope_online=bool(data.get("scope_online", True)),
        scope_reports=bool(data.get("scope_reports", True)),
        scope_dms=is_da,
    )
    if data.get("email"):
        user.email = data["email"]
        user.email_registered_by = change.maker
        user.email_registered_at = timezone.now()
    user.set_unusable_password()
    try:
        user.full_clean(exclude=["password"])
    except ValidationError as error:
        raise RequestRefused("; ".join(error.messages)) from error
    user.save()
    return user


def email_set(*, user: User, email: str, registered_by: User) -> None:
    """Record the user's designated email and tell both the old and the new address."""
    from participants.tasks import email_changed_notify

    old = user.email
    _bump(
        user,
        email=email,
        email_registered_by=registered_by,
        email_registered_at=timezone.now(),
    )
    user_id = user.pk
    transaction.on_commit(lambda: email_changed_notify.delay(user_id, old, email))


def otp_devices_remove(*, user: User) -> None:
    """Remove every OTP device of the user, who must then set 2FA up again."""
    from authn.models import BackupCodeDevice, EmailOTPDevice

    TOTPDevice.objects.filter(user=user).delete()
    EmailOTPDevice.objects.filter(user=user).delete()
    BackupCodeDevice.objects.filter(user=user).delete()
