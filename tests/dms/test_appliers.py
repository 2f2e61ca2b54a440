"""The approval table: one applier for each kind of request a DA can make."""

from __future__ import annotations

import pytest
from django.utils import timezone

from authn.activation import activation_send
from authn.models import ActivationToken
from dms.appliers import APPLIERS
from dms.models import ChangeRequest, RequestKind, RequestStatus
from dms.services import request_approve, request_make
from migration.models import Phase
from outbox.models import OutboxEmail
from participants.models import User
from tests import factories

pytestmark = pytest.mark.django_db


def test_every_kind_of_request_has_an_applier():
    assert set(APPLIERS) == set(RequestKind.values)


def test_an_approval_that_cannot_apply_returns_why_after_recording_it(
    maker_da, checker_da, user, django_capture_on_commit_callbacks
):
    change = request_make(kind=RequestKind.USER_SUSPEND, acting_user=maker_da, target=user)
    user.status = "suspended"
    user.save(update_fields=["status"])
    with django_capture_on_commit_callbacks(execute=True):
        outcome = request_approve(change=change, acting_user=checker_da)
    assert not outcome.applied
    assert outcome.reason == "The user is already suspended."
    change.refresh_from_db()
    assert (change.status, change.reason) == (RequestStatus.OUTDATED, outcome.reason)


def test_an_approval_that_applies_says_so(maker_da, checker_da, user):
    change = request_make(kind=RequestKind.USER_SUSPEND, acting_user=maker_da, target=user)
    outcome = request_approve(change=change, acting_user=checker_da)
    assert outcome.applied and outcome.reason == ""
    assert ChangeRequest.objects.get(pk=change.pk).status == RequestStatus.APPROVED
    user.refresh_from_db()
    assert user.status == "suspended"


# Activation links follow the designated email ---------------------------------------------


def _open_links(user) -> int:
    return ActivationToken.objects.filter(user=user).open(timezone.now()).count()


def _waiting_activations(user) -> list[tuple[str, str]]:
    return list(
        OutboxEmail.objects.filter(kind="activation", params__user_id=user.pk)
        .order_by("pk")
        .values_list("to", "status")
    )


@pytest.fixture
def linked(parallel_run, firm, django_capture_on_commit_callbacks):
    """A user who has not set up 2FA, with an open link and another activation email waiting."""
    person = factories.UserFactory(
        participant=firm, login_id="B10000U21", email="old.desk@firm.example"
    )
    with django_capture_on_commit_callbacks(execute=True):
        activation_send(user=person, acting_user=None)
    activation_send(user=person, acting_user=None)
    assert _open_links(person) == 1
    return person


def _approve(kind, maker_da, checker_da, target, **payload):
    change = request_make(kind=kind, acting_user=maker_da, target=target, payload=payload or None)
    assert request_approve(change=change, acting_user=checker_da).applied


def test_email_change_retires_old_links_and_sends_one_to_the_new_address(
    maker_da, checker_da, linked
):
    _approve(RequestKind.EMAIL_REGISTER, maker_da, checker_da, linked, email="new@firm.example")
    assert _open_links(linked) == 0
    assert _waiting_activations(linked) == [
        ("old.desk@firm.example", "sent"),
        ("old.desk@firm.example", "cancelled"),
        ("new@firm.example", "pending"),
    ]


def test_email_change_of_a_user_set_up_retires_links_and_sends_none(maker_da, checker_da, linked):
    User.objects.filter(pk=linked.pk).update(two_factor_ready_at=timezone.now())
    linked.refresh_from_db()
    _approve(RequestKind.EMAIL_REGISTER, maker_da, checker_da, linked, email="new@firm.example")
    assert _open_links(linked) == 0
    assert [to for to, status in _waiting_activations(linked) if status == "pending"] == []


def test_email_change_before_setup_opens_retires_links_and_sends_none(maker_da, checker_da, linked):
    factories.set_phase("CCASS", Phase.EMAIL_REGISTRATION)
    _approve(RequestKind.EMAIL_REGISTER, maker_da, checker_da, linked, email="new@firm.example")
    assert _open_links(linked) == 0
    assert [to for to, status in _waiting_activations(linked) if status == "pending"] == []


def test_otp_reset_retires_old_links_then_sends_a_new_one(maker_da, checker_da, linked):
    _approve(RequestKind.OTP_RESET, maker_da, checker_da, linked)
    assert _open_links(linked) == 0
    assert _waiting_activations(linked)[1:] == [
        ("old.desk@firm.example", "cancelled"),
        ("old.desk@firm.example", "pending"),
    ]
