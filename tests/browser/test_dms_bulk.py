"""A maker uploads a CSV of emails, a checker approves it, the users list shows the emails."""

from __future__ import annotations

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Browser, Page, expect

from migration.models import Phase
from participants.models import DaDuty, User
from tests import factories
from tests.factories import USER_PASSWORD
from tests.helpers import TOTP

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def log_in_to_dms(page: Page, base: str, user: User) -> None:
    page.goto(f"{base}/dms/")
    page.locator("#terminal-ccass").get_by_role(
        "link", name="Login with OTP - Security Management Functions"
    ).click()
    page.get_by_label("Login ID").fill(user.login_id)
    page.get_by_label("Password").fill(USER_PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Code").fill(TOTP().code(TOTPDevice.objects.get(user=user)))
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Security Management Functions")).to_be_visible()


def test_maker_uploads_checker_approves_list_shows_emails(
    portal, browser: Browser, page: Page, tmp_path
):
    base = portal.url
    factories.set_phase("CCASS", Phase.PARALLEL_RUN)
    firm = factories.ParticipantFactory(
        participant_id="B30000", name="Harbour View Brokers Limited"
    )
    maker = factories.DAFactory(participant=firm, login_id="B30000DA1", da_duty=DaDuty.MAKER)
    checker = factories.DAFactory(participant=firm, login_id="B30000DA2", da_duty=DaDuty.CHECKER)
    for da in (maker, checker):
        factories.TOTPDeviceFactory(user=da)
    for n in (1, 2, 3):
        factories.UserFactory(participant=firm, login_id=f"B30000U0{n}", email="")

    log_in_to_dms(page, base, maker)
    page.get_by_role("link", name="Bulk email registration").click()
    page.get_by_label("CSV file: login ID, email").set_input_files(
        files=[
            {
                "name": "emails.csv",
                "mimeType": "text/csv",
                "buffer": (
                    "\ufefflogin id,email\n"
                    "B30000U01,first@harbour.example\n"
                    "B30000U02,second@harbour.example\n"
                    "B30000U03,not-an-email\n"
                ).encode(),
            }
        ]
    )
    page.get_by_role("button", name="Upload and check").click()
    counts = page.get_by_test_id("bulk-counts")
    expect(counts).to_contain_text("2 will be registered")
    expect(counts).to_contain_text("1 refused")
    expect(page.get_by_test_id("bulk-rows")).to_contain_text("Invalid email address")
    page.get_by_role("button", name="Submit to a checker").click()
    expect(page.get_by_test_id("status")).to_have_text("Pending")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)

    checker_page = browser.new_context(locale="en-GB", timezone_id="Asia/Hong_Kong").new_page()
    try:
        log_in_to_dms(checker_page, base, checker)
        checker_page.get_by_role("navigation", name="Security Management Functions").get_by_role(
            "link", name="Requests"
        ).click()
        checker_page.get_by_role("link", name="Bulk email registration").last.click()
        checker_page.get_by_role("button", name="Approve").click()
        expect(checker_page.get_by_test_id("status")).to_have_text("Approved")
        checker_page.goto(f"{base}/dms/users/")
        users = checker_page.get_by_test_id("users")
        expect(users).to_contain_text("first@harbour.example")
        expect(users).to_contain_text("second@harbour.example")
        expect(users.locator("tr", has_text="B30000U03")).to_contain_text("Needs an email")
        checker_page.screenshot(path=tmp_path / "users-after-bulk.png", full_page=True)
    finally:
        checker_page.context.close()
