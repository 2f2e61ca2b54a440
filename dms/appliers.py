"""What each kind of request checks and does: one small applier per kind, in one table.

`dms.services.request_make` asks an applier whether a request could take effect on its user
as the user is now; `request_approve` asks again, then has it apply the change; a rejected or
outdated request lets the applier tidy up what belongs to it (a bulk file's status).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext as _

from audit.models import AuditAction, Outcome
from audit.services import audit_record
from authn.activation import activation_links_revoke, activation_send
from authn.devices import otp_devices_remove
from dms import bulk
from dms.models import (
    BulkEmailBatch,
    BulkEmailRow,
    BulkOutcome,
    BulkStatus,
    ChangeRequest,
    RequestKind,
)
from dms.notifications import email_changed_notify
from dms.refusals import RequestRefused
from migration import phases
from participants.models import Participant, Role, User, UserStatus, in_firm_namespace


@dataclasses.dataclass(frozen=True)
class Approval:
    """A checker's approval being applied: the request, its (locked) user, who, from where."""

    change: ChangeRequest
    target: User | None
    acting_user: User
    request: HttpRequest | None


class Applier:
    """One kind of request. The defaults: nothing to check, nothing to tidy up."""

    # Whether the request is about an existing user (all but creating one and a bulk file).
    needs_target = True

    def refusal(
        self, *, participant: Participant, target: User | None, payload: dict[str, Any]
    ) -> str | None:
        """Return why the request could not take effect now, or None if it could."""
        return None

    def apply(self, approval: Approval) -> None:
        raise NotImplementedError

    def audit_detail(self, change: ChangeRequest) -> dict[str, Any]:
        """Return what the request changes, for its decision's audit row."""
        detail = audit_payload(change.payload)
        if change.payload.get("previous_email"):
            detail["previous_email"] = change.payload["previous_email"]
        return detail

    def touches(self, change: ChangeRequest, user: User) -> bool:
        """Return whether the request would change `user` (who may then not check it)."""
        return change.target_id is not None and change.target_id == user.pk

    def rejected(self, change: ChangeRequest) -> None:
        """Tidy up after a checker rejected the request."""

    def outdated(self, change: ChangeRequest, reason: str) -> None:
        """Tidy up after the request was found unable to take effect."""


def _audit_applied(approval: Approval, action: str) -> None:
    payload = approval.change.payload
    audit_record(
        action=action,
        outcome=Outcome.SUCCESS,
        request=approval.request,
        user=approval.change.target,
        actor=approval.acting_user,
        participant=approval.change.participant,
        detail={"request": approval.change.pk, **audit_payload(payload)},
    )


def audit_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """Return the parts of a request's payload that its audit rows record."""
    return {key: value for key, value in payload.items() if key in {"email", "login_id", "role"}}


def _bump(user: User, **fields: Any) -> None:
    User.objects.filter(pk=user.pk).update(version=F("version") + 1, **fields)
    for name, value in fields.items():
        setattr(user, name, value)
    user.version += 1


def _activation(approval: Approval, target: User) -> None:
    # PRODUCT.md: once 2FA setup is open, every user with a registered email gets one
    # (but a suspended user may not set up 2FA).
    if target.is_active and target.has_registered_email() and phases.setup_open_for(target):
        activation_send(user=target, acting_user=approval.acting_user, request=approval.request)


def email_set(*, user: User, email: str, registered_by: User) -> None:
    """Record the user's designated email and tell both the old and the new address."""
    old = user.email
    _bump(
        user,
        email=email,
        email_registered_by=registered_by,
        email_registered_at=timezone.now(),
    )
    email_changed_notify(user=user, old=old, new=email)


class EmailRegister(Applier):
    def refusal(
        self, *, participant: Participant, target: User | None, payload: dict[str, Any]
    ) -> str | None:
        assert target is not None
        if target.is_da and not phases.da_email_registration_open(participant):
            return _("DAs' email registration has not opened yet.")
        if payload.get("email") == target.email:
            return _("This is already the user's designated email.")
        return None

    def apply(self, approval: Approval) -> None:
        target = approval.target
        assert target is not None
        # A link sent to the old address must not set up 2FA for an address the firm has
        # replaced (nor an email still waiting carry one there).
        activation_links_revoke(user=target)
        email_set(
            user=target, email=approval.change.payload["email"], registered_by=approval.change.maker
        )
        _audit_applied(approval, AuditAction.EMAIL_REGISTERED)
        # The user who still has 2FA to set up gets their link at the new address.
        if target.two_factor_ready_at is None:
            _activation(approval, target)


class UserCreate(Applier):
    needs_target = False

    def refusal(
        self, *, participant: Participant, target: User | None, payload: dict[str, Any]
    ) -> str | None:
        login_id = str(payload.get("login_id", ""))
        if not in_firm_namespace(login_id, participant):
            return _("A new login ID begins with your firm's participant ID, %(prefix)s.") % {
                "prefix": participant.participant_id
            }
        # In the firm's namespace, a clash is with one of the firm's own users.
        if User.objects.by_login_id(login_id).exists():
            return _("This login ID is already in use.")
        if (
            payload.get("role") == Role.DA
            and payload.get("email")
            and not phases.da_email_registration_open(participant)
        ):
            return _("DAs' email registration has not opened yet.")
        return None

    def apply(self, approval: Approval) -> None:
        change = approval.change
        data = change.payload
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
        change.target = user
        change.save(update_fields=["target"])
        _audit_applied(approval, AuditAction.USER_CREATED)
        _activation(approval, user)


class UserSuspend(Applier):
    def refusal(
        self, *, participant: Participant, target: User | None, payload: dict[str, Any]
    ) -> str | None:
        assert target is not None
        if target.status == UserStatus.SUSPENDED:
            return _("The user is already suspended.")
        return None

    def apply(self, approval: Approval) -> None:
        assert approval.target is not None
        _bump(approval.target, status=UserStatus.SUSPENDED)
        # A suspended user may not set up 2FA: the links already sent stop working.
        activation_links_revoke(user=approval.target)
        _audit_applied(approval, AuditAction.USER_SUSPENDED)


class UserRestore(Applier):
    def refusal(
        self, *, participant: Participant, target: User | None, payload: dict[str, Any]
    ) -> str | None:
        assert target is not None
        if target.status != UserStatus.SUSPENDED:
            return _("The user is not suspended.")
        return None

    def apply(self, approval: Approval) -> None:
        assert approval.target is not None
        _bump(approval.target, status=UserStatus.ACTIVE)
        _audit_applied(approval, AuditAction.USER_RESTORED)


class OtpReset(Applier):
    def apply(self, approval: Approval) -> None:
        target = approval.target
        assert target is not None
        otp_devices_remove(user=target)
        _bump(target, two_factor_ready_at=None)
        # A link from before the reset is retired now, not only when the new one is sent:
        # with setup closed (or the user suspended meanwhile) no new one may follow.
        activation_links_revoke(user=target)
        _audit_applied(approval, AuditAction.OTP_RESET)
        _activation(approval, target)


class ActivationResend(Applier):
    def refusal(
        self, *, participant: Participant, target: User | None, payload: dict[str, Any]
    ) -> str | None:
        assert target is not None
        if target.status == UserStatus.SUSPENDED:
            return _("The user is suspended.")
        if not target.has_registered_email():
            return _("The user has no designated email to send it to.")
        if not phases.setup_open_for(target):
            return _("2FA setup has not opened yet for this terminal.")
        return None

    def apply(self, approval: Approval) -> None:
        # The activation email's own audit row ("Activation email sent") records it.
        assert approval.target is not None
        _activation(approval, approval.target)


class BulkEmail(Applier):
    needs_target = False

    def apply(self, approval: Approval) -> None:
        bulk.bulk_apply(
            change=approval.change, acting_user=approval.acting_user, request=approval.request
        )

    def audit_detail(self, change: ChangeRequest) -> dict[str, Any]:
        payload = change.payload
        return {
            key: payload[key]
            for key in ("batch", "filename", "register", "change")
            if key in payload
        }

    def touches(self, change: ChangeRequest, user: User) -> bool:
        # A file may hold a row for a DA of the firm: that DA checks it no more than a
        # single request about themselves (the maker's own row is refused at the check).
        return BulkEmailRow.objects.filter(
            batch__change_request=change,
            user=user,
            outcome__in=[BulkOutcome.REGISTER, BulkOutcome.CHANGE],
        ).exists()

    def rejected(self, change: ChangeRequest) -> None:
        BulkEmailBatch.objects.filter(change_request=change).update(status=BulkStatus.REJECTED)

    def outdated(self, change: ChangeRequest, reason: str) -> None:
        BulkEmailBatch.objects.filter(change_request=change).update(
            status=BulkStatus.FAILED, error=reason[:500]
        )


APPLIERS: dict[str, Applier] = {
    RequestKind.EMAIL_REGISTER: EmailRegister(),
    RequestKind.USER_CREATE: UserCreate(),
    RequestKind.USER_SUSPEND: UserSuspend(),
    RequestKind.USER_RESTORE: UserRestore(),
    RequestKind.OTP_RESET: OtpReset(),
    RequestKind.ACTIVATION_RESEND: ActivationResend(),
    RequestKind.BULK_EMAIL: BulkEmail(),
}
