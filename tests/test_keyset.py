"""Keyset pagination (common.keyset): every row once, in order, both ways, at any depth."""

from __future__ import annotations

import datetime as dt

import pytest
from django.http import QueryDict
from django.utils import timezone

from audit.models import AuditEvent
from common.keyset import Order, cursor_for, keyset_page
from participants.models import User
from tests import factories

NEWEST_FIRST = Order(keys=("at", "id"), descending=True)


def _walk(queryset, order, size, params=None):
    """Follow the next links from the first page; return the pages' rows."""
    pages = []
    page = keyset_page(queryset, order=order, params=QueryDict(params or ""), size=size)
    pages.append(page)
    while page.has_next:
        page = keyset_page(queryset, order=order, params=QueryDict(page.next_query), size=size)
        pages.append(page)
        assert len(pages) <= 100, "the next links run in a circle"
    return pages


@pytest.fixture
def events(firm):
    # Ten events, several sharing one timestamp: the id breaks the tie.
    start = timezone.now()
    made = [
        AuditEvent.objects.create(
            action="login",
            outcome="success",
            participant=firm,
            at=start - dt.timedelta(seconds=n // 3),
        )
        for n in range(10)
    ]
    return made


def test_pages_newest_first_hold_every_row_once(firm, events):
    queryset = AuditEvent.objects.for_participant(firm)
    expected = list(queryset.order_by("-at", "-id"))
    pages = _walk(queryset, NEWEST_FIRST, 3)
    assert [len(page) for page in pages] == [3, 3, 3, 1]
    assert [row for page in pages for row in page] == expected
    assert pages[0].is_first and not pages[0].has_previous
    assert all(page.has_previous for page in pages[1:])


def test_previous_pages_walk_back_to_the_first(firm, events):
    queryset = AuditEvent.objects.for_participant(firm)
    pages = _walk(queryset, NEWEST_FIRST, 3)
    page = pages[-1]
    seen = [list(page)]
    while page.has_previous:
        page = keyset_page(
            queryset, order=NEWEST_FIRST, params=QueryDict(page.previous_query), size=3
        )
        seen.insert(0, list(page))
        assert len(seen) <= 100, "the previous links run in a circle"
    # The way back ends on the first page, full, as the way forward started.
    assert seen[0] == list(pages[0]) and page.is_first
    assert [row for rows in seen for row in rows][:9] == [row for p in pages[:3] for row in p]


def test_filters_are_kept_in_the_links(firm, events):
    queryset = AuditEvent.objects.for_participant(firm)
    page = keyset_page(
        queryset, order=NEWEST_FIRST, params=QueryDict("action=login&user=B1"), size=3
    )
    following = QueryDict(page.next_query)
    assert following["action"] == "login" and following["user"] == "B1" and "after" in following
    assert QueryDict(page.first_query).dict() == {"action": "login", "user": "B1"}


@pytest.mark.parametrize("cursor", ["", "!!!", "bm90IGpzb24", "WzFd", "WyJ4IiwiYSJd", "x" * 600])
def test_a_cursor_that_does_not_decode_shows_the_first_page(firm, events, cursor):
    queryset = AuditEvent.objects.for_participant(firm)
    page = keyset_page(queryset, order=NEWEST_FIRST, params=QueryDict(f"after={cursor}"), size=3)
    assert page.is_first
    assert list(page) == list(queryset.order_by("-at", "-id")[:3])


def test_microseconds_survive_the_cursor(firm):
    # Rows a microsecond apart: a cursor that kept only milliseconds would skip or repeat them.
    start = timezone.now().replace(microsecond=500_000)
    for n in range(5):
        AuditEvent.objects.create(
            action="login",
            outcome="success",
            participant=firm,
            at=start + dt.timedelta(microseconds=n),
        )
    queryset = AuditEvent.objects.for_participant(firm)
    pages = _walk(queryset, NEWEST_FIRST, 2)
    assert [row for page in pages for row in page] == list(queryset.order_by("-at", "-id"))


def test_ascending_single_key(firm):
    for n in range(7):
        factories.UserFactory(participant=firm, login_id=f"{firm.participant_id}U{n:02d}")
    queryset = User.objects.for_participant(firm)
    order = Order(keys=("login_id",))
    pages = _walk(queryset, order, 2)
    assert [u.login_id for p in pages for u in p] == sorted(
        queryset.values_list("login_id", flat=True)
    )
    # A cursor made from a row starts just past it.
    third = queryset.order_by("login_id")[2]
    page = keyset_page(
        queryset, order=order, params=QueryDict(f"after={cursor_for(third, order)}"), size=2
    )
    assert [u.login_id for u in page] == list(
        queryset.order_by("login_id").values_list("login_id", flat=True)[3:5]
    )
