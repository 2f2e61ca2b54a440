"""Activation links: issued and mailed by the worker, opened by the user to start 2FA setup."""

from __future__ import annotations

import datetime as dt
import time

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet
from django.db.models.functions import JSONObject
from django.http import HttpRequest
from django.utils import timezone

from audit.models import AuditAction, Outcome
from audit.services import audit_record, audit_record_many
from authn import sessions
from authn.emails import ACTIVATION
from authn.models import ActivationToken
from authn.secrets import secret_hash, url_token
from migration.models import Milestone
from outbox.services import email_queue, email_queue_many, emails_cancel, emails_cancel_many
from participants.models import Terminal, User, UserStatus


@transaction.atomic
def activation_send(
    *, user: User, acting_user: User | None, request: HttpRequest | None = None
) -> None:
    """Have an activation email sent to the user's designated address."""
    if not user.has_registered_email():
        raise ValueError("The user has no designated email address")
    audit_record(
        action=AuditAction.ACTIVATION_SENT,
        outcome=Outcome.SUCCESS,
        request=request,
        user=user,
        actor=acting_user,
    )
    email_queue(kind=ACTIVATION, to=user.email, params={"user_id": user.pk})


def activations_at_launch(
    milestone: Milestone, terminal: Terminal, now: dt.datetime
) -> dict[str, int]:
    """At 2FA launch, have an activation email sent to every active user of the terminal
    with a registered email who has not set up 2FA: two statements whatever their number,
    in the transaction that carries the launch out (migration.services)."""
    users = User.objects.filter(
        participant__terminal=terminal,
        status=UserStatus.ACTIVE,
        two_factor_ready_at__isnull=True,
    ).exclude(email="")
    audit_record_many(
        rows=users,
        user_field="pk",
        login_id_field="login_id",
        participant_field="participant_id",
        action=AuditAction.ACTIVATION_SENT,
        outcome=Outcome.SUCCESS,
        detail={"milestone": milestone.kind},
        at=now,
    )
    queued = email_queue_many(
        kind=ACTIVATION, source=users, to=F("email"), params=JSONObject(user_id=F("pk"))
    )
    return {"activation_emails": queued}


def activation_issue(*, user: User, token: str | None = None) -> str:
    """Create a fresh activation link for the user, retiring older ones, and return its token
    (the one given: the outbox derives it from the email that carries it)."""
    token = token if token is not None else url_token()
    activation_issue_many([(user, token)])
    return token


def activation_issue_many(links: list[tuple[User, str]]) -> None:
    """Create an activation link with each token for its user, retiring the users' older
    links, in two statements whatever their number. A user named twice keeps the last."""
    if not links:
        return
    now = timezone.now()
    last = {user.pk: token for user, token in links}
    with transaction.atomic():
        ActivationToken.objects.filter(user__in=list(last)).open(now).update(revoked_at=now)
        ActivationToken.objects.bulk_create(
            ActivationToken(
                user=user,
                token_hash=secret_hash("activation", token),
                created_at=now,
                expires_at=now + dt.timedelta(hours=settings.ACTIVATION_LINK_HOURS),
                revoked_at=None if last[user.pk] == token else now,
            )
            for user, token in links
        )


def activation_links_revoke(*, user: User) -> int:
    """Retire every open activation link of the user, and the activation emails still waiting."""
    now = timezone.now()
    emails_cancel(kind=ACTIVATION, user_id=user.pk)
    return ActivationToken.objects.filter(user=user).open(now).update(revoked_at=now)


def activation_links_revoke_many(*, users: QuerySet[User]) -> int:
    """Retire every open activation link of these users, and their activation emails still
    waiting, in two statements whatever the number of users."""
    now = timezone.now()
    # The emails first: a relay preparing one holds its row, so this waits for it, and the
    # link it issued is then committed and retired by the second statement.
    emails_cancel_many(kind=ACTIVATION, key="user_id", values=users.values("pk"))
    return (
        ActivationToken.objects.filter(user__in=users.values("pk")).open(now).update(revoked_at=now)
    )


def activation_lookup(*, token: str) -> ActivationToken | None:
    return (
        ActivationToken.objects.select_related("user__participant__terminal__programme")
        .filter(token_hash=secret_hash("activation", token))
        .first()
    )


@transaction.atomic
def activation_consume(*, token: str, request: HttpRequest) -> ActivationToken | None:
    """Use up an activation link and bind 2FA setup to this browser session."""
    activation = activation_lookup(token=token)
    if activation is None:
        return None
    activation = ActivationToken.objects.select_for_update().get(pk=activation.pk)
    if not activation.is_open(timezone.now()) or not activation.user.is_active:
        return None
    activation.used_at = timezone.now()
    activation.save(update_fields=["used_at"])
    # A fresh session key: nothing from before the link was opened carries over.
    request.session.cycle_key()
    request.session[sessions.SETUP_KEY] = {
        "user_id": activation.user_id,
        "activation_id": activation.pk,
        "at": int(time.time()),
    }
    audit_record(
        action=AuditAction.ACTIVATION_OPENED,
        outcome=Outcome.SUCCESS,
        request=request,
        user=activation.user,
    )
    return activation
