"""The emails dms sends through the outbox: a request waits for a checker; an email changed.

Queued in the transaction of the change that causes them (`outbox.services`); written when
the relay sends them, by the composers registered here.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import F, Q, QuerySet
from django.db.models.functions import JSONObject
from django.urls import reverse

from dms.models import ChangeRequest
from outbox.composers import Composer, register, row_subject
from outbox.models import OutboxEmail
from outbox.services import email_queue, email_queue_many
from participants.models import DaDuty, Role, User

REQUEST_WAITING = "request-waiting"
EMAIL_CHANGED = "email-changed"


def checkers_notify(*, change: ChangeRequest) -> None:
    """Tell the firm's checkers that a request waits for them."""
    checkers = User.objects.for_participant(change.participant).filter(
        role=Role.DA, da_duty__in=[DaDuty.CHECKER, DaDuty.BOTH], status="active"
    )
    if not change.participant.single_da_allowed:
        checkers = checkers.exclude(pk=change.maker_id)
    addresses = sorted(set(checkers.exclude(email="").values_list("email", flat=True)))
    email_queue(kind=REQUEST_WAITING, to=addresses, params={"change_id": change.pk})


def email_changed_notify(*, user: User, old: str, new: str) -> None:
    """Tell the user at both addresses that their designated email changed."""
    email_queue(
        kind=EMAIL_CHANGED, to=[old, new], params={"user_id": user.pk, "old": old, "new": new}
    )


def email_changed_notify_many(*, rows: QuerySet[Any]) -> int:
    """Queue the same notice for each of `rows` (with user_id, previous_email and email),
    at the old address and at the new one, in two statements whatever their number."""
    params = JSONObject(user_id=F("user_id"), old=F("previous_email"), new=F("email"))
    queued = email_queue_many(
        kind=EMAIL_CHANGED,
        source=rows.exclude(Q(previous_email="") | Q(previous_email=F("email"))),
        to=F("previous_email"),
        params=params,
    )
    return queued + email_queue_many(
        kind=EMAIL_CHANGED, source=rows.exclude(email=""), to=F("email"), params=params
    )


def _request_waiting_context(row: OutboxEmail) -> dict[str, Any]:
    change = row_subject(
        row,
        ChangeRequest.objects.select_related("participant", "maker", "target"),
        param="change_id",
        gone="The request no longer exists",
    )
    return {"change": change, "link": settings.SITE_URL + reverse("dms:request-list")}


def _email_changed_context(row: OutboxEmail) -> dict[str, Any]:
    user = row_subject(
        row,
        User.objects.select_related("participant__terminal"),
        param="user_id",
        gone="The user no longer exists",
    )
    return {
        "user": user,
        "old": row.params.get("old", ""),
        "new": row.params.get("new", ""),
        "terminal": user.participant.terminal if user.participant else None,
    }


def register_emails() -> None:
    register(
        REQUEST_WAITING, Composer(template="request-waiting", context=_request_waiting_context)
    )
    register(EMAIL_CHANGED, Composer(template="email-changed", context=_email_changed_context))
