"""Emails about maker-checker requests (sent from tasks)."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse

from common.mail import send_templated
from dms.models import ChangeRequest
from participants.models import DaDuty, Role, User


def checkers_notify(*, change_id: int) -> None:
    """Tell the firm's checkers that a request waits for them."""
    change = ChangeRequest.objects.select_related("participant", "maker", "target").get(
        pk=change_id
    )
    checkers = User.objects.for_participant(change.participant).filter(
        role=Role.DA, da_duty__in=[DaDuty.CHECKER, DaDuty.BOTH], status="active"
    )
    if not change.participant.single_da_allowed:
        checkers = checkers.exclude(pk=change.maker_id)
    addresses = sorted({checker.email for checker in checkers if checker.email})
    if not addresses:
        return
    send_templated(
        "request-waiting",
        to=addresses,
        context={
            "change": change,
            "link": settings.SITE_URL + reverse("dms:request-list"),
        },
    )


def email_changed_notify(*, user_id: int, old: str, new: str) -> None:
    """Tell the user at both addresses that their designated email changed."""
    user = User.objects.select_related("participant__terminal").get(pk=user_id)
    context = {
        "user": user,
        "old": old,
        "new": new,
        "terminal": user.participant.terminal if user.participant else None,
    }
    for address in [a for a in (old, new) if a]:
        send_templated("email-changed", to=[address], context=context)
