"""The relay as a task: woken after each commit that queues email, and swept by beat each minute."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings

from outbox import relay


# No retry and no result: a relay that dies leaves its rows pending for the next sweep.
@shared_task(ignore_result=True)
def outbox_relay() -> dict[str, int]:
    """Send due emails for up to OUTBOX_RELAY_SECONDS, then hand the rest to another run."""
    report = relay.relay(seconds=settings.OUTBOX_RELAY_SECONDS)
    if report.more:
        # The rest in another task, which another worker may take: a large batch is
        # sent in chunks, by as many workers as there are.
        outbox_relay.delay()
    return {"sent": report.sent, "retrying": report.retrying, "failed": report.failed}
