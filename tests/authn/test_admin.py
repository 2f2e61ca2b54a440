"""Django admin requires staff who logged in with OTP."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from tests import factories
from tests.helpers import TOTP

pytestmark = pytest.mark.django_db


def _staff_login(client, staff, code):
    client.post(
        reverse("authn:staff-login"),
        {"login_id": staff.login_id, "password": factories.USER_PASSWORD},
    )
    return client.post(reverse("authn:staff-login-verify"), {"code": code})


def test_admin_sends_anonymous_visitors_to_staff_login(client):
    response = client.get(reverse("admin:index"), follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("authn:staff-login"))
    assert "Login ID" in response.content.decode()


def test_staff_password_alone_does_not_open_admin(client, staff):
    client.force_login(staff)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302


def test_staff_with_otp_reaches_admin(client, staff):
    response = _staff_login(client, staff, TOTP().code(TOTPDevice.objects.get(user=staff)))
    assert response.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200


def test_participant_user_cannot_use_staff_login(client, user):
    response = client.post(
        reverse("authn:staff-login"),
        {"login_id": user.login_id, "password": factories.USER_PASSWORD},
    )
    assert "Login failed" in response.content.decode()


def test_audit_rows_are_visible_but_not_editable_in_admin(client, staff, user):
    _staff_login(client, staff, TOTP().code(TOTPDevice.objects.get(user=staff)))
    event = AuditEvent.objects.filter(user=staff).first()
    assert client.get(reverse("admin:audit_auditevent_changelist")).status_code == 200
    change = client.post(reverse("admin:audit_auditevent_change", args=[event.pk]), {"reason": "x"})
    event.refresh_from_db()
    assert event.reason == ""
    assert change.status_code in (200, 403)
    assert (
        client.post(
            reverse("admin:audit_auditevent_delete", args=[event.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_staff_otp_device_command_gives_a_working_device(client, capsys):
    staff = factories.StaffFactory(login_id="first.staff")
    call_command("staff_otp_device", "first.staff")
    out = capsys.readouterr().out
    assert "Key:" in out and "otpauth://totp/" in out
    device = TOTPDevice.objects.get(user=staff, confirmed=True)
    _staff_login(client, staff, TOTP().code(device))
    assert client.get(reverse("admin:index")).status_code == 200


def test_staff_otp_device_command_refuses_non_staff(user):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not exchange staff"):
        call_command("staff_otp_device", user.login_id)
