"""Activation links and 2FA setup: password, channel, proof, backup codes."""

from __future__ import annotations

import datetime as dt
import re
from base64 import b32decode

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django_otp.oath import TOTP as TOTPClock
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from authn.activation import activation_send
from authn.models import ActivationToken, BackupCode, EmailOTPDevice
from migration.models import Phase
from tests import factories
from tests.helpers import (
    TOTP,
    activation_link,
    begin_setup,
    link_token,
    open_link,
    otp_step,
    password_step,
)

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "tram-ride-to-the-peak-at-dawn"


def _send_activation(user, django_capture_on_commit_callbacks, mailoutbox) -> str:
    with django_capture_on_commit_callbacks(execute=True):
        activation_send(user=user, acting_user=None)
    body = mailoutbox[-1].body
    return activation_link(body)


@pytest.fixture
def link(newcomer, django_capture_on_commit_callbacks, mailoutbox):
    return _send_activation(newcomer, django_capture_on_commit_callbacks, mailoutbox)


def _choose_password(client, link, password=NEW_PASSWORD):
    begin_setup(client, link)
    return client.post(
        reverse("authn:setup-password"), {"password1": password, "password2": password}
    )


def _app_code(client, offset=0) -> str:
    page = client.get(reverse("authn:setup-verify")).content.decode()
    secret = re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")
    clock = TOTPClock(b32decode(secret), 30, 0, 6, 0)
    import time

    clock.time = time.time() + offset
    return f"{clock.token():06d}"


def test_activation_email_is_bilingual_with_english_first(newcomer, link, mailoutbox):
    mail = mailoutbox[-1]
    assert mail.to == [newcomer.email]
    english = mail.body.index("Two-factor authentication (2FA) replaces smartcard login")
    chinese = mail.body.index("雙重認證")
    assert english < chinese
    assert " / " in mail.subject


def test_activation_token_is_stored_hashed(link):
    token = link_token(link)
    stored = ActivationToken.objects.get()
    assert token not in stored.token_hash


def test_full_setup_with_app_then_login(client, newcomer, link):
    assert open_link(client, link).status_code == 200
    assert "Begin setup" in open_link(client, link).content.decode()
    assert _choose_password(client, link)["Location"] == reverse("authn:setup-channel")
    client.post(reverse("authn:setup-channel"), {"channel": "app"})
    page = client.get(reverse("authn:setup-verify")).content.decode()
    assert "<svg" in page
    response = client.post(reverse("authn:setup-verify"), {"code": _app_code(client)})
    assert response["Location"] == reverse("authn:setup-done")
    done = client.get(reverse("authn:setup-done")).content.decode()
    codes = re.findall(r"<code>([A-Z0-9]{5}-[A-Z0-9]{5})</code>", done)
    assert len(codes) == 10
    client.post(reverse("authn:setup-backup-codes-kept"))
    assert "already shown" not in client.get(reverse("authn:setup-done")).content.decode()
    assert _shown_codes(client) == []
    assert not any(BackupCode.objects.filter(code_hash__contains=c).exists() for c in codes)

    newcomer.refresh_from_db()
    assert newcomer.check_password(NEW_PASSWORD)
    assert newcomer.two_factor_ready_at is not None
    assert TOTPDevice.objects.get(user=newcomer).confirmed

    client.post(reverse("authn:logout"))
    password_step(client, newcomer.login_id, password=NEW_PASSWORD)
    assert otp_step(client, TOTP().code(TOTPDevice.objects.get(user=newcomer))).status_code == 302
    actions = set(AuditEvent.objects.filter(user=newcomer).values_list("action", flat=True))
    assert {
        "activation_sent",
        "activation_opened",
        "setup_password",
        "setup_channel",
        "setup_completed",
        "login",
    } <= actions


def test_full_setup_with_email_channel(
    client, newcomer, link, mailoutbox, django_capture_on_commit_callbacks
):
    _choose_password(client, link)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("authn:setup-channel"), {"channel": "email"})
    code = re.search(r"\b(\d{6})\b", mailoutbox[-1].body).group(1)
    page = client.get(reverse("authn:setup-verify")).content.decode()
    assert "b***@firm.example" in page
    assert client.post(reverse("authn:setup-verify"), {"code": code})["Location"] == reverse(
        "authn:setup-done"
    )
    assert EmailOTPDevice.objects.get(user=newcomer).confirmed


def test_activation_link_works_once(client, link):
    begin_setup(client, link)
    again = open_link(client, link)
    assert again.status_code == 410
    assert "already been used" in again.content.decode()
    other_browser = client.__class__()
    assert begin_setup(other_browser, link).status_code == 410


def test_activation_link_expires(client, link, settings):
    with time_machine.travel(dt.timedelta(hours=settings.ACTIVATION_LINK_HOURS, seconds=1)):
        response = open_link(client, link)
    assert response.status_code == 410
    assert "expired" in response.content.decode()


def test_activation_link_valid_until_expiry(client, link, settings):
    with time_machine.travel(dt.timedelta(hours=settings.ACTIVATION_LINK_HOURS - 1)):
        assert open_link(client, link).status_code == 200


def test_a_new_link_retires_the_old_one(
    client, newcomer, link, django_capture_on_commit_callbacks, mailoutbox
):
    newer = _send_activation(newcomer, django_capture_on_commit_callbacks, mailoutbox)
    assert open_link(client, link).status_code == 410
    assert open_link(client, newer).status_code == 200


def test_unknown_link_is_404(client, parallel_run):
    assert open_link(client, "http://testserver/activate/#nonsense").status_code == 404
    assert begin_setup(client, "http://testserver/activate/#nonsense").status_code == 404


def test_the_link_page_reads_the_token_from_the_fragment(client, parallel_run):
    # The browser never sends the fragment: the page itself carries no token, and its
    # script (static/js/activate.js) posts it.
    page = client.get(reverse("authn:activate"))
    assert page.status_code == 200
    assert reverse("authn:activate") == "/activate/"
    assert 'id="activation-token" value=""' in page.content.decode()
    assert "js/activate.js" in page.content.decode()


def test_opening_the_link_does_not_use_it(client, link):
    open_link(client, link)
    open_link(client, link)
    assert ActivationToken.objects.get().used_at is None


def test_nothing_is_applied_before_the_channel_is_proven(client, newcomer, link):
    _choose_password(client, link)
    client.post(reverse("authn:setup-channel"), {"channel": "app"})
    client.post(reverse("authn:setup-verify"), {"code": "000000"})
    newcomer.refresh_from_db()
    assert not newcomer.has_usable_password()
    assert newcomer.two_factor_ready_at is None
    assert not TOTPDevice.objects.filter(user=newcomer, confirmed=True).exists()
    # A half-finished setup cannot be used to log in.
    password_step(client.__class__(), newcomer.login_id, password=NEW_PASSWORD)
    assert AuditEvent.objects.filter(user=newcomer, action="login", outcome="failure").exists()


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short-pass", "at least 12 characters"),
        ("password1234", "too common"),
        ("correcthorsebatterystaple", "data breach"),
        ("my-b10000u09-password", "login ID"),
        ("golden harbour securities limited!", "firm"),
    ],
)
def test_password_policy(client, link, password, message):
    response = _choose_password(client, link, password)
    assert response.status_code == 200
    assert message in response.content.decode()


def test_password_rules_are_shown_before_typing(client, link):
    begin_setup(client, link)
    page = client.get(reverse("authn:setup-password")).content.decode()
    assert "at least 12 characters" in page
    assert "login ID or your firm" in page


def test_setup_not_open_before_launch_says_when(
    client, newcomer, django_capture_on_commit_callbacks, mailoutbox
):
    link = _send_activation(newcomer, django_capture_on_commit_callbacks, mailoutbox)
    from django.utils import timezone

    factories.set_phase(
        "CCASS",
        Phase.EMAIL_REGISTRATION,
        planned_launch_at=timezone.make_aware(dt.datetime(2027, 6, 12, 9, 0)),
    )
    response = open_link(client, link)
    assert response.status_code == 403
    body = response.content.decode()
    assert "not open yet" in body and "12 June 2027" in body
    assert begin_setup(client, link).status_code == 403
    assert ActivationToken.objects.get().used_at is None


def test_setup_pages_need_an_opened_link(client, parallel_run):
    response = client.get(reverse("authn:setup-password"))
    assert response.status_code == 403
    assert "setup session has ended" in response.content.decode()


def test_setup_session_expires(client, link, settings):
    begin_setup(client, link)
    with time_machine.travel(dt.timedelta(seconds=settings.SETUP_SESSION_SECONDS + 1)):
        assert client.get(reverse("authn:setup-password")).status_code == 403


def test_channel_needs_a_password_first(client, link):
    begin_setup(client, link)
    assert client.get(reverse("authn:setup-channel"))["Location"] == reverse("authn:setup-password")


def test_setup_email_code_resend_has_a_cooldown(
    client, link, mailoutbox, django_capture_on_commit_callbacks
):
    _choose_password(client, link)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("authn:setup-channel"), {"channel": "email"})
        client.post(reverse("authn:setup-resend"))
    sent = len(mailoutbox)
    with (
        time_machine.travel(dt.timedelta(seconds=61)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        client.post(reverse("authn:setup-resend"))
    assert len(mailoutbox) == sent + 1


def test_a_backup_code_cannot_prove_a_new_channel(client, newcomer, link):
    from authn.setup import setup_code_verify

    old_codes = factories.BackupCodeDeviceFactory(user=newcomer).generate_codes(10)
    _choose_password(client, link)
    client.post(reverse("authn:setup-channel"), {"channel": "app"})
    response = client.post(reverse("authn:setup-verify"), {"code": old_codes[0]})
    assert response.status_code == 200
    assert 'class="error"' in response.content.decode()
    device = TOTPDevice.objects.get(user=newcomer, confirmed=False)
    assert not setup_code_verify(device=device, token=old_codes[1]).ok
    assert not TOTPDevice.objects.filter(user=newcomer, confirmed=True).exists()
    newcomer.refresh_from_db()
    assert newcomer.two_factor_ready_at is None


def test_a_code_too_soon_after_a_wrong_one_says_how_long_to_wait(client, newcomer, link):
    with time_machine.travel(dt.datetime.now(dt.UTC), tick=False) as clock:
        _choose_password(client, link)
        client.post(reverse("authn:setup-channel"), {"channel": "app"})
        wrong = client.post(reverse("authn:setup-verify"), {"code": "000000"})
        assert "That code is not valid" in wrong.content.decode()
        response = client.post(reverse("authn:setup-verify"), {"code": _app_code(client)})
        page = response.content.decode()
        assert "Wait 1 second before you try another code." in page
        assert "That code is not valid" not in page
        assert "too many" not in page.lower()
        clock.shift(1)
        response = client.post(reverse("authn:setup-verify"), {"code": _app_code(client)})
    assert response.status_code == 302
    assert response["Location"] == reverse("authn:setup-done")


# The backup codes at the end of setup -------------------------------------------------------

KEPT = "I have kept my backup codes"
CODE_LINE = re.compile(r"[A-Z0-9]{5}-[A-Z0-9]{5}")


def _shown_codes(client) -> list[str]:
    page = client.get(reverse("authn:setup-done")).content.decode()
    return re.findall(r"<code>([A-Z0-9]{5}-[A-Z0-9]{5})</code>", page)


@pytest.fixture
def finished(client, link) -> list[str]:
    """Setup completed with the authenticator app; return the backup codes shown."""
    _choose_password(client, link)
    client.post(reverse("authn:setup-channel"), {"channel": "app"})
    response = client.post(reverse("authn:setup-verify"), {"code": _app_code(client)})
    assert response["Location"] == reverse("authn:setup-done")
    codes = _shown_codes(client)
    assert len(codes) == 10
    return codes


def test_backup_codes_stay_on_show_after_a_language_switch(client, finished):
    done = reverse("authn:setup-done")
    response = client.post(reverse("set_language"), {"language": "zh-hant", "next": done})
    assert response["Location"] == done
    page = client.get(done)
    assert '<html lang="zh-hant">' in page.content.decode()
    assert _shown_codes(client) == finished


def test_backup_codes_page_offers_print_download_copy_and_confirm(client, finished):
    page = client.get(reverse("authn:setup-done")).content.decode()
    assert "data-print" in page
    assert f'href="{reverse("authn:setup-backup-codes-download")}"' in page
    assert 'data-copy="backup-codes"' in page
    assert f'action="{reverse("authn:setup-backup-codes-kept")}"' in page
    assert KEPT in page
    # Until the user confirms, the page offers no way on that would leave the codes behind.
    assert "Login with OTP - Online Functions" not in page


def test_backup_codes_download_as_a_text_file(client, newcomer, finished):
    response = client.get(reverse("authn:setup-backup-codes-download"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="backup-codes.txt"'
    assert "no-store" in response["Cache-Control"]
    body = response.content.decode()
    assert newcomer.login_id in body
    # Windows line ends: Notepad on any version shows one code a line.
    assert body.endswith("\r\n")
    assert [line for line in body.split("\r\n") if CODE_LINE.fullmatch(line)] == finished
    # Downloading does not count as keeping them: they are still on show.
    assert _shown_codes(client) == finished


def test_confirming_the_codes_were_kept_forgets_them_and_shows_the_logins(client, finished):
    response = client.post(reverse("authn:setup-backup-codes-kept"))
    assert response["Location"] == reverse("authn:setup-done")
    page = client.get(reverse("authn:setup-done")).content.decode()
    assert _shown_codes(client) == []
    assert not any(code in page for code in finished)
    assert "Next: log in with your password and a one-time password" in page
    assert reverse("authn:otp-login", kwargs={"terminal": "ccass", "scope": "online"}) in page
    assert client.get(reverse("authn:setup-backup-codes-download")).status_code == 404


def test_confirming_takes_a_post(client, finished):
    assert client.get(reverse("authn:setup-backup-codes-kept")).status_code == 405
    assert _shown_codes(client) == finished


def test_backup_codes_are_not_kept_past_the_setup_session(client, finished, settings):
    with time_machine.travel(dt.timedelta(seconds=settings.SETUP_SESSION_SECONDS + 1)):
        assert "already shown" in client.get(reverse("authn:setup-done")).content.decode()
        assert client.get(reverse("authn:setup-backup-codes-download")).status_code == 404


def test_another_browser_sees_no_codes(finished, newcomer):
    other = Client()
    assert "already shown" in other.get(reverse("authn:setup-done")).content.decode()
    assert other.get(reverse("authn:setup-backup-codes-download")).status_code == 404
