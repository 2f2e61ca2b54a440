"""Staff's results of a connectivity test: per session, per firm and user, the registered firms
with no check, and the CSV export."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.utils import timezone

from migration import connectivity, services
from migration.models import CheckMethod, ConnectivityEvent
from participants.models import Terminal
from tests import factories
from tests.helpers import log_in_with_app, page_queries, staff_logs_in

pytestmark = pytest.mark.django_db

HKT = connectivity.HONG_KONG


def _results_url(event: ConnectivityEvent) -> str:
    return f"/admin/connectivity/{event.pk}/results/"


@pytest.fixture
def event(staff):
    """The circular's event on CCASS a month ahead, published."""
    today = timezone.localdate(timezone=HKT)
    event = connectivity.event_from_circular(
        terminal=Terminal.objects.get(code="CCASS"), day=today + dt.timedelta(days=30)
    )
    return services.event_publish(event=event, acting_user=staff)


def _at(event: ConnectivityEvent, hour: int, minute: int) -> dt.datetime:
    return dt.datetime.combine(event.day, dt.time(hour, minute), tzinfo=HKT)


def _register(event: ConnectivityEvent, da) -> None:
    connectivity.registration_register(
        event_id=event.pk, participant=da.participant, acting_user=da
    )


def _check(event: ConnectivityEvent, session: str, user, method: str, scope: str, at) -> None:
    assert connectivity.check_record(
        session=event.sessions.get(name=session), user=user, method=method, scope=scope, now=at
    )


@pytest.fixture
def results(event):
    """Alpha (registered, checks in both sessions), Beta (registered, no check), Gamma (not
    registered)."""
    alpha = factories.ParticipantFactory(participant_id="B40001", name="Alpha Securities")
    beta = factories.ParticipantFactory(participant_id="B40002", name="Beta Brokers")
    gamma = factories.ParticipantFactory(participant_id="B40003", name="Gamma Limited")
    alpha_da = factories.DAFactory(participant=alpha, login_id="B40001DA1")
    beta_da = factories.DAFactory(participant=beta, login_id="B40002DA1")
    factories.DAFactory(participant=gamma, login_id="B40003DA1")
    one = factories.UserFactory(participant=alpha, login_id="B40001U01")
    two = factories.UserFactory(participant=alpha, login_id="B40001U02")
    _register(event, alpha_da)
    _register(event, beta_da)
    _check(event, "Session 1", one, CheckMethod.SMARTCARD, "online", _at(event, 18, 5))
    _check(event, "Session 1", one, CheckMethod.OTP, "online", _at(event, 18, 10))
    _check(event, "Session 1", two, CheckMethod.OTP, "reports", _at(event, 18, 20))
    _check(event, "Session 1", alpha_da, CheckMethod.SMARTCARD, "dms", _at(event, 18, 30))
    _check(event, "Session 2", one, CheckMethod.OTP, "online", _at(event, 22, 5))
    return event


def _between(page: str, start: str, end: str) -> str:
    begin = page.index(start)
    return page[begin : page.index(end, begin)]


def test_the_results_show_the_totals_per_session(client, staff, results):
    staff_logs_in(client, staff)
    page = client.get(_results_url(results)).content.decode()
    one = _between(page, '<tr data-session="Session 1">', "</tr>")
    assert "Primary Data Centre" in one
    assert '<td data-total="checks">4</td>' in one
    assert '<td data-total="users">3</td>' in one
    assert '<td data-total="firms">1</td>' in one
    two = _between(page, '<tr data-session="Session 2">', "</tr>")
    assert "Secondary Data Centre" in two
    assert '<td data-total="checks">1</td><td data-total="users">1</td>' in two
    assert "2 firms registered." in page


def test_the_results_show_each_users_checks_session_by_session(client, staff, results):
    staff_logs_in(client, staff)
    page = client.get(_results_url(results)).content.decode()
    alpha = _between(page, '<tbody data-firm="B40001">', "</tbody>")
    assert "Alpha Securities" in alpha
    assert alpha.index('data-user="B40001DA1"') < alpha.index('data-user="B40001U01"')
    one = _between(alpha, '<tr data-user="B40001U01">', "</tr>")
    session_1, session_2 = one.split("<td>")[1:]
    assert "Smartcard · Online Functions · 18:05" in session_1
    assert "OTP · Online Functions · 18:10" in session_1
    assert "OTP · Online Functions · 22:05" in session_2
    two = _between(alpha, '<tr data-user="B40001U02">', "</tr>")
    assert "OTP · Overnight Report Download · 18:20" in two.split("<td>")[1]
    da = _between(alpha, '<tr data-user="B40001DA1">', "</tr>")
    assert "Smartcard · Security Management Functions · 18:30" in da
    assert 'data-firm="B40002"' not in _between(page, 'data-testid="checks"', "</table>")


def test_the_results_list_the_registered_firms_with_no_check(client, staff, results):
    staff_logs_in(client, staff)
    page = client.get(_results_url(results)).content.decode()
    without = _between(page, 'data-testid="without-check"', "</ul>")
    assert 'data-firm="B40002"' in without and "Beta Brokers" in without
    assert "registered by B40002DA1" in without
    assert "B40001" not in without
    assert "B40003" not in page  # not registered, no check: not part of the test


def test_the_results_export_one_row_per_check_and_per_firm_without_one(client, staff, results):
    staff_logs_in(client, staff)
    response = client.get(_results_url(results), {"format": "csv"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="connectivity-CCASS-{results.day.isoformat()}.csv"'
    )
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text)))
    day = results.day.isoformat()
    assert rows == [
        [
            "participant_id",
            "firm",
            "login_id",
            "session",
            "data_centre",
            "method",
            "scope",
            "completed_at",
        ],
        ["B40001", "Alpha Securities", "B40001DA1", "Session 1", "primary", "smartcard", "dms"]
        + [f"{day} 18:30:00"],
        ["B40001", "Alpha Securities", "B40001U01", "Session 1", "primary", "smartcard", "online"]
        + [f"{day} 18:05:00"],
        ["B40001", "Alpha Securities", "B40001U01", "Session 1", "primary", "otp", "online"]
        + [f"{day} 18:10:00"],
        ["B40001", "Alpha Securities", "B40001U01", "Session 2", "secondary", "otp", "online"]
        + [f"{day} 22:05:00"],
        ["B40001", "Alpha Securities", "B40001U02", "Session 1", "primary", "otp", "reports"]
        + [f"{day} 18:20:00"],
        ["B40002", "Beta Brokers", "", "", "", "", "", ""],
    ]


def test_an_event_with_no_check_yet(client, staff, event):
    staff_logs_in(client, staff)
    page = client.get(_results_url(event)).content.decode()
    assert "No check has been completed yet." in page
    assert '<td data-total="checks">0</td>' in page
    response = client.get(_results_url(event), {"format": "csv"})
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    assert len(list(csv.reader(io.StringIO(text)))) == 1


def test_the_results_are_for_staff_who_logged_in_with_otp(client, staff, maker_da, results):
    url = _results_url(results)
    assert client.get(url)["Location"].startswith("/admin/login/")
    client.force_login(staff)  # a password alone
    assert client.get(url)["Location"].startswith("/admin/login/")
    client.logout()
    log_in_with_app(client, maker_da, scope="dms")
    for query in ({}, {"format": "csv"}):
        response = client.get(url, query)
        assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_an_unknown_event_is_not_found(client, staff):
    staff_logs_in(client, staff)
    assert client.get("/admin/connectivity/999/results/").status_code == 404


def test_the_results_cost_the_same_queries_for_one_check_and_many(client, staff, event):
    first = factories.ParticipantFactory(participant_id="B50000")
    first_da = factories.DAFactory(participant=first, login_id="B50000DA1")
    _register(event, first_da)
    _check(event, "Session 1", first_da, CheckMethod.SMARTCARD, "dms", _at(event, 18, 1))
    staff_logs_in(client, staff)
    url = _results_url(event)
    one, response = page_queries(client, url)
    assert response.status_code == 200 and 'data-user="B50000DA1"' in response.content.decode()

    for n in range(1, 6):
        firm = factories.ParticipantFactory(participant_id=f"B5000{n}")
        da = factories.DAFactory(participant=firm, login_id=f"B5000{n}DA1")
        _register(event, da)
        for u in range(3):
            user = factories.UserFactory(participant=firm, login_id=f"B5000{n}U{u:02d}")
            for session, hour in (("Session 1", 18), ("Session 2", 22)):
                for scope, method in (("online", "smartcard"), ("reports", "otp")):
                    _check(event, session, user, method, scope, _at(event, hour, 10 + u))
    quiet = factories.ParticipantFactory(participant_id="B59999")
    _register(event, factories.DAFactory(participant=quiet, login_id="B59999DA1"))
    many, response = page_queries(client, url)
    page = response.content.decode()
    assert page.count("<div data-check>") == 1 + 5 * 3 * 4
    assert 'data-firm="B59999"' in _between(page, 'data-testid="without-check"', "</ul>")
    assert many == one
