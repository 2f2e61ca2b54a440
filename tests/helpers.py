"""Drive the real login views the way a person would."""

from __future__ import annotations

import re
import time
from typing import Any
from unittest import mock

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_otp.oath import TOTP as TOTPClock
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.factories import USER_PASSWORD


class TOTP:
    """Codes an authenticator app would show, never one the device already accepted.

    The portal refuses a TOTP code at or before the last step it accepted (replay
    protection), so consecutive logins in one test take the next unused step; the
    device allows one step of drift.
    """

    def code(self, device: TOTPDevice) -> str:
        device.refresh_from_db()
        step = max(int(time.time() - device.t0) // device.step, device.last_t + 1)
        return self.code_at_step(device, step)

    @staticmethod
    def code_at_step(device: TOTPDevice, step: int) -> str:
        clock = TOTPClock(device.bin_key, device.step, device.t0, device.digits, 0)
        clock.time = device.t0 + step * device.step
        return f"{clock.token():0{device.digits}d}"


def otp_login_url(scope: str, terminal: str = "ccass", step: str = "") -> str:
    name = "authn:otp-login" + (f"-{step}" if step else "")
    return reverse(name, kwargs={"terminal": terminal, "scope": scope})


def password_step(
    client: Client,
    login_id: str,
    *,
    scope: str = "online",
    terminal: str = "ccass",
    password: str = USER_PASSWORD,
):
    return client.post(otp_login_url(scope, terminal), {"login_id": login_id, "password": password})


def otp_step(client: Client, code: str, *, scope: str = "online", terminal: str = "ccass"):
    return client.post(otp_login_url(scope, terminal, "verify"), {"code": code})


def log_in_with_app(client: Client, user, *, scope: str = "online", terminal: str = "ccass"):
    """Log `user` in for `scope` with password and the current code of their app."""
    device = TOTPDevice.objects.get(user=user, confirmed=True)
    response = password_step(client, user.login_id, scope=scope, terminal=terminal)
    assert response.status_code == 302, response.content.decode()[:2000]
    response = otp_step(client, TOTP().code(device), scope=scope, terminal=terminal)
    assert response.status_code == 302, response.content.decode()[:2000]
    return response


# The secret the front proxy shares with the portal in tests (conftest sets PROXY_SECRET).
PROXY_SECRET = "test-proxy-secret"


# Activation links carry their token in the fragment: /activate/#<token>.
ACTIVATION_LINK = re.compile(r"https?://[^\s\"<>#]+/activate/#[A-Za-z0-9_-]+")


def activation_link(body: str) -> str:
    """Return the (first) activation link in an email body."""
    found = ACTIVATION_LINK.search(body)
    assert found, body
    return found.group(0)


def link_token(link: str) -> str:
    return link.split("#", 1)[1]


def open_link(client: Client, link: str):
    """Open an activation link as the browser does: the page's script posts the fragment."""
    return client.post(reverse("authn:activate"), {"token": link_token(link)})


def begin_setup(client: Client, link: str):
    """Press "Begin setup" on the activation page, which uses the link up."""
    return client.post(reverse("authn:activate"), {"token": link_token(link), "begin": "1"})


def staff_logs_in(client: Client, staff) -> None:
    """Log a staff member in with password and OTP, as the admin requires."""
    client.post(
        reverse("authn:staff-login"), {"login_id": staff.login_id, "password": USER_PASSWORD}
    )
    code = TOTP().code(TOTPDevice.objects.get(user=staff))
    assert client.post(reverse("authn:staff-login-verify"), {"code": code}).status_code == 302


def page_queries(client: Client, url: str, query: dict[str, str] | None = None) -> tuple[int, Any]:
    """The queries of a logged-in user's page on their second look at it, and the response.

    The session's idle clock is written at most every few seconds
    (authn.middleware.SEEN_AT_SLACK_SECONDS): the clock is held still over both requests, so
    that the first writes it if due and the measured one never does, however slow the page.
    """
    with mock.patch("authn.middleware.time.time", return_value=time.time()):
        client.get(url, query or {})
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url, query or {})
    return len(captured.captured_queries), response


def emailed_code(mail) -> str:
    """Return the 6-digit code an OTP email carries."""
    found = re.search(r"\b(\d{6})\b", mail.body)
    assert found, mail.body
    return found.group(1)


def log_in_with_email(
    client: Client,
    user,
    mailoutbox,
    capture_on_commit,
    *,
    scope: str = "online",
    terminal: str = "ccass",
):
    """Log `user` in for `scope` with password and the code emailed to them.

    `capture_on_commit` is pytest-django's django_capture_on_commit_callbacks: the code is
    emailed once the password step commits.
    """
    with capture_on_commit(execute=True):
        response = password_step(client, user.login_id, scope=scope, terminal=terminal)
    assert response.status_code == 302, response.content.decode()[:2000]
    response = otp_step(client, emailed_code(mailoutbox[-1]), scope=scope, terminal=terminal)
    assert response.status_code == 302, response.content.decode()[:2000]
    return response


def shown_totp_secret(page: str) -> str:
    """Return the authenticator-app key a setup or channel-change page shows, spaces removed."""
    found = re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)<', page)
    assert found, page[:2000]
    return found.group(1).replace(" ", "")


def totp_code_for_secret(secret: str, *, offset: int = 0) -> str:
    """Return the code an app given the base32 `secret` shows now (or `offset` seconds on)."""
    from base64 import b32decode

    clock = TOTPClock(b32decode(secret), 30, 0, 6, 0)
    clock.time = time.time() + offset
    return f"{clock.token():06d}"
