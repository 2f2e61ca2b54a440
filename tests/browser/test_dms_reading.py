"""What a DA reads in the DMS: the audit trail says what each decision changed, and a bulk
file that changes nothing is not put before a checker."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from dms.models import RequestKind
from dms.services import request_approve, request_make
from migration.models import Phase
from participants.models import DaDuty
from tests import factories
from tests.browser.test_dms_bulk import log_in_to_dms

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def _firm():
    factories.set_phase("CCASS", Phase.PARALLEL_RUN)
    firm = factories.ParticipantFactory(participant_id="B40000", name="Lantau Securities")
    maker = factories.DAFactory(participant=firm, login_id="B40000DA1", da_duty=DaDuty.MAKER)
    checker = factories.DAFactory(participant=firm, login_id="B40000DA2", da_duty=DaDuty.CHECKER)
    for da in (maker, checker):
        factories.TOTPDeviceFactory(user=da)
    user = factories.UserFactory(participant=firm, login_id="B40000U01", email="old@lantau.example")
    return maker, checker, user


def test_the_audit_trail_says_which_request_was_approved_and_what_changed(portal, page: Page):
    maker, checker, user = _firm()
    change = request_make(
        kind=RequestKind.EMAIL_REGISTER,
        acting_user=maker,
        target=user,
        payload={"email": "new@lantau.example", "previous_email": "old@lantau.example"},
    )
    request_approve(change=change, acting_user=checker)

    log_in_to_dms(page, portal.url, checker)
    page.get_by_role("navigation", name="Security Management Functions").get_by_role(
        "link", name="Audit trail"
    ).click()
    approved = page.get_by_test_id("audit").locator("tr", has_text="Request approved")
    expect(approved).to_contain_text(f"Request {change.pk}: Register or change designated email")
    expect(approved).to_contain_text("old@lantau.example → new@lantau.example")


def test_a_file_that_changes_nothing_cannot_be_submitted(portal, page: Page):
    maker, _checker, user = _firm()
    log_in_to_dms(page, portal.url, maker)
    page.get_by_role("link", name="Bulk email registration").click()
    page.get_by_label("CSV file: login ID, email").set_input_files(
        files=[
            {
                "name": "same.csv",
                "mimeType": "text/csv",
                "buffer": f"{user.login_id},old@lantau.example\n".encode(),
            }
        ]
    )
    page.get_by_role("button", name="Upload and check").click()
    expect(page.get_by_text("No row of this file would change anything")).to_be_visible()
    expect(page.get_by_role("button", name="Submit to a checker")).to_have_count(0)
