"""`make bench`, part 4: the outbox relay's throughput against a bare loop of send_mail.

RELAY_EMAILS (10,000 by default, BENCH_RELAY_EMAILS) outbox rows are written at once, then a
real Celery worker (its own process, --pool=solo, over a Redis of the bench's own) is woken
and relays them to an SMTP sink (tests.stack, in this process): emails per second from the
wake-up to the last message accepted. Beside it, the same sink fed by a bare loop of
django.core.mail.send_mail, one call per email, from this process. The goal: the relay at
least GOAL_RELAY_RATIO (0.5) times the bare loop. Queries per email are counted on a few
hundred rows relayed in this process (CaptureQueriesContext cannot see the worker's).

Without redis-server on the machine the worker part is skipped and says so.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

GOAL_RELAY_RATIO = 0.5
COUNTED_EMAILS = 300


def _database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    from tests.test_worker import _database_url as postgres_url

    return postgres_url()


def _broker_switch(app: Any, url: str) -> None:
    """Point the app at this part's Redis. A part run before it in the same process left the
    app's connection pools on its own Redis, since stopped: they are dropped, as Celery drops
    them in a forked child, so that tasks reach this part's worker."""
    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None
    app.conf.broker_url = url


def _queue(emails: int, address: str, user_id: int) -> None:
    """Write `emails` outbox rows, as a bulk apply would, without waking any relay."""
    from django.utils import timezone

    from outbox.models import OutboxEmail

    now = timezone.now()
    OutboxEmail.objects.bulk_create(
        (
            OutboxEmail(
                kind="email-changed",
                to=address,
                params={"user_id": user_id, "old": "", "new": address},
                created_at=now,
                next_attempt_at=now,
                deadline=now + timezone.timedelta(days=1),
            )
            for _ in range(emails)
        ),
        batch_size=2000,
    )


def _wait(handler: Any, count: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(handler.received) >= count:
            return handler.received[count - 1].at
        time.sleep(0.01)
    raise TimeoutError(f"only {len(handler.received)} of {count} emails within {timeout}s")


def relay_bench(section: Any, emails: int) -> None:
    from django.conf import settings
    from django.core import mail
    from django.db import connection
    from django.test.utils import CaptureQueriesContext, override_settings

    from outbox.models import OutboxEmail
    from outbox.relay import relay
    from tests import factories
    from tests.stack import SmtpSink, celery_worker, free_port, portal_env, redis_server

    # The emails the other parts queued (the bulk rounds' notices) are not this part's.
    OutboxEmail.objects.all().delete()
    user = factories.UserFactory(login_id="R00001U01", email="relay@bench.example")
    address = str(user.email)
    with SmtpSink() as sink:
        smtp = {
            "EMAIL_BACKEND": "common.mail.SmtpBackend",
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": sink.port,
            "EMAIL_USE_TLS": False,
        }
        handler = sink.handler

        # Queries per email, in this process.
        _queue(COUNTED_EMAILS, address, user.pk)
        with override_settings(**smtp), CaptureQueriesContext(connection) as captured:
            report = relay()
        if report.sent != COUNTED_EMAILS:
            raise RuntimeError(f"the counted relay sent {report.sent} of {COUNTED_EMAILS}")
        per_email = len(captured.captured_queries) / COUNTED_EMAILS
        handler.received.clear()

        # The bare loop: send_mail, one call (and one SMTP connection) per email.
        started = time.monotonic()
        with override_settings(**smtp):
            for n in range(emails):
                mail.send_mail(
                    f"Bench {n}", "A bare email.", settings.DEFAULT_FROM_EMAIL, [address]
                )
        bare_rate = emails / (time.monotonic() - started)
        handler.received.clear()

        # The relay, in a real worker.
        if shutil.which("redis-server") is None:
            section.figure("relay_emails_per_second", "skipped", "(no redis-server here)")
            section.figure("relay_queries_per_email", f"{per_email:.1f}", "queries")
            section.figure("bare_send_mail_emails_per_second", f"{bare_rate:.0f}", "emails/s")
            return
        folder = Path(tempfile.mkdtemp(prefix="ccass-bench-relay-"))
        redis_port = free_port()
        redis = redis_server(redis_port, folder).start()
        env = portal_env(
            DATABASE_URL=_database_url(),
            DB_CONN_MAX_AGE="0",
            REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            # As in production: DEBUG off (no query log in the worker), a real key.
            SECRET_KEY=secrets.token_urlsafe(50),
            DEBUG="false",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(sink.port),
            EMAIL_USE_TLS="false",
            LOG_LEVEL="WARNING",
            OUTBOX_RELAY_SECONDS="300",
        )
        # The worker as deployed (deploy/systemd/ccass-worker.service): prefork, four
        # processes, sharing the emails out through the relay's fan-out.
        worker = celery_worker(
            env, folder / "worker.log", f"bench-{redis_port}@bench", solo=False
        ).start()
        try:
            from ccass.celery import app
            from outbox.tasks import outbox_relay

            _broker_switch(app, env["REDIS_URL"])
            app.conf.task_always_eager = False
            deadline = time.monotonic() + 60
            while " ready." not in worker.output() and time.monotonic() < deadline:
                if not worker.alive():
                    raise RuntimeError(f"the bench worker exited:\n{worker.output()}")
                time.sleep(0.2)
            _queue(emails, address, user.pk)
            started = time.monotonic()
            outbox_relay.delay()
            finished = _wait(handler, emails, timeout=max(300.0, emails / 20))
            relay_rate = emails / (finished - started)
        finally:
            worker.stop()
            redis.stop()
            shutil.rmtree(folder, ignore_errors=True)

        ratio = relay_rate / bare_rate
        section.figure("relay_emails_per_second", f"{relay_rate:.0f}", "emails/s")
        section.figure("relay_queries_per_email", f"{per_email:.1f}", "queries")
        section.figure("bare_send_mail_emails_per_second", f"{bare_rate:.0f}", "emails/s")
        section.figure("relay_vs_bare_ratio", f"{ratio:.2f}", "x")
        if ratio < GOAL_RELAY_RATIO:
            section.missed.append(f"relay {ratio:.2f}x the bare loop < {GOAL_RELAY_RATIO}x")
        section.details.append(
            f"relay: {emails} emails through one worker (prefork, 4 processes, "
            f"{os.cpu_count()} cores); "
            f"bare: {emails} send_mail calls from one process"
        )
