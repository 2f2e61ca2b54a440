"""Maker-checker requests: a DA's change to the firm's users takes effect only once checked.

What each kind of request checks and does is its applier's (`dms.appliers.APPLIERS`);
here are the rules every request shares: who may make and check, four eyes, versions,
one decision per request, and its audit rows.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from django.db import DataError, IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from audit.models import AuditAction, Outcome
from audit.services import audit_record
from dms.appliers import APPLIERS, Applier, Approval, audit_payload
from dms.models import ChangeRequest, RequestStatus
from dms.notifications import checkers_notify
from dms.refusals import RequestForbidden, RequestRefused
from participants.models import User

logger = logging.getLogger(__name__)

STALE_MESSAGE = gettext_noop(
    "The user was changed after this request was made, so it can no longer be approved. "
    "Make a new request if it is still needed."
)


def _applier(kind: str) -> Applier:
    applier = APPLIERS.get(kind)
    if applier is None:
        raise RequestRefused(_("This request cannot be applied."))
    return applier


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
    applier = _applier(kind)
    if target is not None:
        if target.participant_id != participant.pk:
            raise RequestForbidden(_("The user does not belong to your firm."))
        if target.pk == acting_user.pk:
            raise RequestForbidden(_("You cannot make a request about yourself."))
        if ChangeRequest.objects.filter(
            target=target, kind=kind, status=RequestStatus.PENDING
        ).exists():
            raise RequestRefused(_("A request of this kind for this user is already waiting."))
    elif applier.needs_target:
        raise RequestRefused(_("This request has no user."))
    refusal = applier.refusal(participant=participant, target=target, payload=payload)
    if refusal is not None:
        raise RequestRefused(refusal)
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
        detail={"request": change.pk, "kind": kind, **audit_payload(payload)},
    )
    checkers_notify(change=change)
    return change


def can_check(change: ChangeRequest, acting_user: User) -> bool:
    """Return whether the DA may approve or reject the request (four eyes)."""
    if acting_user.participant_id != change.participant_id or not acting_user.is_checker:
        return False
    # Four eyes: a DA no more checks a change to their own account than makes one, be it a
    # single request or a row of a bulk file.
    applier = APPLIERS.get(change.kind)
    if applier is None or applier.touches(change, acting_user):
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


@dataclasses.dataclass(frozen=True)
class ApprovalOutcome:
    """What an approval did: applied the request, or found it outdated and said why."""

    change: ChangeRequest
    applied: bool
    reason: str = ""


def request_approve(
    *, change: ChangeRequest, acting_user: User, request: HttpRequest | None = None
) -> ApprovalOutcome:
    """Approve a pending request and apply it, or record it as outdated if it can no longer
    take effect (its user changed meanwhile, or no longer fits the request).

    Everything happens in one transaction, and the outcome is returned once it is committed.
    The applier runs in a savepoint: a refusal while applying leaves nothing of it applied
    and the request outdated. A DA who may not check, a request already decided, or any
    other error raises, and leaves the request pending.
    """
    with transaction.atomic(durable=True):
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
        reason = _approval_refusal(change, target)
        if reason is None:
            try:
                with transaction.atomic():
                    _applier(change.kind).apply(
                        Approval(
                            change=change, target=target, acting_user=acting_user, request=request
                        )
                    )
            except RequestRefused as refused:
                reason = refused.message
            except DataError:
                # A value the database cannot hold (checks should have caught it): recorded
                # as not applied, rather than an error page and a request pending for ever.
                logger.exception(
                    "request could not be applied", extra={"event": {"request": change.pk}}
                )
                reason = _(
                    "This request could not be applied: a value does not fit. Make it again."
                )
        if reason is None:
            _decide(change, RequestStatus.APPROVED, acting_user, request)
        else:
            _decide(change, RequestStatus.OUTDATED, acting_user, request, reason=reason)
            if change.kind in APPLIERS:
                APPLIERS[change.kind].outdated(change, reason)
    return ApprovalOutcome(change=change, applied=reason is None, reason=reason or "")


def _approval_refusal(change: ChangeRequest, target: User | None) -> str | None:
    """Return why the request can no longer take effect, or None if it still can."""
    if change.kind not in APPLIERS:
        return _("This request cannot be applied.")
    applier = APPLIERS[change.kind]
    if target is None and applier.needs_target:
        return _("This request has no user.")
    if target is not None and target.version != change.target_version:
        return _(STALE_MESSAGE)
    return applier.refusal(participant=change.participant, target=target, payload=change.payload)


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
    if change.kind in APPLIERS:
        APPLIERS[change.kind].rejected(change)
    return change


_DECISION_ACTIONS = {
    RequestStatus.APPROVED: AuditAction.REQUEST_APPROVED,
    RequestStatus.REJECTED: AuditAction.REQUEST_REJECTED,
    RequestStatus.OUTDATED: AuditAction.REQUEST_OUTDATED,
}


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
    audit_record(
        action=_DECISION_ACTIONS[RequestStatus(status)],
        outcome=Outcome.SUCCESS,
        request=request,
        user=change.target,
        actor=acting_user,
        participant=change.participant,
        reason=reason[:64],
        # Which request, and what it changes (or would have changed).
        detail={
            "request": change.pk,
            "kind": change.kind,
            **(APPLIERS[change.kind].audit_detail(change) if change.kind in APPLIERS else {}),
        },
    )
