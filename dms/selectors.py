"""Reads across relations for the DMS pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from django.db.models import Q, QuerySet
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from authn.models import ActivationToken
from common.idn import review_email
from common.keyset import KeysetPage, Order, keyset_page
from common.prefix import Folded, fold, starts_with
from dms.models import BulkEmailRow, BulkOutcome, ChangeRequest
from participants.models import Participant, Role, Smartcard, User, UserStatus

USER_FILTERS = {
    "needs_email": Q(email=""),
    "not_set_up": Q(two_factor_ready_at__isnull=True),
    "suspended": Q(status=UserStatus.SUSPENDED),
    "das": Q(role=Role.DA),
}

# The users list in login ID order, case folded and byte by byte: the order of the indexes
# on (participant, LOWER(login_id)) that serve the list, each filter and the login ID search.
# LOWER(login_id) is unique, so the key alone orders every row.
USER_ORDER = Order(keys=("login_key",))
# The requests list, newest first.
REQUEST_ORDER = Order(keys=("created_at", "id"), descending=True)


def users_for_dms(*, participant: Participant, filter_name: str = "") -> QuerySet[User]:
    """Return the firm's users, filtered, in the users list's order."""
    users = (
        User.objects.for_participant(participant)
        .select_related("email_registered_by")
        .annotate(login_key=Folded("login_id"))
        .order_by("login_key")
    )
    if filter_name in USER_FILTERS:
        users = users.filter(USER_FILTERS[filter_name])
    return users


def users_page_for_dms(
    *,
    participant: Participant,
    params: Mapping[str, str],
    size: int,
    filter_name: str = "",
    search: str = "",
) -> KeysetPage[User]:
    """Return one page of the users list, from the cursor in `params`, with each user's flags.

    The search is by prefix, whatever its case: the users whose login ID or email starts
    with the term.

    The same few queries at any size of firm and any depth: the page through an index on
    (participant, LOWER(login_id)), then the page's users' devices, links and cards.
    """
    users = users_for_dms(participant=participant, filter_name=filter_name)
    branches: list[Q] = []
    if fold(search):
        # Each half reads its own first rows beyond the cursor, through its own index (the
        # login ID's, or the email's); an OR would walk the firm's list and filter it.
        users = users.alias(email_key=Folded("email"))
        branches = [starts_with("login_key", search), starts_with("email_key", search)]
    page = keyset_page(users, order=USER_ORDER, params=params, size=size, branches=branches)
    attach_user_flags(page.rows)
    return page


def attach_user_flags(users: Sequence[User], *, now: dt.datetime | None = None) -> None:
    """Set has_app, activation_open and card_usable on each user: a query for each, over
    these users' rows only, through each table's index on user_id.

    Not Exists() subqueries: PostgreSQL may answer those with a hashed subplan that reads
    every firm's devices, links and cards to flag a page of fifty users.
    """
    if not users:
        return
    now = now or timezone.now()
    ids = [user.pk for user in users]
    with_app = set(
        TOTPDevice.objects.filter(user_id__in=ids, confirmed=True).values_list("user_id", flat=True)
    )
    with_link = set(
        ActivationToken.objects.filter(user_id__in=ids).open(now).values_list("user_id", flat=True)
    )
    with_card = set(
        Smartcard.objects.filter(user_id__in=ids).usable(now).values_list("user_id", flat=True)
    )
    for user in users:
        # Attributes the list's template reads, as the annotations used to be.
        user.has_app = user.pk in with_app  # type: ignore[attr-defined]
        user.activation_open = user.pk in with_link  # type: ignore[attr-defined]
        user.card_usable = user.pk in with_card  # type: ignore[attr-defined]


def requests_for_dms(*, participant: Participant, status: str = "") -> QuerySet[ChangeRequest]:
    requests = ChangeRequest.objects.for_participant(participant).select_related(
        "maker", "checker", "target"
    )
    if status:
        requests = requests.filter(status=status)
    return requests


def requests_page_for_dms(
    *, participant: Participant, params: Mapping[str, str], size: int, status: str = ""
) -> KeysetPage[ChangeRequest]:
    """Return one page of the firm's requests, newest first, from the cursor in `params`."""
    return keyset_page(
        requests_for_dms(participant=participant, status=status),
        order=REQUEST_ORDER,
        params=params,
        size=size,
    )


def lookalike_lines(*, batch_id: int) -> list[int]:
    """Return the lines of a bulk file that would register a domain mixing scripts."""
    non_ascii = BulkEmailRow.objects.filter(
        batch_id=batch_id,
        outcome__in=[BulkOutcome.REGISTER, BulkOutcome.CHANGE],
        email__regex=r"[^\x00-\x7F]",
    ).values_list("line", "email")
    return [line for line, email in non_ascii.order_by("line") if review_email(email).mixed_scripts]
