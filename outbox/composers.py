"""How each kind of email is written: a composer per kind, registered by the app that owns it.

The outbox sits below the apps whose emails it carries, so it cannot import them: each app
registers its composers when it is ready (`authn.emails`, `dms.emails`), and the relay asks
the registry at send time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.db import models, transaction
from django.db.models import QuerySet
from django.utils.crypto import salted_hmac

from outbox.models import OutboxEmail

M = TypeVar("M", bound=models.Model)


class NothingToSend(Exception):
    """What the email was about is gone (a device, a user): the email is cancelled."""


# What a batch form returns for the rows it was given: per row id, what it made, or why
# there is nothing to send.
Outcomes = dict[int, Any]


@dataclasses.dataclass(frozen=True)
class Composer:
    """How one kind of email is written.

    `context` and `prepare` take one row. A kind sent by the thousand (the activations at
    launch) gives `contexts` and `prepare_many` instead, which take the relay's batch of
    rows and do in a few statements what the one-row forms would do in a few per row.
    """

    # emails/<template>-subject.txt, -body.txt and -body.html
    template: str
    # Return the template's context for the row, at send time (or give `contexts`).
    context: Callable[[OutboxEmail], dict[str, Any]] | None = None
    # Done once per row, in a transaction committed before the first send (e.g. issue the
    # code or link the email carries, from `row_secret`, so that a resend carries the same).
    prepare: Callable[[OutboxEmail], None] | None = None
    # How long the email is worth sending for; OUTBOX_DEADLINE_SECONDS by default.
    lifetime: Callable[[], dt.timedelta] | None = None
    # Whether staff may send a failed one again (a code that expired may not).
    retryable: bool = True
    # Batch forms: {row id: context or NothingToSend}, and {row id: NothingToSend} for the
    # rows that could not be prepared.
    contexts: Callable[[list[OutboxEmail]], Outcomes] | None = None
    prepare_many: Callable[[list[OutboxEmail]], Outcomes] | None = None
    # Context values that differ from email to email and that the templates only print
    # (common.mail.emails_render): a batch's emails alike but for those are rendered once.
    merge: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.context is None) == (self.contexts is None):
            raise TypeError(f"{self.template}: give the composer `context` or `contexts`")
        if self.prepare is not None and self.prepare_many is not None:
            raise TypeError(f"{self.template}: give the composer `prepare` or `prepare_many`")

    @property
    def prepares(self) -> bool:
        return self.prepare is not None or self.prepare_many is not None

    def contexts_for(self, rows: list[OutboxEmail]) -> Outcomes:
        """Return each row's context, or the NothingToSend that says why it has none."""
        if self.contexts is not None:
            return self.contexts(rows)
        assert self.context is not None
        found: Outcomes = {}
        for row in rows:
            try:
                found[row.pk] = self.context(row)
            except NothingToSend as gone:
                found[row.pk] = gone
        return found

    def prepare_all(self, rows: list[OutboxEmail]) -> Outcomes:
        """Prepare the rows, in the caller's transaction; return the ones that could not be
        (each in a savepoint of its own when prepared one by one), with why."""
        if self.prepare_many is not None:
            return self.prepare_many(rows)
        assert self.prepare is not None
        gone: Outcomes = {}
        for row in rows:
            try:
                with transaction.atomic():
                    self.prepare(row)
            except NothingToSend as error:
                gone[row.pk] = error
        return gone

    def deadline_from(self, now: dt.datetime) -> dt.datetime:
        lifetime = (
            self.lifetime()
            if self.lifetime is not None
            else dt.timedelta(seconds=settings.OUTBOX_DEADLINE_SECONDS)
        )
        return now + lifetime


_REGISTRY: dict[str, Composer] = {}


def register(kind: str, composer: Composer) -> None:
    _REGISTRY[kind] = composer


def composer_for(kind: str) -> Composer:
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise LookupError(f"No composer is registered for emails of kind {kind!r}") from None


def row_subject(row: OutboxEmail, rows: QuerySet[M], *, param: str, gone: str) -> M:
    """What the email is about: the row of `rows` whose id its params hold under `param`.
    Gone since the email was queued (`gone` says what), there is nothing to send."""
    found = rows.filter(pk=row.params.get(param)).first()
    if found is None:
        raise NothingToSend(gone)
    return found


def row_secret(row: OutboxEmail, purpose: str) -> bytes:
    """Return 32 secret bytes that belong to this email alone, the same every time.

    A code or a link is derived from the row, never stored: a resend after a crash (the
    server accepted the message, the worker died before marking it sent) carries the same
    code or link as the first, so the one the user already has keeps working.
    """
    value = f"{purpose}:{row.pk}:{row.created_at.isoformat()}"
    return salted_hmac("outbox.row-secret", value, algorithm="sha256").digest()
