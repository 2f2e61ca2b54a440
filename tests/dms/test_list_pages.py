"""The users list and the requests list, a page at a time: the same queries at any size and
depth, every row once both ways, the prefix search, and never another firm's rows."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from authn.models import ActivationToken
from common.keyset import cursor_for
from dms.models import ChangeRequest, RequestKind, RequestStatus
from dms.selectors import REQUEST_ORDER, USER_ORDER, users_for_dms
from dms.views import PAGE_SIZE
from participants.models import DaDuty, Role, Smartcard, User, UserStatus
from tests import factories
from tests.helpers import page_queries

pytestmark = pytest.mark.django_db

USERS = reverse("dms:user-list")
REQUESTS = reverse("dms:request-list")


def _add_users(firm, count: int, *, start: int = 0, prefix: str = "B10000Q") -> list[User]:
    """`count` users of `firm` in bulk, in every state the list tells apart, a share with an
    app, an open activation link or a usable card."""
    now = timezone.now()
    User.objects.bulk_create(
        User(
            login_id=f"{prefix}{n:05d}",
            participant=firm,
            email="" if n % 5 == 0 else f"q{n}@firm.example",
            email_registered_at=None if n % 5 == 0 else now,
            two_factor_ready_at=now if n % 3 == 0 else None,
            status=UserStatus.SUSPENDED if n % 7 == 0 else UserStatus.ACTIVE,
            role=Role.DA if n % 50 == 1 else Role.USER,
            da_duty=DaDuty.MAKER if n % 50 == 1 else "",
            password="!",
        )
        for n in range(start, start + count)
    )
    made = list(
        User.objects.filter(participant=firm, login_id__startswith=prefix).order_by("login_id")
    )[start : start + count]
    TOTPDevice.objects.bulk_create(
        TOTPDevice(user=u, name="Authenticator app", confirmed=True) for u in made[::3]
    )
    ActivationToken.objects.bulk_create(
        ActivationToken(user=u, token_hash=f"{u.pk:064d}", expires_at=now + dt.timedelta(days=1))
        for u in made[1::3]
    )
    Smartcard.objects.bulk_create(
        Smartcard(
            user=u,
            serial=f"S{u.pk}",
            fingerprint_sha256=f"{u.pk:064x}",
            valid_from=now - dt.timedelta(days=1),
            valid_to=now + dt.timedelta(days=300),
        )
        for u in made[::4]
    )
    return made


def _text(fragment: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def _shown(page: str, testid: str) -> list[str]:
    """The first cells of a table's rows, in the order shown."""
    start = page.index(f'data-testid="{testid}"')
    body = page[page.index("<tbody>", start) : page.index("</tbody>", start)]
    return [
        _text(re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)[0])
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
        if "colspan" not in row
    ]


def _link(page: str, rel: str) -> str | None:
    found = re.search(rf'<a href="(\?[^"]*)" rel="{rel}">', page)
    return html.unescape(found.group(1)) if found else None


def _get(client, url: str, **query: str) -> str:
    response = client.get(url, query)
    assert response.status_code == 200
    return response.content.decode()


def _queries(client, url: str, query: dict[str, str]) -> tuple[int, int]:
    """The queries of one page, and its number of rows (a page with none asks one fewer)."""
    queries, response = page_queries(client, url, query)
    assert response.status_code == 200
    return queries, len(_shown(response.content.decode(), "users"))


def _deep(firm, **query: str) -> dict[str, str]:
    """The query of the list's last page, from the cursor of the user before its last."""
    near_end = users_for_dms(participant=firm, filter_name=query.get("filter", "")).reverse()[1]
    return {**query, "after": cursor_for(near_end, USER_ORDER)}


CASES: dict[str, dict[str, str]] = {
    "first": {},
    "needs_email": {"filter": "needs_email"},
    "not_set_up": {"filter": "not_set_up"},
    "suspended": {"filter": "suspended"},
    "das": {"filter": "das"},
    "search login ID": {"q": "b10000q0"},
    "search email": {"q": "Q2"},
    "search with a filter": {"q": "b10000q0", "filter": "not_set_up"},
}


def _counts(client, firm) -> dict[str, tuple[int, int]]:
    counts = {name: _queries(client, USERS, query) for name, query in CASES.items()}
    for name in ("first", "needs_email", "not_set_up", "suspended", "das"):
        counts[f"{name}, deep"] = _queries(client, USERS, _deep(firm, **CASES[name]))
    return counts


def test_users_list_queries_are_the_same_at_30_and_20000_users(maker, firm):
    _add_users(firm, 29)  # and the maker: thirty
    assert User.objects.filter(participant=firm).count() == 30
    small = _counts(maker, firm)
    assert all(rows for _queries, rows in small.values()), small

    _add_users(firm, 20_000 - 30, start=29)
    assert User.objects.filter(participant=firm).count() == 20_000
    large = _counts(maker, firm)

    assert {name: queries for name, (queries, _) in large.items()} == {
        name: queries for name, (queries, _) in small.items()
    }
    assert large["first"][1] == PAGE_SIZE
    assert large["first, deep"][1] == 1


def test_request_list_queries_are_the_same_at_any_depth(maker, firm, maker_da, checker_da):
    targets = _add_users(firm, 30)
    _add_requests(firm, maker_da, checker_da, targets)
    small = {
        status: _request_queries(maker, firm, status) for status in ("pending", "approved", "all")
    }
    more = _add_users(firm, 2_970, start=30)
    _add_requests(firm, maker_da, checker_da, more, start=30)
    assert ChangeRequest.objects.filter(participant=firm).count() == 3_000
    large = {
        status: _request_queries(maker, firm, status) for status in ("pending", "approved", "all")
    }
    assert large == small


def _request_queries(client, firm, status: str) -> tuple[int, int]:
    first = _count_queries(client, REQUESTS, {"status": status})
    requests = ChangeRequest.objects.filter(participant=firm)
    if status != "all":
        requests = requests.filter(status=status)
    near_end = requests.order_by("created_at", "id")[3]
    deep = _count_queries(
        client, REQUESTS, {"status": status, "after": cursor_for(near_end, REQUEST_ORDER)}
    )
    return first, deep


def _count_queries(client, url: str, query: dict[str, str]) -> int:
    queries, response = page_queries(client, url, query)
    assert response.status_code == 200
    return queries


def _add_requests(firm, maker_da, checker_da, targets: list[User], *, start: int = 0) -> None:
    # Three requests share each timestamp: the id orders them.
    now = timezone.now()
    statuses = [RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.REJECTED]
    ChangeRequest.objects.bulk_create(
        ChangeRequest(
            participant=firm,
            kind=RequestKind.EMAIL_REGISTER,
            status=statuses[n % 3],
            target=target,
            target_version=0,
            payload={"email": f"new{n}@firm.example"},
            maker=maker_da,
            checker=None if n % 3 == 0 else checker_da,
            decided_at=None if n % 3 == 0 else now,
            created_at=now - dt.timedelta(minutes=n // 3),
        )
        for n, target in enumerate(targets, start=start)
    )


# Every row once, both ways ----------------------------------------------------------------


def _request_ids(page: str) -> list[str]:
    start = page.index('data-testid="requests"')
    end = page.index("</table>", start)
    return re.findall(r'href="/dms/requests/(\d+)/"', page[start:end])


def _walk(client, url: str, rows=lambda page: _shown(page, "users"), **query: str):
    """Follow "Next" from the first page to the last, then "Previous" back; return the pages."""
    pages = [_get(client, url, **query)]
    while (after := _link(pages[-1], "next")) is not None:
        assert "after=" in after
        pages.append(client.get(url + after).content.decode())
        assert len(pages) < 50, "the next links run in a circle"
    forward = [rows(page) for page in pages]
    back = [forward[-1]]
    page = pages[-1]
    while (before := _link(page, "prev")) is not None:
        page = client.get(url + before).content.decode()
        back.append(rows(page))
    assert back[::-1] == forward, "the previous links show the same pages"
    assert ">First page<" not in page
    return forward


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, lambda u: True),
        ({"filter": "not_set_up"}, lambda u: u.two_factor_ready_at is None),
        ({"filter": "needs_email"}, lambda u: u.email == ""),
        ({"q": "B10000Q001"}, lambda u: u.login_id.startswith("B10000Q001")),
        (
            {"q": "q1", "filter": "suspended"},
            lambda u: u.email.startswith("q1") and u.status == UserStatus.SUSPENDED,
        ),
    ],
)
def test_users_list_next_and_previous_show_every_user_once(maker, firm, query, expected):
    _add_users(firm, 160)
    _add_users(factories.ParticipantFactory(), 20, prefix="B10000Q001X")
    pages = _walk(maker, USERS, **query)

    shown = [login_id for page in pages for login_id in page]
    assert shown == sorted(u.login_id for u in User.objects.filter(participant=firm) if expected(u))
    assert len(shown) == len(set(shown))
    assert all(len(page) == PAGE_SIZE for page in pages[:-1])


def test_request_list_next_and_previous_show_every_request_once_newest_first(
    maker, firm, maker_da, checker_da
):
    targets = _add_users(firm, 160)
    _add_requests(firm, maker_da, checker_da, targets)
    for status, count in (("all", 160), ("pending", 54)):
        pages = _walk(maker, REQUESTS, _request_ids, status=status)
        shown = [int(pk) for page in pages for pk in page]
        requests = ChangeRequest.objects.filter(participant=firm).order_by("-created_at", "-id")
        if status != "all":
            requests = requests.filter(status=status)
        # Newest first, requests made at the same time by their id: each once.
        assert shown == list(requests.values_list("pk", flat=True))
        assert len(shown) == count
        # The links keep the tab.
        assert _link(_get(maker, REQUESTS, status=status), "next").startswith(
            f"?status={status}&after="
        )


# The search -------------------------------------------------------------------------------


def test_users_list_search_is_by_prefix_of_login_id_or_email_in_any_case(maker, firm):
    factories.UserFactory(participant=firm, login_id="B10000Ann", email="zed@firm.example")
    factories.UserFactory(participant=firm, login_id="B10000ZED", email="ann.lee@firm.example")
    # Both halves match: shown once.
    factories.UserFactory(participant=firm, login_id="ann.b", email="Ann.B@firm.example")
    factories.UserFactory(participant=firm, login_id="B10000X_1", email="x@firm.example")
    factories.UserFactory(participant=firm, login_id="B10000X21", email="y@firm.example")

    def found(q: str) -> list[str]:
        return _shown(_get(maker, USERS, q=q), "users")

    assert found("ANN") == ["ann.b", "B10000ZED"]
    assert found("b10000an") == ["B10000Ann"]
    assert found("zed@") == ["B10000Ann"]
    assert found("ann.b@firm.example") == ["ann.b"]
    # No wildcards: an underscore or a percent sign is a character like another.
    assert found("b10000x_") == ["B10000X_1"]
    assert found("%") == []
    assert found("firm.example") == []
    page = _get(maker, USERS)
    assert "Its first letters, in any case" in page
    assert 'aria-describedby="id_q_helptext"' in page


# Tenancy ----------------------------------------------------------------------------------


def test_a_cursor_from_another_firms_user_never_shows_that_firms_users(maker, firm):
    ours = _add_users(firm, 60)
    other = factories.ParticipantFactory()
    # Their login IDs sort among ours.
    theirs = _add_users(other, 60, prefix="B10000Q000")
    their_ids = {u.login_id for u in theirs}

    for where in ("after", "before"):
        for their_user in (theirs[0], theirs[30], theirs[-1]):
            cursor = cursor_for(
                User.objects.filter(pk=their_user.pk).annotate(**_key()).get(), USER_ORDER
            )
            for query in ({}, {"filter": "not_set_up"}, {"q": "b10000q000"}):
                shown = _shown(_get(maker, USERS, **query, **{where: cursor}), "users")
                assert their_ids.isdisjoint(shown)
                assert set(shown) <= {u.login_id for u in ours} | {"B10000DA1"}


def _key() -> dict[str, object]:
    from common.prefix import Folded

    return {"login_key": Folded("login_id")}


def test_a_cursor_from_another_firms_request_never_shows_that_firms_requests(
    maker, firm, maker_da, checker_da, other_firm_da
):
    _add_requests(firm, maker_da, checker_da, _add_users(firm, 10))
    other = other_firm_da.participant
    _add_requests(other, other_firm_da, other_firm_da, _add_users(other, 10, prefix="B2Q"))
    theirs = ChangeRequest.objects.filter(participant=other).order_by("-created_at", "-id")
    for where in ("after", "before"):
        cursor = cursor_for(theirs[5], REQUEST_ORDER)
        page = _get(maker, REQUESTS, status="all", **{where: cursor})
        shown = {int(pk) for pk in re.findall(r"/dms/requests/(\d+)/", page)}
        assert shown
        assert shown <= set(
            ChangeRequest.objects.filter(participant=firm).values_list("pk", flat=True)
        )


def test_a_cursor_that_is_not_one_shows_the_first_page(maker, firm):
    _add_users(firm, 60)
    first = _shown(_get(maker, USERS), "users")
    for junk in ("x", "W10=", "WyJhIiwiYiJd", "e30", "%%%"):
        assert _shown(_get(maker, USERS, after=junk), "users") == first


def test_the_flags_are_read_for_the_pages_users_only(maker, firm, other_firm):
    _add_users(firm, 60)
    _add_users(other_firm, 60, prefix="B20000Q")
    with CaptureQueriesContext(connection) as captured:
        page = _get(maker, reverse("dms:user-list"))
    assert page
    tables = ('"otp_totp_totpdevice"', '"authn_activationtoken"', '"participants_smartcard"')
    statements = [q["sql"] for q in captured.captured_queries]
    # One read per table, of the page's users' rows through user_id: never a subquery that
    # the database may answer by hashing every firm's devices, links or cards.
    for table in tables:
        reads = [sql for sql in statements if f"FROM {table}" in sql and '"user_id" IN (' in sql]
        assert len(reads) == 1, (table, statements)
    assert not [sql for sql in statements if "EXISTS" in sql]
