"""Retiring activation links: every open link and every activation email still waiting."""

from __future__ import annotations

import pytest
from django.test import Client

from authn.activation import activation_links_revoke_many, activation_send
from authn.models import ActivationToken
from outbox.models import EmailStatus, OutboxEmail
from participants.models import User
from tests import factories
from tests.helpers import activation_link, open_link

pytestmark = pytest.mark.django_db


def _sent_link(user, mailoutbox, capture) -> str:
    with capture(execute=True):
        activation_send(user=user, acting_user=None)
    return activation_link(mailoutbox[-1].body)


def test_revoke_many_retires_the_links_and_waiting_emails_of_those_users_only(
    parallel_run, firm, mailoutbox, django_capture_on_commit_callbacks
):
    leaving, staying = (
        factories.UserFactory(participant=firm, login_id=f"B10000U3{n}") for n in range(2)
    )
    leaving_link = _sent_link(leaving, mailoutbox, django_capture_on_commit_callbacks)
    staying_link = _sent_link(staying, mailoutbox, django_capture_on_commit_callbacks)
    # Activation emails not sent yet (their relay never woke), and another kind of email.
    activation_send(user=leaving, acting_user=None)
    activation_send(user=staying, acting_user=None)
    other_kind = OutboxEmail.objects.create(
        kind="email-changed",
        to=leaving.email,
        params={"user_id": leaving.pk},
        deadline="2099-01-01T00:00Z",
    )

    revoked = activation_links_revoke_many(users=User.objects.filter(pk=leaving.pk))

    assert revoked == 1
    assert open_link(Client(), leaving_link).status_code == 410
    assert open_link(Client(), staying_link).status_code == 200
    waiting = OutboxEmail.objects.filter(kind="activation", sent_at__isnull=True)
    assert {(row.params["user_id"], row.status) for row in waiting} == {
        (leaving.pk, EmailStatus.CANCELLED),
        (staying.pk, EmailStatus.PENDING),
    }
    other_kind.refresh_from_db()
    assert other_kind.status == EmailStatus.PENDING


def test_revoke_many_takes_two_statements_whatever_the_number_of_users(
    parallel_run, firm, django_assert_num_queries
):
    users = User.objects.bulk_create(
        User(login_id=f"B10000X{n:03d}", participant=firm, email=f"x{n}@firm.example")
        for n in range(50)
    )
    for user in users:
        ActivationToken.objects.create(
            user=user, token_hash=f"{user.pk:064d}", expires_at="2099-01-01T00:00Z"
        )
        activation_send(user=user, acting_user=None)
    with django_assert_num_queries(2):
        assert activation_links_revoke_many(users=User.objects.filter(participant=firm)) == 50
    assert not ActivationToken.objects.filter(revoked_at__isnull=True).exists()
    assert not OutboxEmail.objects.filter(status=EmailStatus.PENDING).exists()
