"""A whole connectivity-test event in a real browser, on a controlled clock.

A DA registers the firm in the DMS before the deadline; in Session 1 a user initiates 2FA from
the activation email and sees "Function not available"; in Session 2 the user changes the
password; after the session's end the undo has put the old password back; the staff results
page shows both checks. The clock is moved with time-machine, which the live server's thread
shares with the test; the browser's own clock plays no part.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
import time_machine
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from authn import rehearsal
from migration.connectivity import event_from_circular, hong_kong_at
from migration.models import ConnectivityCheck, Phase
from migration.services import event_publish
from participants.models import Terminal
from tests import factories
from tests.browser.test_setup_flow import (
    field,
    next_app_code,
    send_activation,
    set_up_with_app,
)
from tests.factories import USER_PASSWORD
from tests.helpers import TOTP

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

DAY = dt.date(2027, 6, 12)  # a Saturday, as the circular's
SESSION_1_PASSWORD = "lanterns over the harbour at six"
SESSION_2_PASSWORD = "a different password for session two"


def password_step(page: Page, url: str, login_id: str, password: str) -> None:
    page.goto(url)
    field(page, "Login ID").fill(login_id)
    field(page, "Password").fill(password)
    page.get_by_role("button", name="Continue").click()


def log_in(page: Page, url: str, login_id: str, password: str, code: str) -> None:
    password_step(page, url, login_id, password)
    field(page, "Code").fill(code)
    page.get_by_role("button", name="Log in").click()


def log_out(page: Page) -> None:
    page.get_by_role("button", name="Log out").first.click()


def test_a_whole_connectivity_test_event(portal, page: Page, mailoutbox, tmp_path):
    base = portal.url
    factories.set_phase("CCASS", Phase.PARALLEL_RUN)
    firm = factories.ParticipantFactory(participant_id="B30000", name="Harbour Test Securities")
    da = factories.DAFactory(participant=firm, login_id="B30000DA1")
    factories.TOTPDeviceFactory(user=da)
    user = factories.UserFactory(participant=firm, login_id="B30000U01")
    user.set_unusable_password()
    user.save()
    staff = factories.StaffFactory(login_id="hkex.events")
    factories.TOTPDeviceFactory(user=staff)
    event = event_from_circular(terminal=Terminal.objects.get(code="CCASS"), day=DAY)
    event_publish(event=event, acting_user=staff)

    # 1. Before the deadline, the DA registers the firm.
    with time_machine.travel(hong_kong_at(DAY - dt.timedelta(days=10), dt.time(10)), tick=True):
        da_code = TOTP().code(TOTPDevice.objects.get(user=da))
        log_in(page, f"{base}/login/ccass/otp/dms/", da.login_id, USER_PASSWORD, da_code)
        page.get_by_role("link", name="Events", exact=True).click()
        page.get_by_role("button", name="Register").click()
        expect(
            page.get_by_text("Your firm is registered for the connectivity test.")
        ).to_be_visible()
        log_out(page)

    # 2. Session 1: the user initiates 2FA from the activation email, then logs in.
    with time_machine.travel(hong_kong_at(DAY, dt.time(18, 10)), tick=True):
        page.goto(f"{base}/")
        expect(
            page.get_by_text(re.compile("Connectivity test in progress: Session 1"))
        ).to_be_visible()
        secret = set_up_with_app(page, base, send_activation(user, mailoutbox), SESSION_1_PASSWORD)
        page.get_by_role("button", name=re.compile("I have kept my backup codes")).click()
        device = TOTPDevice.objects.get(user=user, confirmed=True)

        def user_logs_in(password: str) -> None:
            """The user logs in for Online Functions with the app's next code."""
            code = next_app_code(secret, device)
            log_in(page, f"{base}/login/ccass/otp/online/", user.login_id, password, code)

        user_logs_in(SESSION_1_PASSWORD)
        expect(page).to_have_url(f"{base}/connectivity-test/")
        expect(page.get_by_role("heading", name="Function not available")).to_be_visible()
        expect(page.get_by_text(re.compile("Session 1 .*Primary Data Centre"))).to_be_visible()
        page.screenshot(path=tmp_path / "session-1.png", full_page=True)
        log_out(page)

    # 3. Session 2: the user logs in with what Session 1 set up, and changes the password.
    with time_machine.travel(hong_kong_at(DAY, dt.time(22, 10)), tick=True):
        user_logs_in(SESSION_1_PASSWORD)
        expect(page.get_by_text(re.compile("Session 2 .*Secondary Data Centre"))).to_be_visible()
        page.goto(f"{base}/account/password/")
        field(page, "New password").fill(SESSION_2_PASSWORD)
        field(page, "Repeat the new password").fill(SESSION_2_PASSWORD)
        field(page, "Your one-time password").fill(next_app_code(secret, device))
        page.get_by_role("button", name="Change your password").click()
        expect(page.get_by_text(re.compile("Your password has been changed"))).to_be_visible()
        log_out(page)

    # 4. After Session 2: the undo ran (beat's task); the Session 1 password works again.
    with time_machine.travel(hong_kong_at(DAY, dt.time(23, 5)), tick=True):
        # The app and the backup-code set were put back as they were.
        assert rehearsal.sessions_undo_due() == [{"accounts": 1, "devices": 2, "emails": 1}]
        page.goto(f"{base}/")
        expect(page.get_by_text(re.compile("Connectivity test in progress"))).to_have_count(0)
        password_step(page, f"{base}/login/ccass/otp/online/", user.login_id, SESSION_2_PASSWORD)
        expect(page.get_by_text("Login failed. Check your login ID and password.")).to_be_visible()
        user_logs_in(SESSION_1_PASSWORD)
        expect(page).to_have_url(f"{base}/online/")
        log_out(page)

        # 5. Staff see both checks.
        staff_code = TOTP().code(TOTPDevice.objects.get(user=staff))
        log_in(page, f"{base}/staff/login/", staff.login_id, USER_PASSWORD, staff_code)
        page.goto(f"{base}/admin/connectivity/{event.pk}/results/")
        row = page.locator(f'tr[data-user="{user.login_id}"]')
        expect(row.locator("[data-check]")).to_have_count(2)
        expect(row).to_contain_text("OTP · Online Functions · 18:10")
        expect(row).to_contain_text("OTP · Online Functions · 22:10")
        page.screenshot(path=tmp_path / "results.png", full_page=True)
    assert ConnectivityCheck.objects.filter(user=user).count() == 2
