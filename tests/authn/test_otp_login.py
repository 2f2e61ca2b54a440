"""Login with OTP: password step, OTP step, scope binding, session rotation."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from authn.models import EmailOTPDevice, LoginThrottle
from common.sql import saving_changes_only
from tests import factories
from tests.helpers import TOTP, log_in_with_app, otp_step, password_step

pytestmark = pytest.mark.django_db


def test_login_with_app_reaches_online_functions(client, user):
    response = log_in_with_app(client, user, scope="online")
    assert response["Location"] == reverse("authn:online-home")
    page = client.get(reverse("authn:online-home"))
    assert page.status_code == 200
    assert "Online Functions" in page.content.decode()
    assert user.login_id in page.content.decode()


def test_password_alone_does_not_log_in(client, user):
    password_step(client, user.login_id)
    response = client.get(reverse("authn:online-home"))
    assert response.status_code == 302
    assert response["Location"] == "/?next=%2Fonline%2F"


def test_session_key_rotates_at_login(client, user):
    client.get(reverse("authn:landing"))
    password_step(client, user.login_id)
    before = client.session.session_key
    assert before
    otp_step(client, TOTP().code(TOTPDevice.objects.get(user=user)))
    after = client.session.session_key
    assert after and after != before


def test_wrong_code_is_refused_and_audited(client, user):
    password_step(client, user.login_id)
    response = otp_step(client, "000000")
    assert response.status_code == 200
    assert "That code is not valid" in response.content.decode()
    assert client.get(reverse("authn:online-home")).status_code == 302
    event = AuditEvent.objects.filter(user=user, outcome="failure").first()
    assert event is not None and event.reason == "bad_code"


def test_totp_code_cannot_be_replayed(client, user):
    device = TOTPDevice.objects.get(user=user)
    code = TOTP().code(device)
    password_step(client, user.login_id)
    assert otp_step(client, code).status_code == 302
    client.post(reverse("authn:logout"))

    password_step(client, user.login_id)
    response = otp_step(client, code)
    assert response.status_code == 200
    assert "That code is not valid" in response.content.decode()


def test_otp_attempts_are_throttled(client, user):
    device = TOTPDevice.objects.get(user=user)
    with time_machine.travel(dt.datetime.now(dt.UTC), tick=False):
        password_step(client, user.login_id)
        otp_step(client, "000000")
        # django-otp now makes the device wait; even the right code is refused meanwhile.
        response = otp_step(client, TOTP().code(device))
    page = response.content.decode()
    assert "Wait 1 second before you try another code." in page
    assert "not checked" in page
    assert "too many" not in page.lower()
    assert client.get(reverse("authn:online-home")).status_code == 302


def test_otp_throttle_says_the_wait_in_seconds_then_lets_the_code_in(client, user):
    device = TOTPDevice.objects.get(user=user)
    with time_machine.travel(dt.datetime.now(dt.UTC), tick=False) as clock:
        password_step(client, user.login_id)
        for wait in (1, 2, 4, 8):
            otp_step(client, "000000")
            clock.shift(wait)
        # Four wrong codes: the device waits 8 seconds after the last one.
        clock.shift(-8)
        response = otp_step(client, TOTP().code(device))
        assert "Wait 8 seconds before you try another code." in response.content.decode()
        clock.shift(5)
        response = otp_step(client, TOTP().code(device))
        assert "Wait 3 seconds before you try another code." in response.content.decode()
        clock.shift(3)
        assert otp_step(client, TOTP().code(device)).status_code == 302


def test_scope_binding_online_session_cannot_open_reports(client, user):
    log_in_with_app(client, user, scope="online")
    response = client.get(reverse("authn:report-list"))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/ccass/otp/reports/")


def test_scope_binding_reports_session_cannot_open_online_functions(client, user):
    log_in_with_app(client, user, scope="reports")
    assert client.get(reverse("authn:report-list")).status_code == 200
    response = client.get(reverse("authn:online-home"))
    assert response.status_code == 302
    assert response["Location"].startswith("/login/ccass/otp/online/")


def test_plain_user_cannot_log_in_for_dms(client, user):
    response = password_step(client, user.login_id, scope="dms")
    assert response.status_code == 200
    assert "Login failed" in response.content.decode()


def test_da_logs_in_for_dms(client, maker_da):
    log_in_with_app(client, maker_da, scope="dms")
    assert client.get(reverse("dms:home")).status_code == 200
    assert client.get(reverse("authn:dms-landing")).status_code == 302


def test_user_of_other_terminal_cannot_use_this_terminals_entry(client, user):
    from migration.models import Phase

    factories.set_phase("CCMS", Phase.PARALLEL_RUN)
    response = password_step(client, user.login_id, terminal="ccms")
    assert "Login failed" in response.content.decode()


def test_backup_code_logs_in_once(client, user):
    backup = factories.BackupCodeDeviceFactory(user=user)
    code = backup.generate_codes(10)[0]
    password_step(client, user.login_id)
    assert otp_step(client, code.lower().replace("-", " ")).status_code == 302
    assert client.session["authn_method"] == "backup_code"
    client.post(reverse("authn:logout"))

    password_step(client, user.login_id)
    response = otp_step(client, code)
    assert response.status_code == 200
    assert backup.codes.count() == 9


def test_pending_login_expires(client, user, settings):
    password_step(client, user.login_id)
    with time_machine.travel(dt.timedelta(seconds=settings.LOGIN_PENDING_TIMEOUT + 5)):
        response = otp_step(client, TOTP().code(TOTPDevice.objects.get(user=user)))
    assert response.status_code == 302
    assert response["Location"] == "/login/ccass/otp/online/"


def test_logout_ends_the_session(client, user):
    log_in_with_app(client, user)
    client.post(reverse("authn:logout"))
    assert client.get(reverse("authn:online-home")).status_code == 302
    assert AuditEvent.objects.filter(user=user, action="logout").exists()


def test_suspended_user_gets_the_generic_message(client, user):
    user.status = "suspended"
    user.save()
    response = password_step(client, user.login_id)
    assert "Login failed" in response.content.decode()


# Email channel --------------------------------------------------------------------------


def _code_from(mail) -> str:
    import re

    return re.search(r"\b(\d{6})\b", mail.body).group(1)


def test_email_code_is_sent_and_logs_in(
    client, email_user, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        password_step(client, email_user.login_id)
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [email_user.email]
    code = _code_from(mailoutbox[0])
    device = EmailOTPDevice.objects.get(user=email_user)
    assert device.token_hash and code not in device.token_hash
    assert otp_step(client, code).status_code == 302


def test_email_code_expires_after_five_minutes(
    client, email_user, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        password_step(client, email_user.login_id)
    code = _code_from(mailoutbox[0])
    with time_machine.travel(dt.timedelta(minutes=5, seconds=1)):
        # The pending login would have expired too; start again and try the old code.
        with django_capture_on_commit_callbacks(execute=True):
            password_step(client, email_user.login_id)
        response = otp_step(client, code)
    assert response.status_code == 200
    assert "That code is not valid" in response.content.decode()


def test_email_code_resend_has_a_cooldown(
    client, email_user, mailoutbox, django_capture_on_commit_callbacks
):
    resend = reverse("authn:otp-login-resend", kwargs={"terminal": "ccass", "scope": "online"})
    with django_capture_on_commit_callbacks(execute=True):
        password_step(client, email_user.login_id)
        client.post(resend)
    assert len(mailoutbox) == 1
    page = client.get(
        reverse("authn:otp-login-verify", kwargs={"terminal": "ccass", "scope": "online"})
    )
    assert "less than a minute ago" in page.content.decode()

    with (
        time_machine.travel(dt.timedelta(seconds=61)),
        django_capture_on_commit_callbacks(execute=True),
    ):
        client.post(resend)
    assert len(mailoutbox) == 2


def test_email_code_is_single_use(
    client, email_user, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        password_step(client, email_user.login_id)
    code = _code_from(mailoutbox[0])
    assert otp_step(client, code).status_code == 302
    client.post(reverse("authn:logout"))
    with time_machine.travel(dt.timedelta(seconds=61)):
        password_step(client, email_user.login_id)
        assert otp_step(client, code).status_code == 200


def test_locked_throttle_row_is_per_login_id(client, user):
    for _ in range(3):
        password_step(client, user.login_id, password="wrong-password-123")
    assert LoginThrottle.objects.get(key=user.login_id.casefold()).failures == 3


def test_the_first_otp_login_stays_while_the_last_login_moves_on(client, user):
    with time_machine.travel(dt.datetime(2027, 3, 1, 1, 0, tzinfo=dt.UTC), tick=False):
        log_in_with_app(client, user)
    client.cookies.clear()
    with time_machine.travel(dt.datetime(2027, 3, 2, 1, 0, tzinfo=dt.UTC), tick=False):
        log_in_with_app(client, user)
    user.refresh_from_db()
    assert user.first_otp_login_at == dt.datetime(2027, 3, 1, 1, 0, tzinfo=dt.UTC)
    assert user.last_login == dt.datetime(2027, 3, 2, 1, 0, tzinfo=dt.UTC)
    assert user.last_login_method == "otp"


def test_a_code_used_up_writes_only_what_it_changed_on_the_device(client, user):
    """The code step saves the device's changed fields only: a name given to the device
    meanwhile (by an admin, say) is not put back by the login."""
    device = TOTPDevice.objects.get(user=user)
    TOTPDevice.objects.filter(pk=device.pk).update(name="Renamed meanwhile")
    code = TOTP().code(device)
    with saving_changes_only(device):
        assert device.verify_token(code)
    device.refresh_from_db()
    assert device.name == "Renamed meanwhile" and device.last_used_at is not None
    # Used up: the same code is refused, and the refusal's count is written too.
    with saving_changes_only(device):
        assert not device.verify_token(code)
    device.refresh_from_db()
    assert device.throttling_failure_count == 1
    # Outside the block the device saves as Django's models do.
    assert "save" not in vars(device)
