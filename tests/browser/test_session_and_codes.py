"""The idle time-out warning and the emailed code's resend countdown, in a real browser."""

from __future__ import annotations

import re

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from tests.factories import USER_PASSWORD
from tests.helpers import TOTP

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def field(page: Page, label: str):
    return page.get_by_label(re.compile(rf"^{re.escape(label)}:?$"))


def password_step(page: Page, base: str, login_id: str, *, query: str = "") -> None:
    page.goto(f"{base}/login/ccass/otp/online/{query}")
    field(page, "Login ID").fill(login_id)
    field(page, "Password").fill(USER_PASSWORD)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(re.compile(rf"^{re.escape(base)}/login/ccass/otp/online/verify/"))


def log_in_with_app(page: Page, base: str, user, *, query: str = "") -> None:
    password_step(page, base, user.login_id, query=query)
    field(page, "Code").fill(TOTP().code(TOTPDevice.objects.get(user=user)))
    page.get_by_role("button", name="Log in").click()


def test_the_idle_warning_lets_the_user_stay_logged_in(portal, page: Page, user, settings):
    settings.SESSION_IDLE_TIMEOUT = 5
    settings.SESSION_IDLE_WARNING_SECONDS = 3
    base = portal.url
    log_in_with_app(page, base, user)
    expect(page).to_have_url(f"{base}/online/")

    warning = page.get_by_role("alertdialog", name="Your session is about to end")
    stay = warning.get_by_role("button", name="Stay logged in")
    # Three warnings, each answered: by the third the first limit is long past.
    for _ in range(3):
        expect(warning).to_be_visible()
        expect(stay).to_be_focused()
        expect(warning.get_by_text(re.compile(r"Time left: \d:\d\d"))).to_be_visible()
        stay.click()
        expect(warning).to_be_hidden()
    expect(page).to_have_url(f"{base}/online/")
    page.reload()
    expect(page).to_have_url(f"{base}/online/")
    expect(page.get_by_role("heading", name="Online Functions")).to_be_visible()


def test_when_the_time_is_up_the_login_returns_to_the_page(portal, page: Page, user, settings):
    settings.SESSION_IDLE_TIMEOUT = 4
    settings.SESSION_IDLE_WARNING_SECONDS = 2
    base = portal.url
    log_in_with_app(page, base, user)
    page.goto(f"{base}/online/?tab=orders")
    expect(page.get_by_role("alertdialog", name="Your session is about to end")).to_be_visible()
    # Nobody answers: the page goes to the login, which remembers where it was.
    expect(page).to_have_url(
        f"{base}/login/ccass/otp/online/?next=%2Fonline%2F%3Ftab%3Dorders", timeout=15_000
    )
    expect(page.get_by_text("Your session has ended. Please log in again.")).to_be_visible()

    settings.SESSION_IDLE_TIMEOUT = 900
    field(page, "Login ID").fill(user.login_id)
    field(page, "Password").fill(USER_PASSWORD)
    page.get_by_role("button", name="Continue").click()
    field(page, "Code").fill(TOTP().code(TOTPDevice.objects.get(user=user)))
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/online/?tab=orders")


def test_the_resend_button_counts_down_then_sends(portal, page: Page, email_user, settings):
    settings.OTP_EMAIL_COOLDOWN_DURATION = 3
    base = portal.url
    password_step(page, base, email_user.login_id)
    expect(page.get_by_text("We have emailed a 6-digit code")).to_be_visible()

    resend = page.get_by_role("button", name="Email me a new code")
    expect(resend).to_be_disabled()
    expect(page.get_by_text("You can ask for a new code at")).to_be_visible()
    expect(page.get_by_text(re.compile(r"\(in \d seconds?\)"))).to_be_visible()

    expect(resend).to_be_enabled()
    expect(page.get_by_text("You can now ask for a new code.")).to_be_visible()
    expect(page.get_by_text("You can ask for a new code at")).to_be_hidden()
    resend.click()
    expect(page.get_by_text("A new code is on its way to your email.")).to_be_visible()
    expect(page.get_by_role("button", name="Email me a new code")).to_be_disabled()
