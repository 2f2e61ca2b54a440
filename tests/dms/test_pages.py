"""The DMS pages a DA reads: the users list, the requests, the audit trail and its CSV."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import re

import pytest
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from authn.models import ActivationToken
from common.keyset import cursor_for
from dms.models import ChangeRequest, RequestKind, RequestStatus
from dms.selectors import USER_ORDER, users_for_dms
from dms.views import PAGE_SIZE
from participants.models import User, UserStatus
from tests import factories
from tests.helpers import log_in_with_app, page_queries

pytestmark = pytest.mark.django_db

HKT = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture
def maker(client, maker_da):
    log_in_with_app(client, maker_da, scope="dms")
    return client


def text(fragment: str) -> str:
    """What a person reads in a piece of HTML."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def table_rows(page: str, testid: str) -> list[list[str]]:
    """The rows of a table as lists of cell texts, without the "nothing here" row."""
    start = page.index(f'data-testid="{testid}"')
    body = page[page.index("<tbody>", start) : page.index("</tbody>", start)]
    return [
        [text(cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
        if "colspan" not in row
    ]


def users_listed(client, **query: str) -> dict[str, list[str]]:
    """The users list's rows by login ID, in the order shown."""
    response = client.get(reverse("dms:user-list"), query)
    assert response.status_code == 200
    return {row[0]: row for row in table_rows(response.content.decode(), "users")}


# The users list ----------------------------------------------------------------------------


@pytest.fixture
def people(parallel_run, firm, maker_da):
    """Users of the firm in every state the list tells apart."""
    now = timezone.now()
    app = factories.UserFactory(
        participant=firm,
        login_id="B10000APP",
        email="app.user@firm.example",
        email_registered_by=maker_da,
        email_registered_at=dt.datetime(2026, 3, 2, 10, 30, tzinfo=HKT),
        two_factor_ready_at=now,
        last_login=dt.datetime(2026, 3, 5, 9, 15, tzinfo=HKT),
        last_login_method="otp",
    )
    factories.TOTPDeviceFactory(user=app)
    factories.SmartcardFactory(user=app)
    by_mail = factories.UserFactory(
        participant=firm, login_id="B10000MAIL", email="mail.user@firm.example"
    )
    User.objects.filter(pk=by_mail.pk).update(two_factor_ready_at=now)
    factories.EmailOTPDeviceFactory(user=by_mail)
    # An expired card is no usable card.
    factories.SmartcardFactory(
        user=by_mail,
        valid_from=now - dt.timedelta(days=400),
        valid_to=now - dt.timedelta(days=1),
    )
    sent = factories.UserFactory(
        participant=firm,
        login_id="B10000SENT",
        email="sent.user@firm.example",
        last_login=dt.datetime(2026, 3, 4, 18, 0, tzinfo=HKT),
        last_login_method="smartcard",
    )
    ActivationToken.objects.create(
        user=sent, token_hash="a" * 64, expires_at=now + dt.timedelta(hours=1)
    )
    bare = factories.UserFactory(
        participant=firm, login_id="B10000BARE", email="", email_registered_at=None
    )
    # A link that was used up no longer counts as "activation sent".
    ActivationToken.objects.create(
        user=bare, token_hash="b" * 64, expires_at=now + dt.timedelta(hours=1), used_at=now
    )
    away = factories.UserFactory(
        participant=firm,
        login_id="B10000AWAY",
        email="away.user@firm.example",
        status=UserStatus.SUSPENDED,
    )
    factories.UserFactory(participant=factories.ParticipantFactory(), login_id="B30000THEM")
    return {"app": app, "mail": by_mail, "sent": sent, "bare": bare, "away": away}


def test_users_list_shows_each_users_state(maker, maker_da, people):
    rows = users_listed(maker)

    assert list(rows) == sorted(rows)
    assert "B30000THEM" not in rows
    app = rows["B10000APP"]
    assert app[1:4] == [
        "User",
        "Active",
        f"app.user@firm.example by {maker_da.login_id}, 2026-03-02 10:30",
    ]
    assert app[4:] == ["Set up · app", "Valid", "2026-03-05 09:15 · Password and one-time password"]
    assert rows["B10000MAIL"][4:6] == ["Set up · email", "—"]
    assert rows["B10000SENT"][4:] == ["Activation sent", "—", "2026-03-04 18:00 · Smartcard"]
    assert rows["B10000BARE"][3:] == ["Needs an email", "Not set up", "—", "—"]
    assert rows["B10000AWAY"][2] == "Suspended"
    assert rows[maker_da.login_id][1] == "Delegated Administrator (Maker)"


@pytest.mark.parametrize(
    ("name", "listed"),
    [
        ("needs_email", {"B10000BARE"}),
        ("not_set_up", {"B10000SENT", "B10000BARE", "B10000AWAY", "B10000DA1"}),
        ("suspended", {"B10000AWAY"}),
        ("das", {"B10000DA1"}),
        ("", {"B10000APP", "B10000MAIL", "B10000SENT", "B10000BARE", "B10000AWAY", "B10000DA1"}),
    ],
)
def test_users_list_filters(maker, people, name, listed):
    assert set(users_listed(maker, filter=name)) == listed


@pytest.mark.parametrize(
    ("q", "listed"),
    [
        ("b10000ma", {"B10000MAIL"}),  # login ID, any case
        ("MAIL.USER@", {"B10000MAIL"}),  # email, any case
        (
            "B10000",
            {"B10000APP", "B10000MAIL", "B10000SENT", "B10000BARE", "B10000AWAY", "B10000DA1"},
        ),
        ("  sent ", {"B10000SENT"}),  # the email's first letters, the spaces around ignored
        ("firm.example", set()),  # a search finds what starts with the term, not what holds it
        ("B30000THEM", set()),  # another firm's user is never found
        ("nobody", set()),
    ],
)
def test_users_list_search_by_login_id_or_email(maker, people, q, listed):
    assert set(users_listed(maker, q=q)) == listed


def test_users_list_search_and_filter_together(maker, people):
    assert set(users_listed(maker, q="b10000a", filter="suspended")) == {"B10000AWAY"}
    assert set(users_listed(maker, q="away.", filter="suspended")) == {"B10000AWAY"}
    assert set(users_listed(maker, q="b10000a", filter="das")) == set()


def test_users_list_with_nothing_found_says_so(maker, people):
    page = maker.get(reverse("dms:user-list"), {"q": "nobody"}).content.decode()
    assert "No users match." in page


def test_users_list_ignores_an_unknown_filter(maker, people):
    assert len(users_listed(maker, filter="everyone")) == 6


def test_users_list_pages_by_fifty(maker, firm, maker_da):
    # With the maker, sixty users.
    for n in range(59):
        factories.UserFactory(participant=firm, login_id=f"B10000P{n:02d}")
    assert User.objects.filter(participant=firm).count() == 60

    first = maker.get(reverse("dms:user-list")).content.decode()
    assert len(table_rows(first, "users")) == PAGE_SIZE == 50
    assert "Previous" not in first
    (after,) = re.findall(r'href="\?(after=[^"]+)" rel="next">Next<', first)

    second = maker.get(reverse("dms:user-list") + "?" + html.unescape(after)).content.decode()
    assert len(table_rows(second, "users")) == 10
    assert 'rel="next"' not in second
    assert 'rel="prev">Previous<' in second
    assert ">First page<" in second
    shown_first = {row[0] for row in table_rows(first, "users")}
    assert shown_first.isdisjoint(row[0] for row in table_rows(second, "users"))

    # The page links keep the filter and the search.
    filtered = maker.get(reverse("dms:user-list"), {"filter": "not_set_up", "q": "B10000P"})
    assert 'href="?filter=not_set_up&amp;q=B10000P&amp;after=' in filtered.content.decode()


# Query counts ------------------------------------------------------------------------------


def _queries(client, url: str, **query: str) -> int:
    queries, response = page_queries(client, url, query)
    assert response.status_code == 200
    return queries


def _add_users(firm, registered_by: User, count: int, start: int) -> list[User]:
    now = timezone.now()
    users = User.objects.bulk_create(
        User(
            login_id=f"B10000Q{n:04d}",
            participant=firm,
            email=f"q{n}@firm.example",
            email_registered_by=registered_by,
            email_registered_at=now,
            two_factor_ready_at=now if n % 3 == 0 else None,
            last_login=now if n % 2 == 0 else None,
            last_login_method="otp" if n % 2 == 0 else "",
            status=UserStatus.SUSPENDED if n % 7 == 0 else UserStatus.ACTIVE,
            password="!",
        )
        for n in range(start, start + count)
    )
    users = list(User.objects.filter(login_id__in=[u.login_id for u in users]))
    TOTPDevice.objects.bulk_create(
        TOTPDevice(user=u, name="Authenticator app", confirmed=True) for u in users[::3]
    )
    return users


def test_users_list_queries_do_not_grow_with_users(maker, firm, maker_da):
    _add_users(firm, maker_da, 9, start=0)
    assert User.objects.filter(participant=firm).count() == 10
    at_ten = _queries(maker, reverse("dms:user-list"))
    filtered_at_ten = _queries(maker, reverse("dms:user-list"), filter="not_set_up", q="q")

    _add_users(firm, maker_da, 990, start=9)
    assert User.objects.filter(participant=firm).count() == 999 + 1
    last = users_for_dms(participant=firm).reverse()[PAGE_SIZE]
    at_thousand = _queries(maker, reverse("dms:user-list"))
    filtered_at_thousand = _queries(maker, reverse("dms:user-list"), filter="not_set_up", q="q")
    last_page = _queries(maker, reverse("dms:user-list"), after=cursor_for(last, USER_ORDER))

    assert at_ten == at_thousand == last_page
    assert filtered_at_ten == filtered_at_thousand


def _add_requests(firm, maker_da, checker_da, targets: list[User]) -> None:
    now = timezone.now()
    statuses = [RequestStatus.PENDING, RequestStatus.APPROVED, RequestStatus.REJECTED]
    ChangeRequest.objects.bulk_create(
        ChangeRequest(
            participant=firm,
            kind=RequestKind.EMAIL_REGISTER,
            status=statuses[n % 3],
            target=target,
            target_version=0,
            payload={"email": f"new{n}@firm.example", "previous_email": target.email},
            maker=maker_da,
            checker=None if n % 3 == 0 else checker_da,
            decided_at=None if n % 3 == 0 else now,
            created_at=now - dt.timedelta(minutes=n),
        )
        for n, target in enumerate(targets)
    )


@pytest.mark.parametrize("status", ["pending", "all"])
def test_request_list_queries_do_not_grow_with_requests(maker, firm, maker_da, checker_da, status):
    targets = _add_users(firm, maker_da, 1000, start=0)
    _add_requests(firm, maker_da, checker_da, targets[:10])
    at_ten = _queries(maker, reverse("dms:request-list"), status=status)

    _add_requests(firm, maker_da, checker_da, targets[10:])
    assert ChangeRequest.objects.filter(participant=firm).count() == 1000
    at_thousand = _queries(maker, reverse("dms:request-list"), status=status)

    assert at_ten == at_thousand


def test_audit_list_queries_do_not_grow_with_rows(maker, firm, maker_da, user):
    def add(count: int) -> None:
        AuditEvent.objects.bulk_create(
            AuditEvent(
                action="request_made",
                outcome="success",
                user=user,
                login_id=user.login_id,
                actor=maker_da,
                participant=firm,
            )
            for _ in range(count)
        )

    add(10)
    at_ten = _queries(maker, reverse("dms:audit-list"))
    add(990)
    assert _queries(maker, reverse("dms:audit-list")) == at_ten


# The requests list ------------------------------------------------------------------------


def test_request_list_shows_pending_first_and_each_status_on_its_tab(
    maker, firm, maker_da, checker_da, user, email_user, other_firm_da, other_firm_user
):
    _add_requests(firm, maker_da, checker_da, [user, email_user])  # one pending, one approved
    _add_requests(other_firm_da.participant, other_firm_da, other_firm_da, [other_firm_user])

    def listed(**query: str) -> list[list[str]]:
        page = maker.get(reverse("dms:request-list"), query).content.decode()
        return table_rows(page, "requests")

    assert (
        "No requests."
        in maker.get(reverse("dms:request-list"), {"status": "outdated"}).content.decode()
    )

    (pending,) = listed()
    assert pending[1:] == [
        "Register or change designated email → new0@firm.example",
        user.login_id,
        maker_da.login_id,
        "Pending",
        "—",
    ]
    (approved,) = listed(status="approved")
    assert approved[2:] == [email_user.login_id, maker_da.login_id, "Approved", checker_da.login_id]
    assert len(listed(status="all")) == 2
    assert listed(status="rejected") == []
    # An unknown tab falls back to the pending one.
    assert len(listed(status="bogus")) == 1


# The audit trail ---------------------------------------------------------------------------


@pytest.fixture
def trail(firm, other_firm, maker_da, checker_da, user, other_firm_user):
    """A few days of the firm's audit trail, and a row of another firm."""

    def row(day: int, action: str, who: User, actor: User | None = None, **extra) -> AuditEvent:
        return AuditEvent.objects.create(
            at=dt.datetime(2026, 3, day, 12, 0, tzinfo=HKT),
            action=action,
            outcome="success",
            user=who,
            login_id=who.login_id,
            actor=actor,
            participant=who.participant,
            **extra,
        )

    return [
        row(1, "login", user, method="otp", scope="online", ip="203.0.113.7"),
        row(2, "request_made", user, maker_da),
        row(3, "request_rejected", user, checker_da, reason='=HYPERLINK("http://x")'),
        row(4, "setup_completed", user),
        row(4, "login", other_firm_user, method="otp", scope="online"),
    ]


def audit_listed(client, **query: str) -> list[list[str]]:
    return table_rows(client.get(reverse("dms:audit-list"), query).content.decode(), "audit")


def _logged_in_rows(rows: list[list[str]]) -> list[list[str]]:
    """The rows the fixture wrote, without the maker's own login to reach the page."""
    return [r for r in rows if not (r[1] == "Login" and r[3] == "B10000DA1")]


def test_audit_trail_shows_the_firms_rows_only_newest_first(maker, trail, other_firm_user):
    rows = _logged_in_rows(audit_listed(maker))
    assert [(r[1], r[3], r[4]) for r in rows] == [
        ("2FA setup completed", "B10000U01", ""),
        ("Request rejected", "B10000U01", "B10000DA2"),
        ("Request made", "B10000U01", "B10000DA1"),
        ("Login", "B10000U01", ""),
    ]
    assert rows[-1][5:7] == ["Password and one-time password", "203.0.113.7"]
    assert other_firm_user.login_id not in maker.get(reverse("dms:audit-list")).content.decode()


@pytest.mark.parametrize(
    ("query", "actions"),
    [
        (
            {"user": "b10000u01"},
            ["2FA setup completed", "Request rejected", "Request made", "Login"],
        ),
        # The acting DA's login ID finds what they did.
        ({"user": "B10000DA2"}, ["Request rejected"]),
        ({"action": "request_made"}, ["Request made"]),
        (
            {"date_from": "2026-03-02", "date_to": "2026-03-03"},
            ["Request rejected", "Request made"],
        ),
        ({"date_from": "2026-03-04", "user": "B10000U01"}, ["2FA setup completed"]),
        ({"date_to": "2026-03-01"}, ["Login"]),
        ({"user": "B20000U01"}, []),
    ],
)
def test_audit_trail_filters(maker, trail, query, actions):
    assert [r[1] for r in _logged_in_rows(audit_listed(maker, **query))] == actions


def test_audit_trail_invalid_date_is_a_form_error(maker, trail):
    response = maker.get(reverse("dms:audit-list"), {"date_from": "2026-02-31"})
    assert response.status_code == 200
    assert "Enter a valid date." in response.content.decode()
    csv_response = maker.get(reverse("dms:audit-csv"), {"date_from": "yesterday"})
    assert csv_response.status_code == 200


def test_audit_trail_unknown_action_is_a_form_error(maker, trail):
    response = maker.get(reverse("dms:audit-list"), {"action": "everything"})
    assert response.status_code == 200
    assert "Select a valid choice." in response.content.decode()


def _csv(client, **query: str) -> str:
    response = client.get(reverse("dms:audit-csv"), query)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="audit-trail.csv"'
    return b"".join(response.streaming_content).decode("utf-8")


def test_audit_csv_has_a_bom_a_header_and_the_firms_rows_only(maker, trail):
    content = _csv(maker)
    assert content.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(content.removeprefix("\ufeff"))))
    assert rows[0] == [
        "Time",
        "Action",
        "Outcome",
        "Login ID",
        "By",
        "Function",
        "Method",
        "IP address",
        "Reason",
        "Action code",
    ]
    body = rows[1:]
    assert [r[3] for r in body if r[1] != "Login" or r[3] != "B10000DA1"] == ["B10000U01"] * 4
    assert "B20000U01" not in content
    # Oldest first, as a spreadsheet is read.
    assert body[0][:5] == ["2026-03-01T12:00:00+08:00", "Login", "Success", "B10000U01", ""]
    assert body[0][5:] == [
        "Online Functions",
        "Password and one-time password",
        "203.0.113.7",
        "",
        "login",
    ]
    assert [r[0] for r in body] == sorted(r[0] for r in body)


def test_audit_csv_follows_the_filters(maker, trail):
    rows = list(csv.reader(io.StringIO(_csv(maker, action="request_made").removeprefix("\ufeff"))))
    assert [r[1] for r in rows[1:]] == ["Request made"]
    assert rows[1][4] == "B10000DA1"


def test_audit_csv_defuses_spreadsheet_formulas(maker, trail):
    """A rejection reason is free text a DA typed; a spreadsheet must not run it."""
    rows = list(
        csv.reader(io.StringIO(_csv(maker, action="request_rejected").removeprefix("\ufeff")))
    )
    assert rows[1][8] == '\'=HYPERLINK("http://x")'


def test_audit_page_links_its_csv_with_the_same_filters(maker, trail):
    page = maker.get(reverse("dms:audit-list"), {"user": "B10000U01", "action": "login"})
    assert (
        f'href="{reverse("dms:audit-csv")}?user=B10000U01&amp;action=login"'
        in page.content.decode()
    )


def test_other_firms_da_sees_only_their_own_trail(client, other_firm_da, trail):
    log_in_with_app(client, other_firm_da, scope="dms")
    content = _csv(client)
    assert "B10000U01" not in content
    assert "B20000U01" in content
    listed = {r[3] for r in audit_listed(client)}
    assert listed == {"B20000U01", other_firm_da.login_id}


def test_home_counts_the_firms_users_and_pending_requests(maker, people, checker_da):
    page = text(maker.get(reverse("dms:home")).content.decode())
    firm_users = User.objects.filter(participant=people["app"].participant).count()
    assert f"{firm_users} users" in page
    assert "1 without a designated email" in page
    not_set_up = User.objects.filter(
        participant=people["app"].participant, two_factor_ready_at__isnull=True
    ).count()
    assert f"{not_set_up} not set up for 2FA" in page
    assert "0 requests waiting for a checker" in page
