"""Account security: a logged-in user changes their password, OTP channel and backup codes.

Each change asks for a code from the user's second factor first; a wrong one changes
nothing, counts on the device's throttle (the login's) and is audited. A change that goes
through is audited and emailed to the user's designated address, without any secret.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from base64 import b32encode

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditAction, AuditEvent
from authn import rehearsal
from authn.devices import backup_codes_issue
from authn.models import BackupCode, BackupCodeDevice, EmailOTPDevice
from outbox.models import OutboxEmail
from participants.models import User
from tests import factories
from tests.factories import CARD_PASSWORD, USER_PASSWORD
from tests.helpers import (
    TOTP,
    emailed_code,
    log_in_with_app,
    log_in_with_email,
    otp_step,
    password_step,
    shown_totp_secret,
    staff_logs_in,
    totp_code_for_secret,
)

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "tram-ride-to-the-peak-at-dawn"
NOTICE = "Your terminal login credentials were changed"
NOT_VALID = "That code is not valid"
CODE_SHOWN = re.compile(r"<code>([A-Z0-9]{5}-[A-Z0-9]{5})</code>")

ACCOUNT = reverse("authn:account")
PASSWORD = reverse("authn:account-password")
CHANNEL = reverse("authn:account-channel")
VERIFY = reverse("authn:account-channel-verify")
BACKUP = reverse("authn:account-backup-codes")
DONE = reverse("authn:account-backup-codes-done")
DOWNLOAD = reverse("authn:account-backup-codes-download")
KEPT = reverse("authn:account-backup-codes-kept")


@pytest.fixture
def clock():
    """Time held still, moved on by the test: each app code comes from its own time step."""
    with time_machine.travel(dt.datetime.now(dt.UTC), tick=False) as traveller:
        yield traveller


def app_code(user, clock) -> str:
    """The code the user's app shows in the next time step (an app's code works once)."""
    clock.shift(30)
    return TOTP().code(TOTPDevice.objects.get(user=user, confirmed=True))


def old_app_code(device: TOTPDevice) -> str:
    """The code a removed device's app still shows now."""
    return TOTP.code_at_step(device, int(time.time() - device.t0) // device.step)


def change_password(client, code: str, password: str = NEW_PASSWORD, repeat: str | None = None):
    return client.post(
        PASSWORD, {"password1": password, "password2": repeat or password, "code": code}
    )


def audited(user, action: str) -> list[tuple[str, str]]:
    return list(
        AuditEvent.objects.filter(user=user, action=action)
        .order_by("pk")
        .values_list("outcome", "reason")
    )


def notices(mailoutbox) -> list:
    return [mail for mail in mailoutbox if mail.subject.startswith(NOTICE)]


def html_of(mail) -> str:
    ((content, mimetype),) = mail.alternatives
    assert mimetype == "text/html"
    return content


def logs_in(user, code: str, *, password: str = USER_PASSWORD) -> bool:
    """Whether a fresh browser logs the user in with this password and code."""
    browser = Client()
    if password_step(browser, user.login_id, password=password).status_code != 302:
        return False
    return otp_step(browser, code).status_code == 302


def shown_codes(client) -> list[str]:
    return CODE_SHOWN.findall(client.get(DONE).content.decode())


# Who may use the pages ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "authn:account",
        "authn:account-password",
        "authn:account-channel",
        "authn:account-channel-verify",
        "authn:account-backup-codes",
        "authn:account-backup-codes-done",
        "authn:account-backup-codes-download",
    ],
)
def test_anonymous_users_are_sent_to_log_in(client, parallel_run, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"] == reverse("authn:landing")


@pytest.mark.parametrize(
    "name",
    ["authn:account-code-send", "authn:account-channel-resend", "authn:account-backup-codes-kept"],
)
def test_anonymous_posts_are_sent_to_log_in(client, parallel_run, name):
    response = client.post(reverse(name))
    assert response.status_code == 302
    assert response["Location"] == reverse("authn:landing")


def test_logged_in_users_find_the_page_in_their_navigation(client, user):
    log_in_with_app(client, user)
    home = client.get(reverse("authn:online-home")).content.decode()
    assert f'href="{ACCOUNT}"' in home and "Account security" in home
    page = client.get(ACCOUNT)
    assert page.status_code == 200
    body = page.content.decode()
    assert "Your one-time passwords come from your authenticator app." in body
    for url in (PASSWORD, CHANNEL, BACKUP):
        assert f'href="{url}"' in body


def test_an_email_user_sees_where_their_codes_go(
    client, email_user, mailoutbox, django_capture_on_commit_callbacks
):
    log_in_with_email(client, email_user, mailoutbox, django_capture_on_commit_callbacks)
    body = client.get(ACCOUNT).content.decode()
    assert "Your one-time passwords are emailed to b***@firm.example." in body


def _demo_card_login(client, user, settings) -> None:
    settings.DEBUG = True
    settings.SMARTCARD_DEMO = True
    card = factories.SmartcardFactory(user=user, serial="DEMO-0001")
    url = reverse("authn:smartcard-demo-login", kwargs={"terminal": "ccass", "entry": "functions"})
    response = client.post(
        url, {"card": card.pk, "login_id": user.login_id, "password": CARD_PASSWORD}
    )
    assert response.status_code == 302


def test_a_user_without_2fa_is_told_to_set_it_up_through_activation(client, newcomer, settings):
    _demo_card_login(client, newcomer, settings)
    for url in (ACCOUNT, PASSWORD, CHANNEL, BACKUP):
        response = client.get(url)
        assert response.status_code == 403
        body = response.content.decode()
        assert "You have not set up two-factor authentication yet" in body
        assert "activation email" in body


def test_a_smartcard_session_can_change_the_password_with_a_code(client, user, settings, clock):
    _demo_card_login(client, user, settings)
    assert change_password(client, app_code(user, clock))["Location"] == ACCOUNT
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)


def test_exchange_staff_have_no_account_page_here(client, staff):
    staff_logs_in(client, staff)
    assert client.get(ACCOUNT).status_code == 404


def test_the_pages_only_ever_touch_the_logged_in_user(client, user, other_firm_user, clock):
    log_in_with_app(client, other_firm_user)
    page = client.get(ACCOUNT).content.decode()
    assert other_firm_user.login_id in page and user.login_id not in page
    # Naming someone else in the form changes nothing of theirs.
    response = client.post(
        PASSWORD,
        {
            "password1": NEW_PASSWORD,
            "password2": NEW_PASSWORD,
            "code": app_code(other_firm_user, clock),
            "user_id": user.pk,
            "login_id": user.login_id,
        },
    )
    assert response.status_code == 302
    user.refresh_from_db()
    other_firm_user.refresh_from_db()
    assert user.check_password(USER_PASSWORD)
    assert other_firm_user.check_password(NEW_PASSWORD)
    # Another user's code proves nothing about this one.
    response = client.post(BACKUP, {"code": app_code(user, clock)})
    assert NOT_VALID in response.content.decode()
    assert not BackupCodeDevice.objects.exists()
    assert audited(user, AuditAction.PASSWORD_CHANGED) == []


# The password ------------------------------------------------------------------------------


def test_the_password_changes_with_a_code_from_the_current_channel(
    client, user, clock, mailoutbox, django_capture_on_commit_callbacks
):
    log_in_with_app(client, user)
    with django_capture_on_commit_callbacks(execute=True):
        response = change_password(client, app_code(user, clock))
    assert response.status_code == 302
    assert response["Location"] == ACCOUNT
    assert "Your password has been changed" in client.get(ACCOUNT).content.decode()
    # The session that made the change stays logged in.
    assert client.get(reverse("authn:online-home")).status_code == 200

    assert not logs_in(user, app_code(user, clock))
    assert logs_in(user, app_code(user, clock), password=NEW_PASSWORD)
    assert audited(user, AuditAction.PASSWORD_CHANGED) == [("success", "")]
    (notice,) = notices(mailoutbox)
    assert notice.to == [user.email]


def test_other_sessions_end_when_the_password_changes(client, user, clock):
    log_in_with_app(client, user)
    elsewhere = Client()
    password_step(elsewhere, user.login_id)
    assert otp_step(elsewhere, app_code(user, clock)).status_code == 302
    assert elsewhere.get(reverse("authn:online-home")).status_code == 200

    assert change_password(client, app_code(user, clock)).status_code == 302
    assert client.get(reverse("authn:online-home")).status_code == 200
    assert elsewhere.get(reverse("authn:online-home")).status_code == 302


def test_the_notice_is_bilingual_english_first_and_carries_no_secret(
    client, user, clock, mailoutbox, django_capture_on_commit_callbacks
):
    log_in_with_app(client, user)
    code = app_code(user, clock)
    with django_capture_on_commit_callbacks(execute=True):
        change_password(client, code)
    (notice,) = notices(mailoutbox)
    assert notice.subject.startswith(f"{NOTICE} / ")
    body, html = notice.body, html_of(notice)
    assert f"The password of login ID {user.login_id} was changed on" in body
    assert "(Hong Kong time)" in body
    assert body.index(f"Dear user {user.login_id},") < body.index(f"致用戶 {user.login_id}：")
    assert html.index('<div lang="en">') < html.index('<div lang="zh-Hant">')
    terminal = user.participant.terminal
    assert f"If you did not make this change, call the CCASS Hotline on {terminal.hotline}" in body
    for secret in (NEW_PASSWORD, code):
        assert secret not in body and secret not in html and secret not in notice.subject
    (row,) = OutboxEmail.objects.filter(kind="credentials-changed")
    assert NEW_PASSWORD not in str(row.params) and code not in str(row.params)
    for event in AuditEvent.objects.filter(user=user):
        assert NEW_PASSWORD not in str(event.detail) and code not in str(event.detail)


def test_a_wrong_code_changes_nothing_and_is_audited(client, user, clock):
    log_in_with_app(client, user)
    clock.shift(30)
    response = change_password(client, "000000")
    assert response.status_code == 200
    assert NOT_VALID in response.content.decode()
    user.refresh_from_db()
    assert user.check_password(USER_PASSWORD)
    assert audited(user, AuditAction.PASSWORD_CHANGED) == [("failure", "bad_code")]
    assert not OutboxEmail.objects.filter(kind="credentials-changed").exists()


def test_codes_are_throttled_as_at_login(client, user, clock):
    log_in_with_app(client, user)
    clock.shift(30)
    device = TOTPDevice.objects.get(user=user)
    change_password(client, "000000")
    # django-otp makes the device wait: even the right code is not checked meanwhile.
    response = change_password(client, TOTP().code(device))
    assert "Wait 1 second before you try another code." in response.content.decode()
    # The wait is the device's own, the one the login's code step keeps too.
    browser = Client()
    password_step(browser, user.login_id)
    assert "Wait 1 second" in otp_step(browser, TOTP().code(device)).content.decode()
    user.refresh_from_db()
    assert user.check_password(USER_PASSWORD)
    assert audited(user, AuditAction.PASSWORD_CHANGED) == [
        ("failure", "bad_code"),
        ("failure", "throttled"),
    ]
    clock.shift(1)
    assert change_password(client, TOTP().code(device)).status_code == 302


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short-pass", "at least 12 characters"),
        ("password1234", "too common"),
        ("my-b10000u01-password", "login ID"),
        ("golden harbour securities limited!", "firm"),
        (USER_PASSWORD, "must differ from your current password"),
    ],
)
def test_the_password_policy_applies_and_a_refusal_keeps_the_code(
    client, user, clock, password, message
):
    log_in_with_app(client, user)
    code = app_code(user, clock)
    response = change_password(client, code, password)
    assert response.status_code == 200
    assert message in response.content.decode()
    user.refresh_from_db()
    assert user.check_password(USER_PASSWORD)
    assert audited(user, AuditAction.PASSWORD_CHANGED) == []
    # The policy is checked before the code, so the code was not used up.
    assert change_password(client, code).status_code == 302


def test_the_policy_is_shown_and_the_repeat_must_match(client, user, clock):
    log_in_with_app(client, user)
    page = client.get(PASSWORD).content.decode()
    assert "at least 12 characters" in page and "login ID or your firm" in page
    response = change_password(client, app_code(user, clock), repeat=NEW_PASSWORD + "x")
    assert "The two passwords differ." in response.content.decode()


def test_a_backup_code_confirms_a_change(client, user, clock):
    codes = backup_codes_issue(user=user)
    log_in_with_app(client, user)
    assert change_password(client, codes[0]).status_code == 302
    assert BackupCode.objects.filter(device__user=user).count() == len(codes) - 1
    assert AuditEvent.objects.get(action=AuditAction.PASSWORD_CHANGED).method == "backup_code"


def test_an_email_user_asks_for_a_code_to_confirm_with(
    client, email_user, clock, mailoutbox, django_capture_on_commit_callbacks
):
    log_in_with_email(client, email_user, mailoutbox, django_capture_on_commit_callbacks)
    page = client.get(PASSWORD).content.decode()
    assert f'action="{reverse("authn:account-code-send")}"' in page
    clock.shift(61)  # past the cooldown of the login's code
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("authn:account-code-send"), {"back": "password"})
    assert response["Location"] == PASSWORD
    assert mailoutbox[-1].to == [email_user.email]
    with django_capture_on_commit_callbacks(execute=True):
        assert change_password(client, emailed_code(mailoutbox[-1])).status_code == 302
    email_user.refresh_from_db()
    assert email_user.check_password(NEW_PASSWORD)
    assert len(notices(mailoutbox)) == 1


# The OTP channel ---------------------------------------------------------------------------


def test_from_app_to_email(client, user, clock, mailoutbox, django_capture_on_commit_callbacks):
    log_in_with_app(client, user)
    old = TOTPDevice.objects.get(user=user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(CHANNEL, {"channel": "email", "code": app_code(user, clock)})
    assert response["Location"] == VERIFY
    assert mailoutbox[-1].to == [user.email]
    new_code = emailed_code(mailoutbox[-1])
    page = client.get(VERIFY).content.decode()
    assert "Check your email" in page and "b***@firm.example" in page

    # Until the new channel is proven, the app keeps working and nothing has changed.
    assert not EmailOTPDevice.objects.get(user=user).confirmed
    assert logs_in(user, app_code(user, clock))
    # Only a code from the new channel proves it: not one from the app.
    assert NOT_VALID in client.post(VERIFY, {"code": app_code(user, clock)}).content.decode()
    assert not EmailOTPDevice.objects.get(user=user).confirmed

    clock.shift(2)  # the new device's wait after a wrong code
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(VERIFY, {"code": new_code})
    assert response["Location"] == ACCOUNT
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert EmailOTPDevice.objects.get(user=user).confirmed
    # The session that made the change stays logged in, though its device is gone.
    assert client.get(reverse("authn:online-home")).status_code == 200
    assert "emailed to b***@firm.example" in client.get(ACCOUNT).content.decode()

    browser = Client()
    with django_capture_on_commit_callbacks(execute=True):
        password_step(browser, user.login_id)
    assert NOT_VALID in otp_step(browser, old_app_code(old)).content.decode()
    clock.shift(2)
    assert otp_step(browser, emailed_code(mailoutbox[-1])).status_code == 302

    assert audited(user, AuditAction.OTP_CHANNEL_CHANGED) == [
        ("failure", "bad_code"),
        ("success", ""),
    ]
    event = AuditEvent.objects.get(action=AuditAction.OTP_CHANNEL_CHANGED, outcome="success")
    assert event.detail == {"from": "app", "to": "email"}
    (notice,) = notices(mailoutbox)
    assert "were moved from the authenticator app to email" in notice.body
    assert new_code not in notice.body


def test_from_email_to_app(
    client, email_user, clock, mailoutbox, django_capture_on_commit_callbacks
):
    log_in_with_email(client, email_user, mailoutbox, django_capture_on_commit_callbacks)
    page = client.get(CHANNEL).content.decode()
    assert 'value="app"' in page and 'value="email"' not in page
    clock.shift(61)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("authn:account-code-send"), {"back": "channel"})
    assert response["Location"] == CHANNEL
    response = client.post(CHANNEL, {"channel": "app", "code": emailed_code(mailoutbox[-1])})
    assert response["Location"] == VERIFY
    page = client.get(VERIFY).content.decode()
    assert "<svg" in page
    secret = shown_totp_secret(page)

    # A backup code cannot prove the new channel.
    codes = backup_codes_issue(user=email_user)
    refused = client.post(VERIFY, {"code": codes[0]})
    assert refused.status_code == 200 and 'class="error"' in refused.content.decode()
    assert TOTPDevice.objects.get(user=email_user).confirmed is False
    assert BackupCode.objects.filter(device__user=email_user).count() == len(codes)

    clock.shift(30)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(VERIFY, {"code": totp_code_for_secret(secret)})
    assert response["Location"] == ACCOUNT
    assert not EmailOTPDevice.objects.filter(user=email_user).exists()
    new = TOTPDevice.objects.get(user=email_user)
    assert new.confirmed and b32encode(new.bin_key).decode() == secret
    assert client.get(reverse("authn:online-home")).status_code == 200

    sent = len(mailoutbox)
    assert logs_in(email_user, app_code(email_user, clock))
    assert len(mailoutbox) == sent  # no code is emailed any more
    event = AuditEvent.objects.get(action=AuditAction.OTP_CHANNEL_CHANGED, outcome="success")
    assert event.detail == {"from": "email", "to": "app"}
    assert "were moved from email to an authenticator app" in notices(mailoutbox)[-1].body


def test_email_to_email_is_not_a_change(
    client, email_user, mailoutbox, django_capture_on_commit_callbacks
):
    log_in_with_email(client, email_user, mailoutbox, django_capture_on_commit_callbacks)
    response = client.post(CHANNEL, {"channel": "email", "code": "123456"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert EmailOTPDevice.objects.filter(user=email_user).count() == 1
    assert audited(email_user, AuditAction.OTP_CHANNEL_CHANGED) == []


def test_a_new_phone_gets_a_new_key(
    client, user, clock, mailoutbox, django_capture_on_commit_callbacks
):
    log_in_with_app(client, user)
    old = TOTPDevice.objects.get(user=user)
    response = client.post(CHANNEL, {"channel": "app", "code": app_code(user, clock)})
    assert response["Location"] == VERIFY
    secret = shown_totp_secret(client.get(VERIFY).content.decode())
    assert secret != b32encode(old.bin_key).decode()
    assert logs_in(user, app_code(user, clock))  # the old phone still works meanwhile

    clock.shift(30)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(VERIFY, {"code": totp_code_for_secret(secret)})
    assert response["Location"] == ACCOUNT
    (new,) = TOTPDevice.objects.filter(user=user)
    assert new.pk != old.pk and new.confirmed
    assert client.get(reverse("authn:online-home")).status_code == 200

    clock.shift(30)
    browser = Client()
    password_step(browser, user.login_id)
    assert NOT_VALID in otp_step(browser, old_app_code(old)).content.decode()
    clock.shift(2)
    assert otp_step(browser, TOTP().code(new)).status_code == 302
    event = AuditEvent.objects.get(action=AuditAction.OTP_CHANNEL_CHANGED)
    assert event.detail == {"from": "app", "to": "app"}
    assert "a new authenticator app was set up" in notices(mailoutbox)[0].body


def test_a_wrong_code_begins_no_channel_change(client, user, clock):
    log_in_with_app(client, user)
    clock.shift(30)
    response = client.post(CHANNEL, {"channel": "email", "code": "000000"})
    assert NOT_VALID in response.content.decode()
    assert not EmailOTPDevice.objects.exists()
    assert TOTPDevice.objects.filter(user=user).count() == 1
    assert audited(user, AuditAction.OTP_CHANNEL_CHANGED) == [("failure", "bad_code")]
    assert client.get(VERIFY)["Location"] == CHANNEL


def test_a_wrong_code_from_the_new_channel_is_refused_and_audited(client, user, clock):
    log_in_with_app(client, user)
    client.post(CHANNEL, {"channel": "app", "code": app_code(user, clock)})
    response = client.post(VERIFY, {"code": "000000"})
    assert NOT_VALID in response.content.decode()
    assert TOTPDevice.objects.filter(user=user, confirmed=True).count() == 1
    assert audited(user, AuditAction.OTP_CHANNEL_CHANGED) == [("failure", "bad_code")]


def test_abandoning_a_channel_change_changes_nothing(
    client, user, clock, django_capture_on_commit_callbacks
):
    log_in_with_app(client, user)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(CHANNEL, {"channel": "email", "code": app_code(user, clock)})
    assert client.get(ACCOUNT).status_code == 200  # walked away
    assert logs_in(user, app_code(user, clock))
    assert "authenticator app" in client.get(ACCOUNT).content.decode()
    # The next change discards the abandoned one.
    client.post(CHANNEL, {"channel": "app", "code": app_code(user, clock)})
    assert not EmailOTPDevice.objects.exists()
    assert TOTPDevice.objects.filter(user=user, confirmed=False).count() == 1
    assert TOTPDevice.objects.filter(user=user, confirmed=True).count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.OTP_CHANNEL_CHANGED).count() == 0


def test_a_backup_code_lets_a_user_who_lost_their_phone_move_to_a_new_one(client, user, clock):
    codes = backup_codes_issue(user=user)
    password_step(client, user.login_id)
    assert otp_step(client, codes[0]).status_code == 302
    response = client.post(CHANNEL, {"channel": "app", "code": codes[1]})
    assert response["Location"] == VERIFY
    secret = shown_totp_secret(client.get(VERIFY).content.decode())
    clock.shift(30)
    assert client.post(VERIFY, {"code": totp_code_for_secret(secret)})["Location"] == ACCOUNT
    assert client.get(reverse("authn:online-home")).status_code == 200
    assert BackupCode.objects.filter(device__user=user).count() == len(codes) - 2


# Backup codes ------------------------------------------------------------------------------


def test_new_backup_codes_replace_the_old_and_are_shown_once(
    client, user, clock, mailoutbox, django_capture_on_commit_callbacks
):
    old_codes = backup_codes_issue(user=user)
    log_in_with_app(client, user)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(BACKUP, {"code": app_code(user, clock)})
    assert response["Location"] == DONE
    new_codes = shown_codes(client)
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    assert shown_codes(client) == new_codes  # a reload shows them again

    download = client.get(DOWNLOAD)
    assert download["Content-Disposition"] == 'attachment; filename="backup-codes.txt"'
    assert [line for line in download.content.decode().split("\r\n") if "-" in line][-10:] == (
        new_codes
    )
    assert client.post(KEPT)["Location"] == DONE
    page = client.get(DONE).content.decode()
    assert not any(code in page for code in new_codes)
    assert "You have kept your backup codes" in page
    assert client.get(DOWNLOAD).status_code == 404

    assert not logs_in(user, old_codes[0])
    clock.shift(2)
    assert logs_in(user, new_codes[0])
    assert audited(user, AuditAction.BACKUP_CODES_RENEWED) == [("success", "")]
    (notice,) = notices(mailoutbox)
    assert f"New backup codes were issued for login ID {user.login_id}" in notice.body
    assert not any(code in notice.body or code in html_of(notice) for code in new_codes)


def test_a_wrong_code_renews_nothing(client, user, clock):
    old_codes = backup_codes_issue(user=user)
    log_in_with_app(client, user)
    clock.shift(30)
    response = client.post(BACKUP, {"code": "000000"})
    assert NOT_VALID in response.content.decode()
    assert client.get(DOWNLOAD).status_code == 404
    assert audited(user, AuditAction.BACKUP_CODES_RENEWED) == [("failure", "bad_code")]
    assert logs_in(user, old_codes[0])


def test_a_session_logged_in_with_a_backup_code_stays_logged_in_after_renewal(client, user):
    codes = backup_codes_issue(user=user)
    password_step(client, user.login_id)
    assert otp_step(client, codes[0]).status_code == 302
    assert client.post(BACKUP, {"code": codes[1]})["Location"] == DONE
    assert client.get(reverse("authn:online-home")).status_code == 200
    assert len(shown_codes(client)) == 10


# The connectivity test's hook --------------------------------------------------------------


def test_each_change_lets_the_connectivity_test_keep_the_account_first(
    client, user, clock, monkeypatch
):
    """authn.rehearsal snapshots the account in a test session that is not carried forward:
    it must see the account as it was, before anything of the change."""
    seen: list[tuple[str, list[int], int]] = []

    def guard(*, user: User, now: dt.datetime | None = None) -> None:
        seen.append(
            (
                user.password,
                sorted(TOTPDevice.objects.filter(user=user).values_list("pk", flat=True)),
                BackupCode.objects.filter(device__user=user).count(),
            )
        )

    monkeypatch.setattr(rehearsal, "account_change_guard", guard)
    backup_codes_issue(user=user)
    log_in_with_app(client, user)

    def state() -> tuple[str, list[int], int]:
        return (
            User.objects.get(pk=user.pk).password,
            sorted(TOTPDevice.objects.filter(user=user).values_list("pk", flat=True)),
            BackupCode.objects.filter(device__user=user).count(),
        )

    # backup_codes_issue() calls the guard as well: each change's first call counts.
    seen.clear()
    before = state()
    assert change_password(client, app_code(user, clock)).status_code == 302
    assert seen[0] == before

    seen.clear()
    before = state()
    assert client.post(BACKUP, {"code": app_code(user, clock)})["Location"] == DONE
    assert seen[0] == before

    seen.clear()
    before = state()
    client.post(CHANNEL, {"channel": "app", "code": app_code(user, clock)})
    assert seen[0] == before
    new = TOTPDevice.objects.get(user=user, confirmed=False)

    seen.clear()
    before = state()
    clock.shift(30)
    assert client.post(VERIFY, {"code": TOTP().code(new)})["Location"] == ACCOUNT
    assert seen[0] == before
