"""Staff read the admin in their language, with labels where the portal records codes."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from authn.models import EmailOTPDevice
from participants.models import ReportFile
from tests.authn.test_admin import _staff_login
from tests.helpers import TOTP

pytestmark = pytest.mark.django_db

CHINESE = {"HTTP_ACCEPT_LANGUAGE": "zh-hant"}


@pytest.fixture
def admin_browser(client, staff):
    _staff_login(client, staff, TOTP().code(TOTPDevice.objects.get(user=staff)))
    assert client.get(reverse("admin:index")).status_code == 200
    return client


def column(page: str, name: str) -> list[str]:
    """The cells of one column of an admin change list."""
    return [
        re.sub(r"<[^>]+>", "", cell).strip()
        for cell in re.findall(rf'<td class="field-{name}[^"]*">(.*?)</td>', page, re.S)
    ]


def test_admin_index_in_chinese_has_chinese_titles(admin_browser):
    page = admin_browser.get(reverse("admin:index"), **CHINESE).content.decode()
    assert "香港交易所終端機登入平台" in page  # the header
    assert "<title>網站管理 | 終端機登入平台</title>" in page
    assert "HKEX Terminal Access Portal" not in page
    assert "審計記錄" in page  # an app's name, from the catalogue


def test_admin_index_in_english(admin_browser):
    page = admin_browser.get(reverse("admin:index")).content.decode()
    assert "HKEX Terminal Access Portal" in page


def test_audit_list_shows_labels_not_codes(admin_browser, user):
    AuditEvent.objects.create(
        action="login", outcome="failure", user=user, login_id=user.login_id,
        participant=user.participant, scope="online", method="password",
        reason="bad_credentials",
    )  # fmt: skip
    page = admin_browser.get(reverse("admin:audit_auditevent_changelist")).content.decode()
    assert "Wrong login ID or password" in column(page, "reason_label")
    assert "Online Functions" in column(page, "scope_label")
    assert "Password" in column(page, "method_label")
    # The staff member's own OTP login, which reached this page.
    assert "Password and one-time password" in column(page, "method_label")
    assert "Failure" in column(page, "outcome")
    for code in ("bad_credentials", "password", "otp", "online", "failure", "login"):
        for name in ("reason_label", "scope_label", "method_label", "outcome", "action"):
            assert code not in column(page, name)


def test_user_list_shows_the_last_login_method_by_its_label(admin_browser, user):
    user.last_login = dt.datetime(2026, 3, 5, 1, 15, tzinfo=dt.UTC)
    user.last_login_method = "smartcard_demo"
    user.save()
    page = admin_browser.get(reverse("admin:participants_user_changelist")).content.decode()
    methods = column(page, "last_login_method_label")
    assert "Smartcard (demo card)" in methods
    assert "smartcard_demo" not in methods
    change = admin_browser.get(
        reverse("admin:participants_user_change", args=[user.pk]), **CHINESE
    ).content.decode()
    assert "智能卡（示範卡）" in change


def test_device_names_in_the_staff_language(admin_browser, email_user):
    assert EmailOTPDevice.objects.get(user=email_user).name == "Email"  # stored as it was
    page = admin_browser.get(
        reverse("admin:authn_emailotpdevice_changelist"), **CHINESE
    ).content.decode()
    assert "電郵" in column(page, "device_name")
    apps = admin_browser.get(
        reverse("admin:otp_totp_totpdevice_changelist"), **CHINESE
    ).content.decode()
    assert "認證應用程式" in column(apps, "device_name")
    assert "Authenticator app" not in column(apps, "device_name")


def test_report_titles_in_the_readers_language(admin_browser, firm):
    ReportFile.objects.create(
        participant=firm, business_date=dt.date(2026, 3, 4), title="Settlement report", file="x"
    )
    ReportFile.objects.create(
        participant=firm, business_date=dt.date(2026, 3, 4), title="Custom file", file="y"
    )
    page = admin_browser.get(
        reverse("admin:participants_reportfile_changelist"), **CHINESE
    ).content.decode()
    assert set(column(page, "title_label")) == {"交收報告", "Custom file"}


def test_report_list_in_chinese_shows_the_translated_title(client, user, firm):
    from tests.helpers import log_in_with_app

    ReportFile.objects.create(
        participant=firm, business_date=dt.date(2026, 3, 4), title="Settlement report", file="x"
    )
    log_in_with_app(client, user, scope="reports")
    page = client.get(reverse("authn:report-list"), **CHINESE).content.decode()
    assert "交收報告" in page
    assert "Settlement report" not in page
