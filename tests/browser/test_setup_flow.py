"""A participant's whole way from the activation email to Online Functions, in a real browser."""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path

import pytest
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from authn import activation
from authn.models import BackupCodeDevice, EmailOTPDevice
from migration.models import Phase
from participants.models import User
from tests import factories

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

NEW_PASSWORD = "quiet harbour lanterns drift home"
LINK = re.compile(r"https?://\S+/activate/#[A-Za-z0-9_-]+")
CODE = re.compile(r"\b(\d{6})\b")
# The backup-code page's controls, read in English or Chinese.
KEPT = re.compile("^(I have kept my backup codes|我已保存後備代碼)$")
COPY = re.compile("^(Copy the backup codes|複製後備代碼)$")
COPIED = re.compile("^(Copied|已複製)$")


# Helpers ----------------------------------------------------------------------------------


def participant_user(login_id: str) -> User:
    """A CCASS participant's user with a designated email and no 2FA yet, in parallel run."""
    factories.set_phase("CCASS", Phase.PARALLEL_RUN)
    firm = factories.ParticipantFactory(name="Golden Harbour Securities Limited")
    return factories.UserFactory(participant=firm, login_id=login_id)


def send_activation(user: User, mailoutbox) -> str:
    """Have the activation email sent, as a Delegated Administrator would, and return its link."""
    # A transactional database commits at once, so the on_commit hook (and the eager
    # Celery task behind it) runs inside this call.
    activation.activation_send(user=user, acting_user=None)
    mails = [mail for mail in mailoutbox if mail.to == [user.email]]
    assert len(mails) == 1, [mail.subject for mail in mailoutbox]
    match = LINK.search(mails[0].body)
    assert match, mails[0].body
    return match.group(0)


def latest_code_mailed_to(user: User, mailoutbox, *, after: int) -> str:
    """The 6-digit code of the newest email to the user among those after the first `after`."""
    mails = [mail for mail in mailoutbox[after:] if mail.to == [user.email]]
    assert mails, "no code was emailed"
    match = CODE.search(mails[-1].body)
    assert match, mails[-1].body
    return match.group(1)


def totp_code(secret_shown: str, *, at: float) -> str:
    """What an authenticator app given the key on the page shows at time `at`."""
    key = base64.b32decode(secret_shown.replace(" ", ""))
    clock = TOTP(key, step=30, t0=0, digits=6, drift=0)
    clock.time = at
    return f"{clock.token():06d}"


def next_app_code(secret_shown: str, device: TOTPDevice) -> str:
    """The app's next code that the portal has not seen yet.

    The code just used is refused as a replay, so this is normally the code of the
    next 30-second step (`time.time() + 30`), which the device accepts with its one
    step of drift. Near a step boundary the device may have synced its drift to -1;
    then the current step is the one it accepts. Taking the later of "now, with the
    device's drift" and "the step after the last one used" is right in both cases.
    """
    device.refresh_from_db()
    step = max(int(time.time()) // 30 + device.drift, device.last_t + 1)
    return totp_code(secret_shown, at=step * 30)


def field(page: Page, label: str):
    """The input labelled `label` (Django adds a colon to field labels)."""
    return page.get_by_label(re.compile(rf"^{re.escape(label)}:?$"))


def snap(page: Page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=tmp_path / f"{name}.png", full_page=True)


def begin_setup(page: Page, base: str, link: str) -> None:
    """Open the activation link and press the button that uses it up."""
    page.goto(link)
    expect(page.get_by_role("heading", name="Set up two-factor authentication")).to_be_visible()
    # The page posted the token from the fragment and took it out of the address bar.
    assert "#" not in page.url
    page.get_by_role("button", name="Begin setup").click()
    expect(page).to_have_url(f"{base}/setup/password/")


def choose_password(page: Page, base: str, password: str) -> None:
    field(page, "New password").fill(password)
    field(page, "Repeat the new password").fill(password)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(f"{base}/setup/channel/")


def set_up_with_app(page: Page, base: str, link: str, password: str) -> str:
    """Set 2FA up from the activation link with an authenticator app, up to the backup
    codes; return the key the page showed."""
    begin_setup(page, base, link)
    choose_password(page, base, password)
    page.get_by_label("An authenticator app on my phone (recommended)").check()
    page.get_by_role("button", name="Continue").click()
    secret = page.get_by_test_id("totp-secret").inner_text()
    field(page, "Code").fill(totp_code(secret, at=time.time()))
    page.get_by_role("button", name="Confirm").click()
    return secret


def shown_backup_codes(page: Page) -> list[str]:
    codes = page.get_by_test_id("backup-codes").locator("li")
    expect(codes).to_have_count(10)
    return [text.strip() for text in codes.all_inner_texts()]


def check_backup_codes_then_keep(page: Page, base: str) -> None:
    """Ten backup codes stay on show (a reload shows them again) until the user says they
    kept them; then they are gone for good."""
    expect(page).to_have_url(f"{base}/setup/done/")
    expect(page.get_by_role("heading", name="Two-factor authentication is set up")).to_be_visible()
    shown = shown_backup_codes(page)
    assert len(set(shown)) == 10 and all(shown), shown

    page.reload()
    assert shown_backup_codes(page) == shown

    page.get_by_role("button", name=KEPT).click()
    expect(page).to_have_url(f"{base}/setup/done/")
    expect(page.get_by_role("heading", name="Two-factor authentication is set up")).to_be_visible()
    expect(page.get_by_test_id("backup-codes")).to_have_count(0)
    for code in shown:
        expect(page.get_by_text(code)).to_have_count(0)


def go_to_password_step(page: Page, base: str) -> None:
    """From the end of setup to step 1 of Login with OTP."""
    page.get_by_role("link", name="Login with OTP - Online Functions", exact=True).click()
    expect(page).to_have_url(f"{base}/login/ccass/otp/online/")


def enter_login_id_and_password(page: Page, base: str, login_id: str, password: str) -> None:
    field(page, "Login ID").fill(login_id)
    field(page, "Password").fill(password)
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(f"{base}/login/ccass/otp/online/verify/")


def enter_code_and_log_in(page: Page, base: str, code: str, login_id: str) -> None:
    field(page, "Code").fill(code)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/online/")
    expect(page.get_by_role("heading", name="Online Functions")).to_be_visible()
    expect(page.get_by_text(f"You are logged in as {login_id}.")).to_be_visible()


# Tests ------------------------------------------------------------------------------------


def test_setup_with_authenticator_app_then_login(portal, page: Page, mailoutbox, tmp_path):
    base = portal.url
    user = participant_user("B10000U07")
    link = send_activation(user, mailoutbox)
    assert link.startswith(f"{base}/activate/")

    begin_setup(page, base, link)
    choose_password(page, base, NEW_PASSWORD)

    page.get_by_label("An authenticator app on my phone (recommended)").check()
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(f"{base}/setup/verify/")
    expect(page.locator(".qr svg")).to_be_visible()
    secret_box = page.get_by_test_id("totp-secret")
    expect(secret_box).to_have_text(re.compile(r"^[A-Z2-7]{4}( [A-Z2-7]{1,4})+$"))
    secret = secret_box.inner_text()
    snap(page, tmp_path, "setup-verify-app")

    field(page, "Code").fill(totp_code(secret, at=time.time()))
    page.get_by_role("button", name="Confirm").click()
    check_backup_codes_then_keep(page, base)

    device = TOTPDevice.objects.get(user=user)
    assert device.confirmed
    assert base64.b32encode(device.bin_key).decode() == secret.replace(" ", "")
    assert BackupCodeDevice.objects.get(user=user).codes.count() == 10

    go_to_password_step(page, base)
    enter_login_id_and_password(page, base, user.login_id, NEW_PASSWORD)
    expect(page.get_by_text("Open your authenticator app")).to_be_visible()
    # The setup's code is spent (replay protection): the app's next code logs in.
    enter_code_and_log_in(page, base, next_app_code(secret, device), user.login_id)
    page.screenshot(path=tmp_path / "online-functions.png", full_page=True)

    user.refresh_from_db()
    assert user.two_factor_ready_at is not None
    assert user.check_password(NEW_PASSWORD)


def test_setup_with_email_channel_then_login(portal, page: Page, mailoutbox, tmp_path):
    base = portal.url
    user = participant_user("B10000U08")
    link = send_activation(user, mailoutbox)

    begin_setup(page, base, link)
    choose_password(page, base, NEW_PASSWORD)

    sent = len(mailoutbox)
    page.get_by_label("By email to my designated address").check()
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(f"{base}/setup/verify/")
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    local, domain = user.email.split("@")
    expect(page.get_by_text(f"{local[0]}***@{domain}")).to_be_visible()
    expect(page.get_by_test_id("totp-secret")).to_have_count(0)
    snap(page, tmp_path, "setup-verify-email")

    setup_code = latest_code_mailed_to(user, mailoutbox, after=sent)
    field(page, "Code").fill(setup_code)
    page.get_by_role("button", name="Confirm").click()
    check_backup_codes_then_keep(page, base)
    assert EmailOTPDevice.objects.get(user=user).confirmed

    go_to_password_step(page, base)
    sent = len(mailoutbox)
    enter_login_id_and_password(page, base, user.login_id, NEW_PASSWORD)
    expect(page.get_by_text("We have emailed a 6-digit code")).to_be_visible()
    login_code = latest_code_mailed_to(user, mailoutbox, after=sent)
    enter_code_and_log_in(page, base, login_code, user.login_id)
    page.screenshot(path=tmp_path / "online-functions.png", full_page=True)


def test_backup_codes_survive_a_language_switch_then_copy_and_keep(
    portal, page: Page, mailoutbox, tmp_path
):
    base = portal.url
    user = participant_user("B10000U10")
    set_up_with_app(page, base, send_activation(user, mailoutbox), NEW_PASSWORD)
    expect(page).to_have_url(f"{base}/setup/done/")
    shown = shown_backup_codes(page)

    # The page's own language switch: a form that posts, then comes back to this page.
    page.get_by_role("button", name="繁體中文").click()
    expect(page).to_have_url(f"{base}/setup/done/")
    expect(page.locator("html")).to_have_attribute("lang", "zh-hant")
    expect(page.get_by_role("heading", name="雙重認證已設定完成")).to_be_visible()
    assert shown_backup_codes(page) == shown
    snap(page, tmp_path, "backup-codes-zh-hant")

    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page.get_by_role("button", name=COPY).click()
    expect(page.get_by_role("status").filter(has_text=COPIED)).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()").split("\n") == shown

    page.get_by_role("button", name=KEPT).click()
    expect(page.get_by_test_id("backup-codes")).to_have_count(0)
    expect(page.get_by_role("link", name="以一次性密碼登入 - 網上功能", exact=True)).to_be_visible()
    for code in shown:
        expect(page.get_by_text(code)).to_have_count(0)


def test_password_rules_are_shown_and_enforced(portal, page: Page, mailoutbox, tmp_path):
    base = portal.url
    user = participant_user("B10000U09")
    begin_setup(page, base, send_activation(user, mailoutbox))

    # The rules are on the page before anything is typed.
    rules = page.locator(".rules")
    expect(rules).to_be_visible()
    expect(rules.get_by_text("at least 12 characters")).to_be_visible()
    expect(rules.get_by_text("must not contain your login ID")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    snap(page, tmp_path, "setup-password")

    # Long enough, but the login ID is inside (in lower case, which does not hide it).
    refused = f"my {user.login_id.lower()} harbour lanterns"
    field(page, "New password").fill(refused)
    field(page, "Repeat the new password").fill(refused)
    page.get_by_role("button", name="Continue").click()

    expect(page).to_have_url(f"{base}/setup/password/")
    error = page.get_by_role("alert").filter(has_text="must not contain your login ID")
    expect(error).to_be_visible()
    snap(page, tmp_path, "setup-password-refused")
    # Nothing was kept: the channel step still sends the user back to choose a password.
    page.goto(f"{base}/setup/channel/")
    expect(page).to_have_url(f"{base}/setup/password/")
    user.refresh_from_db()
    assert user.check_password(factories.USER_PASSWORD)
