"""An email code login through a real Celery worker in its own process, over Redis.

The worker reads the same PostgreSQL test database (rows are committed:
transactional test), writes its emails to this test's outbox folder, and consumes
a queue of its own, so messages of other runs or of a developer's worker neither
reach it nor are stolen by them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from celery.signals import before_task_publish
from django.conf import settings
from django.db import connection
from django.urls import reverse
from kombu import Exchange, Queue

from authn.models import EmailOTPDevice
from authn.secrets import secret_hash
from ccass.celery import app as celery_app
from outbox.models import EmailStatus, OutboxEmail
from tests.helpers import otp_step, password_step

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

WORKER_START_SECONDS = 60
MAIL_WAIT_SECONDS = 30
WORKER_STOP_SECONDS = 15


def _database_url() -> str:
    """The URL of the test database this process uses (pytest-django's test_<name>)."""
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    netloc = f"{auth}@{host}" if auth else host
    if db["PORT"]:
        netloc += f":{db['PORT']}"
    options = {k: str(v) for k, v in (db.get("OPTIONS") or {}).items()}
    query = "?" + urlencode(options) if options else ""
    return f"postgres://{netloc}/{quote(db['NAME'], safe='')}{query}"


class Worker:
    def __init__(self, process: subprocess.Popen[bytes], log: Path, nodename: str, queue: str):
        self.process = process
        self.log = log
        self.nodename = nodename
        self.queue = queue

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-8000:]

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            pytest.fail(f"the Celery worker exited with {code}:\n{self.output()}", pytrace=False)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if celery_app.control.ping(destination=[self.nodename], timeout=0.5):
                return
        pytest.fail(
            f"the Celery worker did not answer a ping within {timeout}s:\n{self.output()}",
            pytrace=False,
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # warm shutdown: finishes the task it is running
            try:
                self.process.wait(WORKER_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(WORKER_STOP_SECONDS)


@pytest.fixture
def live_worker(transactional_db, settings, tmp_path) -> Iterator[Worker]:
    """A Celery worker process on a queue of its own; tasks are sent to it, not run in-process."""
    run = uuid.uuid4().hex[:12]
    queue = f"ccass-test-{run}"
    nodename = f"{queue}@pytest"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"CELERY_TASK_ALWAYS_EAGER", "EMAIL_HOST"}
    }
    env.setdefault("DJANGO_SETTINGS_MODULE", "ccass.settings")
    env.update(
        DATABASE_URL=_database_url(),
        DB_CONN_MAX_AGE="0",
        REDIS_URL=os.environ["REDIS_URL"],
        EMAIL_OUTBOX_DIR=str(settings.EMAIL_OUTBOX_DIR),
        PYTHONUNBUFFERED="1",
    )
    command = [
        sys.executable, "-m", "celery", "-A", "ccass", "worker",
        "--pool=solo", "--concurrency=1", "-Q", queue, "-n", nodename,
        "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel=INFO",
    ]  # fmt: skip
    log = tmp_path / "worker.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    worker = Worker(process, log, nodename, queue)

    eager_before = celery_app.conf.task_always_eager
    queue_before = celery_app.conf.task_default_queue
    # The autouse _tasks_in_process fixture made tasks eager; this test wants the broker.
    celery_app.conf.task_always_eager = False
    celery_app.conf.task_default_queue = queue
    try:
        worker.wait_ready(WORKER_START_SECONDS)
        yield worker
        worker.check_alive()
    finally:
        celery_app.conf.task_always_eager = eager_before
        celery_app.conf.task_default_queue = queue_before
        worker.stop()
        _delete_queue(queue)


def _delete_queue(name: str) -> None:
    """Remove the run's queue and its binding from Redis (declared again so kombu knows them)."""
    try:
        with celery_app.connection_for_write() as conn:
            queue = Queue(name, Exchange(name), routing_key=name, channel=conn.default_channel)
            queue.declare()
            queue.delete()
    except Exception:  # an empty, uniquely named queue left behind is harmless
        pass


@pytest.fixture
def published() -> Iterator[list[dict[str, object]]]:
    """Every task message this process sends to the broker, as sent."""
    sent: list[dict[str, object]] = []

    def record(sender=None, body=None, headers=None, routing_key=None, **kwargs):
        sent.append({"task": sender, "body": body, "headers": headers, "routing_key": routing_key})

    before_task_publish.connect(record, weak=False)
    yield sent
    before_task_publish.disconnect(record)


def _wait_for_code(worker: Worker, outbox: Path, address: str) -> str:
    """Return the 6-digit code of the outbox email to `address`, waiting for the worker."""
    deadline = time.monotonic() + MAIL_WAIT_SECONDS
    while time.monotonic() < deadline:
        for path in sorted(outbox.glob("*.eml")):
            message = message_from_bytes(path.read_bytes(), policy=policy.default)
            if address not in str(message["To"]):
                continue
            text = message.get_body(preferencelist=("plain",))
            # A file the worker is still writing has no complete body yet: look again.
            found = re.search(r"\b(\d{6})\b", text.get_content()) if text is not None else None
            if found:
                return found.group(1)
        worker.check_alive()
        time.sleep(0.1)
    pytest.fail(
        f"no email with a code to {address} in {outbox} within {MAIL_WAIT_SECONDS}s; "
        f"worker log:\n{worker.output()}",
        pytrace=False,
    )


def test_email_code_login_through_live_worker(client, email_user, live_worker, published):
    device = EmailOTPDevice.objects.get(user=email_user)
    assert not device.token_hash

    started = time.monotonic()
    response = password_step(client, email_user.login_id)
    assert response.status_code == 302, response.content.decode()[:2000]

    # The web process sent one message, to this test's queue: "relay the outbox", no arguments.
    assert len(published) == 1, published
    message = published[0]
    assert message["task"] == "outbox.tasks.outbox_relay"
    assert message["routing_key"] == live_worker.queue
    args, kwargs, _embed = message["body"]
    assert list(args) == [] and kwargs == {}

    code = _wait_for_code(live_worker, Path(settings.EMAIL_OUTBOX_DIR), email_user.email)
    elapsed = time.monotonic() - started

    # The code exists only in the email: the database holds its keyed hash, the outbox row
    # names the device only, and the broker message (sent before the code existed) has none.
    device.refresh_from_db()
    assert device.token_hash == secret_hash("email-otp", code)
    row = OutboxEmail.objects.get()
    assert row.params == {"device_id": device.pk}
    headers = message["headers"]
    carried = json.dumps([message["body"], headers.get("argsrepr"), headers.get("kwargsrepr")])
    assert code not in carried
    # The worker marked it sent once; nothing is left for the sweep.
    deadline = time.monotonic() + MAIL_WAIT_SECONDS
    while row.status != EmailStatus.SENT and time.monotonic() < deadline:
        time.sleep(0.1)
        row.refresh_from_db()
    assert (row.status, row.attempts) == (EmailStatus.SENT, 1)

    response = otp_step(client, code)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == reverse("authn:online-home")
    assert client.get(reverse("authn:online-home")).status_code == 200
    device.refresh_from_db()
    assert device.token_hash == ""  # used up
    print(f"email delivered by the live worker {elapsed:.2f}s after the password step")
