"""The relay as a task: woken after each commit that queues email, and swept by beat each minute."""

from __future__ import annotations

import math

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from outbox import relay
from outbox.models import OutboxEmail


# No retry and no result: a relay that dies leaves its rows pending for the next sweep.
@shared_task(ignore_result=True)
def outbox_relay(spread: bool = True) -> dict[str, int]:
    """Send due emails for up to OUTBOX_RELAY_SECONDS, then hand the rest to another run.

    A run that `spread`s first asks for helpers when many emails are due (a bulk file's
    notices): one relay per OUTBOX_RELAY_CHUNK emails, at most OUTBOX_RELAY_FANOUT in all,
    which the workers' processes take in parallel. SKIP LOCKED keeps them off each other's
    rows; the helpers do not spread again.
    """
    if spread:
        due = OutboxEmail.objects.due(timezone.now()).count()
        relays = min(math.ceil(due / settings.OUTBOX_RELAY_CHUNK), settings.OUTBOX_RELAY_FANOUT)
        for _ in range(relays - 1):
            outbox_relay.delay(spread=False)
    report = relay.relay(seconds=settings.OUTBOX_RELAY_SECONDS)
    if report.more:
        outbox_relay.delay()
    return {"sent": report.sent, "retrying": report.retrying, "failed": report.failed}
