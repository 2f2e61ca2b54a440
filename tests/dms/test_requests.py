"""Maker-checker requests end to end, through the DMS pages: made, checked, applied, audited.

The maker and the checker each log in for Security Management Functions in their own browser
(client); nothing a maker asks for happens before a checker of the same firm approves it.
"""

from __future__ import annotations

import datetime as dt
import html

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import formats, timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from authn.activation import activation_send
from authn.models import BackupCodeDevice, EmailOTPDevice
from dms.models import ChangeRequest, RequestKind, RequestStatus
from migration.models import MilestoneKind
from participants.models import DaDuty, User, UserStatus
from tests import factories
from tests.dms.test_pages import users_listed
from tests.helpers import activation_link, begin_setup, log_in_with_app, open_link, password_step

pytestmark = pytest.mark.django_db

WAITS = "A request is waiting for your approval"
EMAIL_CHANGED = "Your designated email address was changed"
ACTIVATION = "Set up two-factor authentication for your terminal login"
MADE = "Request made. It takes effect when a checker approves it."
APPROVED = "Request approved; it has taken effect."
STALE = "The user was changed after this request was made"


@pytest.fixture
def newcomer(parallel_run, firm):
    """A user without a designated email yet."""
    return factories.UserFactory(
        participant=firm, login_id="B10000U05", email="", email_registered_at=None
    )


@pytest.fixture
def programme(parallel_run):
    return parallel_run


def ask(browser: Client, target: User, kind: str, capture, **data: str):
    """File a request about `target` from their page, as the DA's browser posts it."""
    with capture(execute=True):
        response = browser.post(reverse("dms:user-request", args=[target.pk, kind]), data)
    return response


def decide(browser: Client, change: ChangeRequest, decision: str, capture, **data: str):
    with capture(execute=True):
        response = browser.post(
            reverse("dms:request-decide", args=[change.pk, decision]), data, follow=True
        )
    return response


def only_request(**filters) -> ChangeRequest:
    return ChangeRequest.objects.get(**filters)


def actions(**filters) -> list[str]:
    return list(
        AuditEvent.objects.filter(**filters).order_by("pk").values_list("action", flat=True)
    )


def text(response) -> str:
    """The page as a person reads it."""
    return html.unescape(response.content.decode())


def subjects(mailoutbox) -> list[str]:
    return [mail.subject.split(" / ")[0] for mail in mailoutbox]


# Each kind of request ------------------------------------------------------------------


def test_register_a_users_first_email(
    maker, checker, maker_da, checker_da, newcomer, mailoutbox, django_capture_on_commit_callbacks
):
    response = ask(
        maker,
        newcomer,
        RequestKind.EMAIL_REGISTER,
        django_capture_on_commit_callbacks,
        email="Chan.Tai.Man@Firm.Example",
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("dms:user-detail", args=[newcomer.pk])
    page = maker.get(response["Location"]).content.decode()
    assert MADE in page
    assert "Waiting for a checker" in page

    change = only_request(kind=RequestKind.EMAIL_REGISTER, target=newcomer)
    assert change.payload["email"] == "Chan.Tai.Man@firm.example"
    newcomer.refresh_from_db()
    assert newcomer.email == ""
    # The checker is told at once; the maker is not a checker and is not told.
    (waits,) = mailoutbox
    assert waits.subject.startswith(WAITS)
    assert waits.to == [checker_da.email]
    assert maker_da.login_id in waits.body
    assert reverse("dms:request-list") in waits.body

    mailoutbox.clear()
    page = decide(checker, change, "approve", django_capture_on_commit_callbacks)
    assert APPROVED in page.content.decode()

    newcomer.refresh_from_db()
    assert newcomer.email == "Chan.Tai.Man@firm.example"
    assert newcomer.email_registered_by == maker_da
    assert newcomer.email_registered_at is not None
    change.refresh_from_db()
    assert (change.status, change.checker) == (RequestStatus.APPROVED, checker_da)
    # In parallel run a first email brings the activation email with it.
    assert actions(user=newcomer) == [
        "request_made",
        "email_registered",
        "activation_sent",
        "request_approved",
    ]
    assert AuditEvent.objects.get(action="request_made").actor == maker_da
    assert AuditEvent.objects.get(action="email_registered").actor == checker_da
    # A first registration has no old address to tell.
    changed, activation = sorted(
        mailoutbox, key=lambda mail: not mail.subject.startswith(EMAIL_CHANGED)
    )
    assert changed.subject.startswith(EMAIL_CHANGED)
    assert changed.to == ["Chan.Tai.Man@firm.example"]
    assert activation.to == ["Chan.Tai.Man@firm.example"]
    assert "/activate/" in activation.body

    user_page = checker.get(reverse("dms:user-detail", args=[newcomer.pk])).content.decode()
    assert "Chan.Tai.Man@firm.example" in user_page
    assert f"by {maker_da.login_id}" in user_page


def test_change_an_email_tells_the_old_and_the_new_address(
    maker, checker, user, mailoutbox, django_capture_on_commit_callbacks
):
    # The user has set up 2FA: the change brings only the notices, no activation email.
    User.objects.filter(pk=user.pk).update(two_factor_ready_at=timezone.now())
    old = user.email
    ask(
        maker,
        user,
        RequestKind.EMAIL_REGISTER,
        django_capture_on_commit_callbacks,
        email="new.desk@firm.example",
    )
    change = only_request(target=user)
    assert change.payload == {"email": "new.desk@firm.example", "previous_email": old}
    detail = checker.get(reverse("dms:request-detail", args=[change.pk])).content.decode()
    assert f"{old} → new.desk@firm.example" in detail
    assert subjects(mailoutbox) == [WAITS]

    mailoutbox.clear()
    decide(checker, change, "approve", django_capture_on_commit_callbacks)

    user.refresh_from_db()
    assert user.email == "new.desk@firm.example"
    assert sorted(mail.to[0] for mail in mailoutbox) == sorted([old, "new.desk@firm.example"])
    for mail in mailoutbox:
        assert mail.subject.startswith(EMAIL_CHANGED)
        assert f"was changed from {old} to new.desk@firm.example" in mail.body
    assert "email_registered" in actions(user=user)


def _users_list_status(browser: Client, target: User) -> str:
    """What the users list says of the user's 2FA setup."""
    return users_listed(browser)[target.login_id][4]


def test_change_an_email_retires_the_old_link_and_sends_one_to_the_new_address(
    maker, checker, firm, mailoutbox, django_capture_on_commit_callbacks
):
    person = factories.UserFactory(
        participant=firm, login_id="B10000U06", email="old.desk@firm.example"
    )
    with django_capture_on_commit_callbacks(execute=True):
        activation_send(user=person, acting_user=None)
    old_link = activation_link(mailoutbox[-1].body)
    # Another activation email to the old address is still waiting when the change applies.
    activation_send(user=person, acting_user=None)
    assert _users_list_status(maker, person) == "Activation sent"
    ask(
        maker,
        person,
        RequestKind.EMAIL_REGISTER,
        django_capture_on_commit_callbacks,
        email="new.desk@firm.example",
    )
    mailoutbox.clear()

    with django_capture_on_commit_callbacks(execute=False) as relay:
        checker.post(
            reverse("dms:request-decide", args=[only_request(target=person).pk, "approve"])
        )
    # Before the new email goes out, the list no longer counts the old link as sent.
    assert _users_list_status(maker, person) == "Not set up"
    assert open_link(Client(), old_link).status_code == 410
    for callback in relay:
        callback()

    activations = [mail for mail in mailoutbox if mail.subject.startswith(ACTIVATION)]
    assert [mail.to for mail in activations] == [["new.desk@firm.example"]]
    assert open_link(Client(), old_link).status_code == 410
    assert begin_setup(Client(), old_link).status_code == 410
    assert _users_list_status(maker, person) == "Activation sent"
    new_link = activation_link(activations[0].body)
    assert begin_setup(Client(), new_link)["Location"] == reverse("authn:setup-password")
    # Two activation emails to the old address, one to the new.
    assert actions(user=person).count("activation_sent") == 3


def test_otp_reset_retires_the_old_link_before_the_new_one_goes(
    maker, checker, user, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        activation_send(user=user, acting_user=None)
    old_link = activation_link(mailoutbox[-1].body)
    assert _users_list_status(maker, user) == "Activation sent"
    ask(maker, user, RequestKind.OTP_RESET, django_capture_on_commit_callbacks)
    mailoutbox.clear()

    with django_capture_on_commit_callbacks(execute=False) as relay:
        checker.post(reverse("dms:request-decide", args=[only_request(target=user).pk, "approve"]))
    assert _users_list_status(maker, user) == "Not set up"
    assert open_link(Client(), old_link).status_code == 410
    for callback in relay:
        callback()

    (mail,) = mailoutbox
    assert mail.subject.startswith(ACTIVATION)
    assert open_link(Client(), old_link).status_code == 410
    assert begin_setup(Client(), activation_link(mail.body))["Location"] == reverse(
        "authn:setup-password"
    )


def test_create_a_user_exists_only_after_approval(
    maker, checker, maker_da, firm, mailoutbox, django_capture_on_commit_callbacks
):
    form = {
        "login_id": f"{firm.participant_id}U42",
        "name": "Lee Siu Fong",
        "role": "user",
        "email": "lee.siu.fong@firm.example",
        "scope_online": "on",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = maker.post(reverse("dms:user-create"), form)
    assert response.status_code == 302
    assert response["Location"] == reverse("dms:request-list")
    assert not User.objects.filter(login_id=form["login_id"]).exists()
    change = only_request(kind=RequestKind.USER_CREATE)
    assert change.target is None
    listing = checker.get(reverse("dms:request-list")).content.decode()
    assert "Create a user" in listing and form["login_id"] in listing
    assert subjects(mailoutbox) == [WAITS]

    decide(checker, change, "approve", django_capture_on_commit_callbacks)

    created = User.objects.get(login_id=form["login_id"])
    assert created.participant == firm
    assert (created.role, created.status, created.name) == ("user", "active", "Lee Siu Fong")
    assert (created.scope_online, created.scope_reports, created.scope_dms) == (True, False, False)
    assert created.email == "lee.siu.fong@firm.example"
    assert created.email_registered_by == maker_da
    assert not created.has_usable_password()
    change.refresh_from_db()
    assert (change.status, change.target) == (RequestStatus.APPROVED, created)
    assert "user_created" in actions(participant=firm)
    assert AuditEvent.objects.get(action="user_created").user == created


def test_create_a_user_whose_login_id_is_taken_is_refused(
    maker, firm, django_capture_on_commit_callbacks
):
    taken = factories.UserFactory(participant=firm, login_id=f"{firm.participant_id}U42")
    response = maker.post(
        reverse("dms:user-create"),
        {"login_id": taken.login_id.lower(), "name": "Someone", "role": "user"},
    )
    assert response.status_code == 200
    assert "This login ID is already in use." in response.content.decode()
    assert not ChangeRequest.objects.exists()


def test_suspend_ends_the_users_session_and_their_logins(
    maker, checker, user, django_capture_on_commit_callbacks
):
    browser = Client()
    log_in_with_app(browser, user, scope="online")
    assert browser.get(reverse("authn:online-home")).status_code == 200

    ask(maker, user, RequestKind.USER_SUSPEND, django_capture_on_commit_callbacks)
    user.refresh_from_db()
    assert user.status == UserStatus.ACTIVE
    assert browser.get(reverse("authn:online-home")).status_code == 200

    decide(checker, only_request(target=user), "approve", django_capture_on_commit_callbacks)

    user.refresh_from_db()
    assert user.status == UserStatus.SUSPENDED
    assert browser.get(reverse("authn:online-home")).status_code == 302
    response = password_step(Client(), user.login_id)
    assert "Login failed" in response.content.decode()
    assert actions(user=user, action="user_suspended") == ["user_suspended"]


def test_restore_lets_a_suspended_user_log_in_again(
    maker, checker, user, django_capture_on_commit_callbacks
):
    user.status = UserStatus.SUSPENDED
    user.save()
    page = maker.get(reverse("dms:user-detail", args=[user.pk])).content.decode()
    assert reverse("dms:user-request", args=[user.pk, "user_restore"]) in page
    assert reverse("dms:user-request", args=[user.pk, "user_suspend"]) not in page

    ask(maker, user, RequestKind.USER_RESTORE, django_capture_on_commit_callbacks)
    user.refresh_from_db()
    assert user.status == UserStatus.SUSPENDED
    decide(checker, only_request(target=user), "approve", django_capture_on_commit_callbacks)

    user.refresh_from_db()
    assert user.status == UserStatus.ACTIVE
    browser = Client()
    log_in_with_app(browser, user, scope="online")
    assert browser.get(reverse("authn:online-home")).status_code == 200
    assert "user_restored" in actions(user=user)


def test_otp_reset_removes_the_devices_and_sends_a_new_activation(
    maker, checker, user, mailoutbox, django_capture_on_commit_callbacks
):
    factories.BackupCodeDeviceFactory(user=user)
    factories.EmailOTPDeviceFactory(user=user)
    User.objects.filter(pk=user.pk).update(two_factor_ready_at=timezone.now())
    browser = Client()
    log_in_with_app(browser, user, scope="online")

    ask(maker, user, RequestKind.OTP_RESET, django_capture_on_commit_callbacks)
    assert TOTPDevice.objects.filter(user=user).exists()
    mailoutbox.clear()
    decide(checker, only_request(target=user), "approve", django_capture_on_commit_callbacks)

    assert not TOTPDevice.objects.filter(user=user).exists()
    assert not EmailOTPDevice.objects.filter(user=user).exists()
    assert not BackupCodeDevice.objects.filter(user=user).exists()
    user.refresh_from_db()
    assert user.two_factor_ready_at is None
    # The session that logged in with the removed device no longer counts as verified.
    assert browser.get(reverse("authn:online-home")).status_code == 302
    (mail,) = mailoutbox
    assert mail.subject.startswith(ACTIVATION)
    assert mail.to == [user.email]
    link = activation_link(mail.body)
    assert open_link(Client(), link).status_code == 200
    assert {"otp_reset", "activation_sent"} <= set(actions(user=user))


def test_resend_activation_sends_a_new_link_and_retires_the_old_one(
    maker, checker, newcomer, mailoutbox, django_capture_on_commit_callbacks
):
    User.objects.filter(pk=newcomer.pk).update(email="b10000u05@firm.example")
    newcomer.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        activation_send(user=newcomer, acting_user=None)
    first = activation_link(mailoutbox[-1].body)
    assert open_link(Client(), first).status_code == 200

    ask(maker, newcomer, RequestKind.ACTIVATION_RESEND, django_capture_on_commit_callbacks)
    mailoutbox.clear()
    decide(checker, only_request(target=newcomer), "approve", django_capture_on_commit_callbacks)

    (mail,) = mailoutbox
    assert mail.subject.startswith(ACTIVATION)
    assert mail.to == ["b10000u05@firm.example"]
    second = activation_link(mail.body)
    assert second != first
    assert open_link(Client(), first).status_code == 410
    assert open_link(Client(), second).status_code == 200
    assert actions(user=newcomer, action="activation_sent") == ["activation_sent"] * 2


def test_resend_activation_for_a_user_without_email_is_refused(
    maker, newcomer, django_capture_on_commit_callbacks
):
    response = ask(
        maker, newcomer, RequestKind.ACTIVATION_RESEND, django_capture_on_commit_callbacks
    )
    assert response.status_code == 302
    page = maker.get(response["Location"]).content.decode()
    assert "The user has no designated email to send it to." in page
    assert not ChangeRequest.objects.exists()


# Who may check -------------------------------------------------------------------------


@pytest.fixture
def both_da(parallel_run, firm):
    """A DA who is both maker and checker."""
    person = factories.DAFactory(participant=firm, login_id="B10000DA3", da_duty=DaDuty.BOTH)
    factories.TOTPDeviceFactory(user=person)
    return person


def test_a_maker_cannot_approve_their_own_request(
    client, both_da, user, django_capture_on_commit_callbacks
):
    log_in_with_app(client, both_da, scope="dms")
    ask(client, user, RequestKind.USER_SUSPEND, django_capture_on_commit_callbacks)
    change = only_request(target=user)
    page = client.get(reverse("dms:request-detail", args=[change.pk])).content.decode()
    assert "Approve" not in page
    assert "Waiting for another DA of your firm with the checker duty" in page

    for decision, data in (("approve", {}), ("reject", {"reason": "Changed my mind"})):
        response = client.post(reverse("dms:request-decide", args=[change.pk, decision]), data)
        assert response.status_code == 403
        assert "with the checker duty must" in response.content.decode()

    change.refresh_from_db()
    assert (change.status, change.checker) == (RequestStatus.PENDING, None)
    user.refresh_from_db()
    assert user.status == UserStatus.ACTIVE


def test_a_single_da_firm_allowed_by_staff_checks_its_own_requests(
    client, firm, both_da, user, mailoutbox, django_capture_on_commit_callbacks
):
    firm.single_da_allowed = True
    firm.save()
    log_in_with_app(client, both_da, scope="dms")
    ask(client, user, RequestKind.USER_SUSPEND, django_capture_on_commit_callbacks)
    # The only checker is the maker, so the maker is told.
    (waits,) = mailoutbox
    assert waits.to == [both_da.email]

    change = only_request(target=user)
    page = decide(client, change, "approve", django_capture_on_commit_callbacks)
    assert APPROVED in page.content.decode()
    change.refresh_from_db()
    assert (change.status, change.maker, change.checker) == (
        RequestStatus.APPROVED,
        both_da,
        both_da,
    )
    user.refresh_from_db()
    assert user.status == UserStatus.SUSPENDED


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        (RequestKind.EMAIL_REGISTER, {"email": "me.myself@firm.example"}),
        (RequestKind.USER_SUSPEND, {}),
        (RequestKind.USER_RESTORE, {}),
        (RequestKind.OTP_RESET, {}),
        (RequestKind.ACTIVATION_RESEND, {}),
    ],
)
def test_a_da_cannot_file_a_request_about_themselves(
    maker, maker_da, programme, kind, data, django_capture_on_commit_callbacks
):
    programme.da_email_registration_open = True
    programme.save()
    before = AuditEvent.objects.count()
    response = ask(maker, maker_da, kind, django_capture_on_commit_callbacks, **data)
    assert response.status_code == 403
    assert "You cannot make a request about yourself." in response.content.decode()
    assert not ChangeRequest.objects.exists()
    assert AuditEvent.objects.count() == before
    maker_da.refresh_from_db()
    assert maker_da.version == 0


def test_own_page_offers_no_requests(maker, maker_da):
    page = maker.get(reverse("dms:user-detail", args=[maker_da.pk])).content.decode()
    assert "A DA cannot make requests about their own account." in page
    assert "/request/" not in page


def test_checker_page_offers_no_requests(checker, user):
    page = checker.get(reverse("dms:user-detail", args=[user.pk])).content.decode()
    assert "/request/" not in page
    listing = checker.get(reverse("dms:user-list")).content.decode()
    assert reverse("dms:user-create") not in listing


# Refusals ------------------------------------------------------------------------------


def test_a_request_whose_user_changed_meanwhile_is_outdated(
    maker, checker, user, django_capture_on_commit_callbacks
):
    old = user.email
    ask(
        maker,
        user,
        RequestKind.EMAIL_REGISTER,
        django_capture_on_commit_callbacks,
        email="first.try@firm.example",
    )
    ask(maker, user, RequestKind.USER_SUSPEND, django_capture_on_commit_callbacks)
    email_change = only_request(target=user, kind=RequestKind.EMAIL_REGISTER)
    suspension = only_request(target=user, kind=RequestKind.USER_SUSPEND)
    decide(checker, suspension, "approve", django_capture_on_commit_callbacks)

    page = decide(checker, email_change, "approve", django_capture_on_commit_callbacks)

    assert page.redirect_chain[-1][0] == reverse("dms:request-detail", args=[email_change.pk])
    html = page.content.decode()
    assert STALE in html
    assert APPROVED not in html
    email_change.refresh_from_db()
    assert email_change.status == RequestStatus.OUTDATED
    assert 'data-testid="status">Outdated<' in html
    user.refresh_from_db()
    assert user.email == old
    assert user.status == UserStatus.SUSPENDED
    assert actions(user=user, action="request_outdated") == ["request_outdated"]
    assert "email_registered" not in actions(user=user)


def test_rejection_with_a_reason(
    maker, checker, checker_da, user, django_capture_on_commit_callbacks
):
    ask(maker, user, RequestKind.USER_SUSPEND, django_capture_on_commit_callbacks)
    change = only_request(target=user)

    page = decide(
        checker, change, "reject", django_capture_on_commit_callbacks, reason="Wrong user, see memo"
    )

    assert "Request rejected." in page.content.decode()
    change.refresh_from_db()
    assert (change.status, change.checker, change.reason) == (
        RequestStatus.REJECTED,
        checker_da,
        "Wrong user, see memo",
    )
    detail = maker.get(reverse("dms:request-detail", args=[change.pk])).content.decode()
    assert "Wrong user, see memo" in detail
    assert 'data-testid="status">Rejected<' in detail
    user.refresh_from_db()
    assert user.status == UserStatus.ACTIVE
    event = AuditEvent.objects.get(action="request_rejected")
    assert (event.actor, event.user, event.participant) == (checker_da, user, user.participant)
    assert "user_suspended" not in actions(user=user)


def test_rejection_without_a_reason_is_refused(
    maker, checker, user, django_capture_on_commit_callbacks
):
    ask(maker, user, RequestKind.USER_SUSPEND, django_capture_on_commit_callbacks)
    change = only_request(target=user)

    page = decide(checker, change, "reject", django_capture_on_commit_callbacks, reason="   ")

    assert "Give the maker a reason for the rejection." in page.content.decode()
    change.refresh_from_db()
    assert (change.status, change.checker) == (RequestStatus.PENDING, None)
    assert not AuditEvent.objects.filter(action="request_rejected").exists()


def test_a_decided_request_cannot_be_decided_again(
    maker, checker, user, django_capture_on_commit_callbacks
):
    ask(maker, user, RequestKind.USER_SUSPEND, django_capture_on_commit_callbacks)
    change = only_request(target=user)
    decide(checker, change, "approve", django_capture_on_commit_callbacks)
    page = decide(checker, change, "reject", django_capture_on_commit_callbacks, reason="Late")
    assert "This request has already been decided." in page.content.decode()
    change.refresh_from_db()
    assert change.status == RequestStatus.APPROVED


def test_a_second_pending_request_of_the_same_kind_is_refused(
    maker, checker_da, user, mailoutbox, django_capture_on_commit_callbacks
):
    ask(
        maker,
        user,
        RequestKind.EMAIL_REGISTER,
        django_capture_on_commit_callbacks,
        email="a@firm.example",
    )
    response = ask(
        maker,
        user,
        RequestKind.EMAIL_REGISTER,
        django_capture_on_commit_callbacks,
        email="b@firm.example",
    )
    assert response.status_code == 302
    page = maker.get(response["Location"]).content.decode()
    assert "A request of this kind for this user is already waiting." in page
    assert ChangeRequest.objects.filter(target=user).count() == 1
    assert subjects(mailoutbox) == [WAITS]
    # Another kind for the same user may wait beside it.
    ask(maker, user, RequestKind.OTP_RESET, django_capture_on_commit_callbacks)
    assert ChangeRequest.objects.filter(target=user).count() == 2


def test_an_invalid_email_is_refused(maker, user, django_capture_on_commit_callbacks):
    response = ask(
        maker,
        user,
        RequestKind.EMAIL_REGISTER,
        django_capture_on_commit_callbacks,
        email="not-an-email",
    )
    page = maker.get(response["Location"]).content.decode()
    assert "Enter a valid email address." in page
    assert not ChangeRequest.objects.exists()


def test_the_same_email_again_is_refused(maker, user, django_capture_on_commit_callbacks):
    response = ask(
        maker,
        user,
        RequestKind.EMAIL_REGISTER,
        django_capture_on_commit_callbacks,
        email=user.email,
    )
    page = maker.get(response["Location"]).content.decode()
    assert "This is already the user's designated email." in html.unescape(page)
    assert not ChangeRequest.objects.exists()


# DAs' own emails -----------------------------------------------------------------------


def test_a_das_email_waits_for_the_programme_to_open_it(
    maker, checker_da, programme, django_capture_on_commit_callbacks
):
    assert not programme.da_email_registration_open
    page = maker.get(reverse("dms:user-detail", args=[checker_da.pk])).content.decode()
    assert "DAs' email registration has not opened yet." in page
    assert "<fieldset disabled>" in page
    assert reverse("dms:user-request", args=[checker_da.pk, "email_register"]) not in page
    assert "planned for" not in page

    response = ask(
        maker,
        checker_da,
        RequestKind.EMAIL_REGISTER,
        django_capture_on_commit_callbacks,
        email="checker.desk@firm.example",
    )
    assert "DAs' email registration has not opened yet." in text(maker.get(response["Location"]))
    assert not ChangeRequest.objects.exists()

    programme.da_email_registration_open = True
    programme.save()
    page = maker.get(reverse("dms:user-detail", args=[checker_da.pk])).content.decode()
    assert "<fieldset disabled>" not in page
    assert reverse("dms:user-request", args=[checker_da.pk, "email_register"]) in page

    ask(
        maker,
        checker_da,
        RequestKind.EMAIL_REGISTER,
        django_capture_on_commit_callbacks,
        email="checker.desk@firm.example",
    )
    # A change to the checker's own account is checked by another checker of the firm.
    change = only_request(target=checker_da)
    other_checker = factories.DAFactory(
        participant=checker_da.participant, login_id="B10000DA4", da_duty=DaDuty.CHECKER
    )
    factories.TOTPDeviceFactory(user=other_checker)
    browser = Client()
    log_in_with_app(browser, other_checker, scope="dms")
    decide(browser, change, "approve", django_capture_on_commit_callbacks)
    checker_da.refresh_from_db()
    assert checker_da.email == "checker.desk@firm.example"


def test_a_new_da_with_an_email_waits_for_the_programme_too(maker, programme, firm):
    form = {
        "login_id": f"{firm.participant_id}DA9",
        "name": "Ho Wing Sze",
        "role": "da",
        "da_duty": "checker",
        "email": "ho.wing.sze@firm.example",
    }
    response = maker.post(reverse("dms:user-create"), form)
    assert response.status_code == 200
    assert "DAs' email registration has not opened yet." in text(response)
    assert not ChangeRequest.objects.exists()

    del form["email"]
    assert maker.post(reverse("dms:user-create"), form).status_code == 302
    assert only_request(kind=RequestKind.USER_CREATE).payload["role"] == "da"


def test_the_planned_date_is_shown_while_das_email_registration_is_closed(
    maker, checker_da, programme
):
    planned = timezone.now().replace(microsecond=0) + dt.timedelta(days=40)
    programme.milestones.filter(kind=MilestoneKind.LAUNCH).update(planned_at=planned)
    page = maker.get(reverse("dms:user-detail", args=[checker_da.pk])).content.decode()
    when = formats.date_format(timezone.localtime(planned), "DATETIME_FORMAT")
    assert f"The launch is planned for {when}" in page


def test_a_checker_cannot_approve_a_request_about_themselves(
    maker, checker, checker_da, programme, django_capture_on_commit_callbacks
):
    programme.da_email_registration_open = True
    programme.save()
    ask(maker, checker_da, RequestKind.OTP_RESET, django_capture_on_commit_callbacks)
    change = only_request(target=checker_da)
    page = checker.get(reverse("dms:request-detail", args=[change.pk])).content.decode()
    assert "Approve" not in page
    response = checker.post(reverse("dms:request-decide", args=[change.pk, "approve"]))
    assert response.status_code == 403
    change.refresh_from_db()
    assert change.status == RequestStatus.PENDING
    assert TOTPDevice.objects.filter(user=checker_da).exists()
