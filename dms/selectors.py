"""Reads across relations for the DMS pages."""

from __future__ import annotations

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from authn.models import ActivationToken
from common.idn import review_email
from dms.models import BulkEmailRow, BulkOutcome, ChangeRequest
from participants.models import Participant, Role, Smartcard, User, UserStatus

USER_FILTERS = {
    "needs_email": Q(email=""),
    "not_set_up": Q(two_factor_ready_at__isnull=True),
    "suspended": Q(status=UserStatus.SUSPENDED),
    "das": Q(role=Role.DA),
}


def users_for_dms(
    *, participant: Participant, filter_name: str = "", search: str = ""
) -> QuerySet[User]:
    """Return the firm's users with what the users list shows, in a fixed number of queries."""
    now = timezone.now()
    users = (
        User.objects.for_participant(participant)
        .select_related("email_registered_by")
        .annotate(
            has_app=Exists(TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)),
            activation_open=Exists(ActivationToken.objects.filter(user=OuterRef("pk")).open(now)),
            card_usable=Exists(Smartcard.objects.filter(user=OuterRef("pk")).usable(now)),
        )
        .order_by("login_id")
    )
    if filter_name in USER_FILTERS:
        users = users.filter(USER_FILTERS[filter_name])
    if search.strip():
        term = search.strip()
        users = users.filter(Q(login_id__icontains=term) | Q(email__icontains=term))
    return users


def requests_for_dms(*, participant: Participant, status: str = "") -> QuerySet[ChangeRequest]:
    requests = ChangeRequest.objects.for_participant(participant).select_related(
        "maker", "checker", "target"
    )
    if status:
        requests = requests.filter(status=status)
    return requests


def lookalike_lines(*, batch_id: int) -> list[int]:
    """Return the lines of a bulk file that would register a domain mixing scripts."""
    non_ascii = BulkEmailRow.objects.filter(
        batch_id=batch_id,
        outcome__in=[BulkOutcome.REGISTER, BulkOutcome.CHANGE],
        email__regex=r"[^\x00-\x7F]",
    ).values_list("line", "email")
    return [line for line, email in non_ascii.order_by("line") if review_email(email).mixed_scripts]
