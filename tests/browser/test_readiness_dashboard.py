"""Staff's readiness dashboard in the browser: the chart is drawn and says what the table says."""

from __future__ import annotations

import datetime as dt

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from migration import readiness
from participants.models import User
from tests import factories
from tests.factories import USER_PASSWORD
from tests.helpers import TOTP

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_the_chart_is_drawn_and_ends_where_the_table_totals_are(portal, page: Page):
    staff = factories.StaffFactory(login_id="hkex.readiness")
    factories.TOTPDeviceFactory(user=staff)
    firm = factories.ParticipantFactory(participant_id="B70000", name="Chart Securities")
    people = [factories.UserFactory(participant=firm, login_id=f"B70000U{n:02d}") for n in range(4)]
    today = readiness.hong_kong_today()
    # History: a week ago nobody was set up; two days ago one; now three.
    readiness.readiness_snapshot_take(day=today - dt.timedelta(days=7))
    User.objects.filter(pk=people[0].pk).update(two_factor_ready_at=dt.datetime.now(dt.UTC))
    readiness.readiness_snapshot_take(day=today - dt.timedelta(days=2))
    User.objects.filter(pk__in=[p.pk for p in people[1:3]]).update(
        two_factor_ready_at=dt.datetime.now(dt.UTC)
    )

    page.goto(f"{portal.url}/staff/login/")
    page.get_by_label("Login ID").fill(staff.login_id)
    page.get_by_label("Password").fill(USER_PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Code").fill(TOTP().code(TOTPDevice.objects.get(user=staff)))
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{portal.url}/admin/readiness/")

    chart = page.locator("figure.readiness-chart svg")
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100
    set_up = page.locator('polyline[data-series="set_up"]')
    expect(set_up).to_be_visible()
    values = [int(point.split(":")[1]) for point in set_up.get_attribute("data-values").split(",")]
    assert values == [0, 1, 3]
    total = page.get_by_test_id("totals").locator('[data-total="set_up"]').inner_text()
    assert total.split()[0] == str(values[-1])
    users_total = page.get_by_test_id("totals").locator('[data-total="users"]').inner_text()
    assert chart.get_attribute("data-ceiling") == users_total == "4"
    expect(page.locator('tr[data-firm="B70000"]')).to_contain_text("Chart Securities")
