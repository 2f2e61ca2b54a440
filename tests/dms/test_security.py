"""What a penetration test found, each tried again through the pages.

(The Unicode lockout bypass is in tests/authn/test_throttling.py, the bulk-approval rows of
the access matrix in test_access.py.)
"""

from __future__ import annotations

import html
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from authn.models import ActivationToken
from dms.models import BulkEmailBatch, BulkEmailRow, BulkStatus, ChangeRequest, RequestStatus
from migration.models import Programme
from participants.models import DaDuty, User
from tests import factories
from tests.helpers import (
    activation_link,
    begin_setup,
    log_in_with_app,
    open_link,
)

pytestmark = pytest.mark.django_db

LOOKALIKE = "lee@b10000.ex\u0430mple"  # a Cyrillic а in "example"


def text(response) -> str:
    return html.unescape(response.content.decode())


def visible(response) -> str:
    """The page as a person sees it, without the per-response CSRF token and the session's
    time left (which moves on by the second between two requests)."""
    page = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", text(response))
    return re.sub(r'data-(idle|absolute)-left="\d+"', "", page)


@pytest.fixture
def das_open(firm):
    Programme.objects.filter(terminal=firm.terminal).update(da_email_registration_open=True)


def upload(browser: Client, content: bytes, capture) -> BulkEmailBatch | None:
    with capture(execute=True):
        response = browser.post(
            reverse("dms:bulk-upload"), {"file": SimpleUploadedFile("emails.csv", content)}
        )
    if response.status_code != 302:
        return None
    return BulkEmailBatch.objects.get(pk=response["Location"].rstrip("/").rsplit("/", 1)[1])


def submit(browser: Client, batch: BulkEmailBatch, capture) -> ChangeRequest:
    with capture(execute=True):
        response = browser.post(reverse("dms:bulk-submit", args=[batch.pk]))
    assert response.status_code == 302, text(response)[:1000]
    return ChangeRequest.objects.get(bulk_batch=batch)


def decide(browser: Client, change: ChangeRequest, decision: str, capture, **data: str):
    with capture(execute=True):
        return browser.post(reverse("dms:request-decide", args=[change.pk, decision]), data)


def result_rows(browser: Client, batch: BulkEmailBatch) -> list[list[str]]:
    import csv
    import io

    body = b"".join(browser.get(reverse("dms:bulk-result", args=[batch.pk])).streaming_content)
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))[1:]


# 1. Four eyes by bulk file -------------------------------------------------------------------


def test_a_checker_cannot_approve_a_bulk_file_that_changes_their_own_email(
    maker, checker, checker_da, user, firm, das_open, django_capture_on_commit_callbacks
):
    content = f"{user.login_id},u.new@firm.example\n{checker_da.login_id},mine@evil.example\n"
    batch = upload(maker, content.encode(), django_capture_on_commit_callbacks)
    change = submit(maker, batch, django_capture_on_commit_callbacks)

    page = checker.get(reverse("dms:request-detail", args=[change.pk]))
    assert "Approve" not in text(page)
    for decision, data in (("approve", {}), ("reject", {"reason": "no"})):
        response = decide(checker, change, decision, django_capture_on_commit_callbacks, **data)
        assert response.status_code == 403
    checker_da.refresh_from_db()
    assert checker_da.email != "mine@evil.example"
    change.refresh_from_db()
    assert change.status == RequestStatus.PENDING

    # A third DA, who is not in the file, checks it.
    third = factories.DAFactory(participant=firm, login_id="B10000DA3", da_duty=DaDuty.CHECKER)
    factories.TOTPDeviceFactory(user=third)
    browser = Client()
    log_in_with_app(browser, third, scope="dms")
    assert decide(browser, change, "approve", django_capture_on_commit_callbacks).status_code == 302
    checker_da.refresh_from_db()
    change.refresh_from_db()
    assert (change.status, change.checker, checker_da.email) == (
        RequestStatus.APPROVED,
        third,
        "mine@evil.example",
    )


def test_the_makers_own_row_is_still_refused(
    maker, maker_da, das_open, django_capture_on_commit_callbacks
):
    batch = upload(
        maker, f"{maker_da.login_id},me@firm.example\n".encode(), django_capture_on_commit_callbacks
    )
    assert [row[3:] for row in result_rows(maker, batch)] == [
        ["Refused", "This row is you: another DA must register your email"]
    ]


# 3. Login IDs of other firms --------------------------------------------------------------------


def test_a_bulk_file_cannot_tell_another_firms_login_ids_from_unknown_ones(
    maker, checker_da, other_firm_user, staff, django_capture_on_commit_callbacks
):
    content = (
        f"{other_firm_user.login_id},a@firm.example\n"
        f"{staff.login_id},b@firm.example\n"
        "B99999U99,c@firm.example\n"
    )
    batch = upload(maker, content.encode(), django_capture_on_commit_callbacks)
    reasons = [row[3:] for row in result_rows(maker, batch)]
    assert reasons == [["Refused", "Unknown login ID"]] * 3
    page = text(maker.get(reverse("dms:bulk-detail", args=[batch.pk])))
    assert "another firm" not in page


def test_creating_a_user_tells_nothing_about_other_firms_login_ids(
    maker, firm, other_firm_user, staff
):
    def create(login_id: str):
        return maker.post(
            reverse("dms:user-create"), {"login_id": login_id, "name": "Someone", "role": "user"}
        )

    taken_elsewhere = create(other_firm_user.login_id)
    staff_id = create(staff.login_id)
    free_elsewhere = create("B99999U99")
    assert taken_elsewhere.status_code == staff_id.status_code == free_elsewhere.status_code == 200
    for response, login_id in (
        (taken_elsewhere, other_firm_user.login_id),
        (staff_id, staff.login_id),
        (free_elsewhere, "B99999U99"),
    ):
        page = visible(response).replace(login_id, "LOGIN-ID")
        assert (
            f"A new login ID begins with your firm's participant ID, {firm.participant_id}." in page
        )
        assert "already in use" not in page
    assert visible(taken_elsewhere).replace(other_firm_user.login_id, "X") == visible(
        free_elsewhere
    ).replace("B99999U99", "X")
    assert not ChangeRequest.objects.exists()
    # In the firm's own namespace the request is made.
    assert create(f"{firm.participant_id}U88").status_code == 302


# 4. A suspended user's activation link ----------------------------------------------------------


def _suspend(maker, checker, person, capture):
    with capture(execute=True):
        maker.post(reverse("dms:user-request", args=[person.pk, "user_suspend"]))
    change = ChangeRequest.objects.get(target=person, kind="user_suspend")
    assert decide(checker, change, "approve", capture).status_code == 302
    person.refresh_from_db()
    assert not person.is_active


def test_suspension_retires_the_activation_link_and_refuses_setup(
    maker, checker, newcomer, mailoutbox, django_capture_on_commit_callbacks
):
    from authn.activation import activation_send

    with django_capture_on_commit_callbacks(execute=True):
        activation_send(user=newcomer, acting_user=None)
    link = activation_link(mailoutbox[-1].body)
    _suspend(maker, checker, newcomer, django_capture_on_commit_callbacks)

    assert not ActivationToken.objects.filter(user=newcomer, revoked_at__isnull=True).exists()
    opened = Client()
    assert open_link(opened, link).status_code in (403, 410)
    assert begin_setup(opened, link).status_code in (403, 410)
    assert opened.get(reverse("authn:setup-password")).status_code == 403

    # And a DA cannot send the suspended user a new link.
    with django_capture_on_commit_callbacks(execute=True):
        response = maker.post(
            reverse("dms:user-request", args=[newcomer.pk, "activation_resend"]), follow=True
        )
    assert "The user is suspended." in text(response)


def test_a_user_suspended_during_setup_cannot_finish_it(
    maker, checker, newcomer, mailoutbox, django_capture_on_commit_callbacks
):
    from authn.activation import activation_send

    with django_capture_on_commit_callbacks(execute=True):
        activation_send(user=newcomer, acting_user=None)
    browser = Client()
    assert begin_setup(browser, activation_link(mailoutbox[-1].body)).status_code == 302
    password = "a-brand-new-passphrase-9"
    browser.post(reverse("authn:setup-password"), {"password1": password, "password2": password})
    browser.post(reverse("authn:setup-channel"), {"channel": "app"})

    _suspend(maker, checker, newcomer, django_capture_on_commit_callbacks)

    page = browser.get(reverse("authn:setup-verify"))
    assert page.status_code == 403
    assert "Your login is suspended" in text(page)
    response = browser.post(reverse("authn:setup-verify"), {"code": "123456"})
    assert response.status_code == 403
    newcomer.refresh_from_db()
    assert newcomer.two_factor_ready_at is None and not newcomer.has_usable_password()


def test_the_setup_step_refuses_a_user_suspended_between_pages(newcomer, rf):
    """The last step re-reads the user under lock: a suspension that lands meanwhile wins."""
    from django.contrib.auth.hashers import make_password
    from django.contrib.sessions.backends.db import SessionStore
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from authn import sessions
    from authn.setup import UserSuspended, setup_complete

    request = rf.post("/setup/verify/")
    request.session = SessionStore()
    request.session[sessions.SETUP_KEY] = {
        "user_id": newcomer.pk,
        "password_hash": make_password("x" * 16),
        "at": 10**10,
    }
    device = TOTPDevice.objects.create(user=newcomer, name="app", confirmed=False)
    User.objects.filter(pk=newcomer.pk).update(status="suspended")
    with pytest.raises(UserSuspended):
        setup_complete(request=request, user=newcomer, device=device)
    newcomer.refresh_from_db()
    assert newcomer.two_factor_ready_at is None


# 5. Look-alike domains ----------------------------------------------------------------------------


def test_a_lookalike_domain_is_flagged_to_maker_and_checker(
    maker, checker, user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = maker.post(
            reverse("dms:user-request", args=[user.pk, "email_register"]),
            {"email": LOOKALIKE},
            follow=True,
        )
    assert "mixes scripts (lee@b10000.xn--exmple-4nf)" in text(response)
    change = ChangeRequest.objects.get(target=user)
    page = text(checker.get(reverse("dms:request-detail", args=[change.pk])))
    assert LOOKALIKE in page and "(lee@b10000.xn--exmple-4nf)" in page
    assert "Look-alike domain: it mixes scripts (Cyrillic, Latin)" in page
    listing = text(checker.get(reverse("dms:request-list")))
    assert "lee@b10000.xn--exmple-4nf" in listing


def test_a_lookalike_domain_is_flagged_in_the_bulk_preview(
    maker, user, django_capture_on_commit_callbacks
):
    batch = upload(
        maker, f"{user.login_id},{LOOKALIKE}\n".encode(), django_capture_on_commit_callbacks
    )
    page = text(maker.get(reverse("dms:bulk-detail", args=[batch.pk]) + "?show=change"))
    assert "The email domains on lines 1 mix scripts" in page
    assert "lee@b10000.xn--exmple-4nf" in page


def test_an_internationalised_domain_in_one_script_is_shown_but_not_flagged(
    maker, checker, user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        maker.post(
            reverse("dms:user-request", args=[user.pk, "email_register"]),
            {"email": "lee@例子.hk"},
        )
    change = ChangeRequest.objects.get(target=user)
    page = text(checker.get(reverse("dms:request-detail", args=[change.pk])))
    assert "(lee@xn--fsqu00a.hk)" in page and "Look-alike" not in page


# 6. Input faults in a bulk file -------------------------------------------------------------


def test_a_nul_byte_is_refused_with_the_line_not_a_500(
    maker, user, django_capture_on_commit_callbacks
):
    content = f"{user.login_id},a@firm.example\n{user.login_id}\x00,b@firm.example\n".encode()
    with django_capture_on_commit_callbacks(execute=True):
        response = maker.post(
            reverse("dms:bulk-upload"),
            {"file": SimpleUploadedFile("emails.csv", content)},
            follow=True,
        )
    assert response.status_code == 200
    assert "The file contains a NUL character (line 2)" in text(response)
    assert not BulkEmailBatch.objects.exists()


def test_a_check_that_fails_marks_the_batch_failed_with_the_reason(maker_da, firm):
    from dms import bulk

    # A file stored before the upload refused NUL bytes, or broken in another way.
    batch = BulkEmailBatch.objects.create(
        participant=firm, maker=maker_da, filename="old.csv", source=b"A\x00,b@firm.example\n"
    )
    bulk.bulk_check(batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.status == BulkStatus.FAILED
    assert "NUL character (line 1)" in batch.error


def test_long_cells_are_refused_whole_never_cut(
    maker, checker, user, django_capture_on_commit_callbacks
):
    # Cut to 255 characters this would read as an address at corp...example.hk.
    long_email = "a" * 64 + "@" + "corp." * 36 + "example.hk" + ".evil.example"
    assert long_email[:255].endswith("corp.example.hk")
    just_over = "b" * 64 + "@" + ("d" * 60 + ".") * 3 + "e" * 4 + ".hk"  # 255 characters
    assert len(just_over) == 255
    long_login = user.login_id + "X" * 300
    content = f"{user.login_id},{long_email}\n{long_login},ok@firm.example\n".encode()
    batch = upload(maker, content, django_capture_on_commit_callbacks)
    rows = {row.line: row for row in BulkEmailRow.objects.filter(batch=batch)}
    assert rows[1].email == long_email and rows[1].reason == "email_too_long"
    assert rows[2].login_id == long_login and rows[2].reason == "unknown_login_id"
    assert batch.register_count + batch.change_count == 0

    batch = upload(
        maker, f"{user.login_id},{just_over}\n".encode(), django_capture_on_commit_callbacks
    )
    (row,) = BulkEmailRow.objects.filter(batch=batch)
    assert (row.outcome, row.reason) == ("refused", "email_too_long")
    user.refresh_from_db()
    assert user.email != just_over


def test_a_single_request_with_a_too_long_email_is_refused_at_once(maker, user):
    just_over = "b" * 64 + "@" + ("d" * 60 + ".") * 3 + "e" * 4 + ".hk"
    response = maker.post(
        reverse("dms:user-request", args=[user.pk, "email_register"]),
        {"email": just_over},
        follow=True,
    )
    assert response.status_code == 200
    assert "Enter a valid email address." in text(response)
    assert not ChangeRequest.objects.exists()
