"""Beat for the embedded default (`make run`): a thread of the web process runs the schedule.

With REDIS_URL, Celery beat (deploy/systemd/ccass-beat.service) sends the tasks of
CELERY_BEAT_SCHEDULE to the workers. The demo has neither, so `make run` sets DEMO_BEAT
and the development server's process starts this thread: every MILESTONE_CHECK_SECONDS it
carries out the due milestones, sends the reminders due before a deadline, takes the day's
readiness snapshot and undoes the account changes of an ended connectivity-test session.
Each of them does its work once whatever the number of runs, so running them more often
than beat would changes nothing.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)

_started = threading.Event()


def _tick() -> None:
    from authn.rehearsal import sessions_undo_due
    from migration.readiness import readiness_snapshot_take
    from migration.services import milestones_carry_out, reminders_before_deadlines

    for milestone in milestones_carry_out():
        logger.info("demo beat carried out %s", milestone)
    reminders_before_deadlines()
    readiness_snapshot_take()
    sessions_undo_due()


def _run(stop: threading.Event) -> None:
    while not stop.wait(settings.MILESTONE_CHECK_SECONDS):
        # The thread's own connection, dropped if the database went away since the last run.
        close_old_connections()
        try:
            _tick()
        except Exception:  # the next tick tries again, as beat's next run would
            logger.exception("demo beat: a run failed")
        finally:
            close_old_connections()


def start() -> threading.Event | None:
    """Start the demo's beat thread once per process; return its stop event."""
    if _started.is_set():
        return None
    _started.set()
    stop = threading.Event()
    threading.Thread(target=_run, args=(stop,), name="demo-beat", daemon=True).start()
    return stop
