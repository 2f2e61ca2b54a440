"""Under the content security policy, the pages still work: nothing the browser refuses.

Chromium reports each resource or inline script/style the policy blocks on the console
("Refused to ... because it violates the following Content Security Policy directive").
"""

from __future__ import annotations

import base64
import re
import time

import pytest
from django_otp.oath import TOTP as TOTPClock
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import Page, expect

from authn import activation
from migration.models import Phase
from participants.models import User
from tests import factories
from tests.factories import USER_PASSWORD
from tests.helpers import TOTP

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

LINK = re.compile(r"https?://\S+/activate/\S+")


def csp_refusals(page: Page) -> list[str]:
    """Collect, from now on, what the browser refuses under the policy."""
    refused: list[str] = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return refused


def app_code(secret_shown: str) -> str:
    key = base64.b32decode(secret_shown.replace(" ", ""))
    clock = TOTPClock(key, step=30, t0=0, digits=6, drift=0)
    clock.time = time.time()
    return f"{clock.token():06d}"


def test_setup_qr_code_and_print_button_work_under_the_policy(portal, page: Page, mailoutbox):
    base = portal.url
    factories.set_phase("CCASS", Phase.PARALLEL_RUN)
    firm = factories.ParticipantFactory(name="Golden Harbour Securities Limited")
    user = factories.UserFactory(participant=firm, login_id="B10000U21")
    activation.activation_send(user=user, acting_user=None)
    [mail] = [m for m in mailoutbox if m.to == [user.email]]
    link = LINK.search(mail.body).group(0)
    refused = csp_refusals(page)

    page.goto(link)
    page.get_by_role("button", name="Begin setup").click()
    password = "quiet harbour lanterns drift home"
    page.get_by_label(re.compile(r"^New password:?$")).fill(password)
    page.get_by_label(re.compile(r"^Repeat the new password:?$")).fill(password)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("An authenticator app on my phone (recommended)").check()
    page.get_by_role("button", name="Continue").click()

    # The QR code is inline SVG: drawn, and sized by portal.css (a style file is allowed).
    expect(page).to_have_url(f"{base}/setup/verify/")
    qr = page.locator(".qr svg")
    expect(qr).to_be_visible()
    box = qr.bounding_box()
    assert box is not None and round(box["width"]) == 200, box
    assert page.locator(".qr svg path").count() == 1

    page.get_by_label(re.compile(r"^Code:?$")).fill(
        app_code(page.get_by_test_id("totp-secret").inner_text())
    )
    page.get_by_role("button", name="Confirm").click()
    expect(page).to_have_url(f"{base}/setup/done/")

    # The print button's handler comes from static/js, not an onclick attribute.
    page.evaluate("window.print = () => { window.printed = true; }")
    page.get_by_role("button", name="Print the backup codes").click()
    assert page.evaluate("window.printed === true")
    assert refused == []


def test_django_admin_works_under_the_policy(portal, page: Page):
    base = portal.url
    staff = factories.StaffFactory(login_id="hkex.csp")
    device = factories.TOTPDeviceFactory(user=staff)
    firm = factories.ParticipantFactory(name="Golden Harbour Securities Limited")
    someone = factories.UserFactory(participant=firm, login_id="B10000U22")
    refused = csp_refusals(page)

    page.goto(f"{base}/staff/login/")
    page.get_by_label("Login ID").fill(staff.login_id)
    page.get_by_label("Password").fill(USER_PASSWORD)
    page.get_by_role("button", name="Continue").click()
    page.get_by_label("Code").fill(TOTP().code(TOTPDevice.objects.get(pk=device.pk)))
    page.get_by_role("button", name="Log in").click()

    pages = [
        "/admin/",
        "/admin/participants/user/",
        f"/admin/participants/user/{someone.pk}/change/",
        "/admin/participants/user/add/",
        "/admin/audit/auditevent/",
    ]
    for path in pages:
        response = page.goto(f"{base}{path}")
        assert response is not None and response.status == 200, path
        # The admin's own style sheets apply: its header is laid out as a flex box.
        expect(page.locator("#header")).to_have_css("display", "flex")
    # The changelist's action bar and select-all box are driven by admin/js/actions.js.
    page.goto(f"{base}/admin/participants/user/")
    page.locator("#action-toggle").check()
    expect(page.locator("input.action-select").first).to_be_checked()
    assert refused == [], refused
    assert User.objects.filter(pk=someone.pk).exists()
