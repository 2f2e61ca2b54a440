"""Staff's readiness dashboard and the DA's own figures on the DMS home."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from migration import readiness
from migration.models import Milestone, MilestoneKind, ReadinessSnapshot
from participants.models import Participant, Terminal, User
from tests import factories
from tests.helpers import log_in_with_app, staff_logs_in

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/readiness/"


@pytest.fixture
def firms(db):
    """Two CCASS firms: Slow (nothing done, at risk) and Quick (everyone set up)."""
    slow = factories.ParticipantFactory(participant_id="B60001", name="Slow Securities")
    quick = factories.ParticipantFactory(participant_id="B60002", name="Quick Securities")
    for n in range(3):
        factories.UserFactory(participant=slow, login_id=f"B60001U{n:02d}")
        factories.UserFactory(
            participant=quick, login_id=f"B60002U{n:02d}", two_factor_ready_at=timezone.now()
        )
    Milestone.objects.filter(
        programme__terminal__code="CCASS", kind=MilestoneKind.PARALLEL_RUN_ENDS
    ).update(planned_at=timezone.now() + dt.timedelta(days=20))
    return slow, quick


def test_the_dashboard_is_for_staff_who_logged_in_with_otp(client, staff, firms):
    assert client.get(DASHBOARD).status_code == 302
    client.force_login(staff)  # a password alone
    assert client.get(DASHBOARD).status_code == 302


def test_a_da_cannot_open_the_dashboard(client, maker_da):
    log_in_with_app(client, maker_da, scope="dms")
    response = client.get(DASHBOARD)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_the_dashboard_lists_the_firms_at_risk_first_with_the_totals(client, staff, firms):
    staff_logs_in(client, staff)
    page = client.get(DASHBOARD).content.decode()
    assert page.index('data-firm="B60001"') < page.index('data-firm="B60002"')
    slow_row = page[page.index('data-firm="B60001"') :].split("</tr>", 1)[0]
    assert 'class="at-risk"' in page[page.index('data-firm="B60001"') - 40 :][:60]
    assert "at risk" in slow_row
    assert '<td data-total="users">6</td>' in page
    assert '<td data-total="set_up">3 (0 / 3)</td>' in page
    assert "End of parallel run (2FA only)" in page
    assert "1 firm at risk of missing it." in page
    assert "<svg" in page and 'data-series="set_up"' in page


def test_the_dashboard_filters_sorts_and_exports(client, staff, firms):
    staff_logs_in(client, staff)
    at_risk = client.get(DASHBOARD, {"risk": "1"}).content.decode()
    assert 'data-firm="B60001"' in at_risk and 'data-firm="B60002"' not in at_risk
    by_name = client.get(DASHBOARD, {"q": "quick"}).content.decode()
    assert 'data-firm="B60002"' in by_name and 'data-firm="B60001"' not in by_name
    by_set_up = client.get(DASHBOARD, {"sort": "-set_up"}).content.decode()
    assert by_set_up.index('data-firm="B60002"') < by_set_up.index('data-firm="B60001"')
    response = client.get(DASHBOARD, {"format": "csv"})
    assert response["Content-Disposition"].startswith("attachment")
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    by_firm = {row["participant_id"]: row for row in rows}
    assert by_firm["B60001"]["at_risk"] == "yes" and by_firm["B60002"]["at_risk"] == "no"
    assert by_firm["B60002"]["set_up"] == "3" and by_firm["B60001"]["remaining"] == "3"


def test_the_dashboard_costs_the_same_queries_at_10_and_500_firms(client, staff):
    staff_logs_in(client, staff)
    terminal = Terminal.objects.get(code="CCASS")

    def grow(total: int) -> int:
        have = Participant.objects.filter(participant_id__startswith="R").count()
        Participant.objects.bulk_create(
            Participant(participant_id=f"R{n:05d}", name=f"Crowd {n}", terminal=terminal)
            for n in range(have, total)
        )
        firm_ids = Participant.objects.filter(participant_id__startswith="R").values_list(
            "pk", flat=True
        )
        User.objects.bulk_create(
            User(login_id=f"R{pk:05d}U{n}", participant_id=pk, email=f"r{pk}.{n}@x.example")
            for pk in firm_ids[have:]
            for n in range(3)
        )
        readiness.readiness_snapshot_take(
            day=readiness.hong_kong_today() - dt.timedelta(days=total)
        )
        with CaptureQueriesContext(connection) as captured:
            assert client.get(DASHBOARD).status_code == 200
        return len(captured.captured_queries)

    assert grow(10) == grow(500)
    assert ReadinessSnapshot.objects.count() == 10 + 500


def test_the_da_sees_the_firms_figures_forecast_and_who_needs_action(client, maker_da, firm):
    User.objects.filter(pk=maker_da.pk).update(two_factor_ready_at=timezone.now())
    factories.UserFactory(participant=firm, login_id="B10000U07", email="")
    factories.UserFactory(participant=firm, login_id="B10000U08")
    log_in_with_app(client, maker_da, scope="dms")
    page = client.get(reverse("dms:home")).content.decode()
    assert '<td data-figure="users">3</td>' in page  # the DA and the two users
    assert '<td data-figure="need_action">2</td>' in page
    table = page[page.index('data-testid="needing-action"') :]
    assert "B10000U07" in table and "Register a designated email" in table
    assert "B10000U08" in table and "Set up 2FA from the activation email" in table
    assert 'data-testid="forecast"' in page


def test_the_firms_come_fifty_to_a_page(client, staff):
    terminal = Terminal.objects.get(code="CCASS")
    Participant.objects.bulk_create(
        Participant(participant_id=f"P{n:05d}", name=f"Paged {n}", terminal=terminal)
        for n in range(130)
    )
    staff_logs_in(client, staff)
    first = client.get(DASHBOARD, {"q": "paged"}).content.decode()
    assert first.count('data-firm="P') == 50
    assert "Firms 1–50 of 130" in first and "page=2" in first
    last = client.get(DASHBOARD, {"q": "paged", "page": "3"}).content.decode()
    assert last.count('data-firm="P') == 30 and "Firms 101–130 of 130" in last
    assert "page=2" in last and "page=4" not in last
    assert client.get(DASHBOARD, {"page": "x"}).status_code == 200


def test_the_admin_links_to_the_dashboard(client, staff):
    staff_logs_in(client, staff)
    page = client.get(reverse("admin:index")).content.decode()
    assert f'href="{DASHBOARD}"' in page
