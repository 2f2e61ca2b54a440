"""The production stack, proven from outside through nginx, as an operator would deploy it.

gunicorn (deploy/gunicorn.conf.py), nginx (deploy/nginx.conf), a Celery worker and beat, an
SMTP sink (tests.stack) and a Redis of this test's own, on the PostgreSQL test database. Then:
a login by card and by email OTP; Redis stopped, then frozen, during an email-sending request; SMTP
answering 421 for two minutes; the worker SIGKILLed while the sink holds DATA; a bulk apply
of 500 rows through an SMTP blip; a forged card header from loopback; and no secret in any log.

The one thing scaled down: beat sweeps every OUTBOX_SWEEP_SECONDS=20 here (60 in production)
and retries start at 20 s, so that the whole run takes minutes, not a quarter of an hour.
"""

from __future__ import annotations

import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

from audit.models import AuditEvent
from authn.models import EmailOTPDevice
from dms import bulk
from dms.services import request_approve
from migration.models import Phase
from outbox.models import EmailStatus, OutboxEmail
from participants.models import DaDuty, User
from tests import factories
from tests.authn.test_nginx_smartcard import NGINX, Browser, csrf_field, pki, render_config
from tests.factories import CARD_PASSWORD, USER_PASSWORD
from tests.helpers import PROXY_SECRET
from tests.stack import (
    ROOT,
    Process,
    SmtpSink,
    celery_beat,
    celery_worker,
    free_port,
    gunicorn,
    portal_env,
    redis_server,
    wait_for_port,
)
from tests.test_worker import _database_url

__all__ = ["pki"]  # the module-scoped certificates fixture, shared with the nginx tests

pytestmark = [
    pytest.mark.worker,
    pytest.mark.nginx,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

SWEEP_SECONDS = 20
RETRY_BASE_SECONDS = 20
OUTAGE_SECONDS = 120
BULK_ROWS = 500
CODE = re.compile(r"Your one-time password is (\d{6})\.")
TOKEN = re.compile(r"/activate/#([A-Za-z0-9_-]+)")


class Stack:
    def __init__(self, folder: Path, sink: SmtpSink, nginx_port: int) -> None:
        self.folder = folder
        self.sink = sink
        self.nginx_port = nginx_port
        self.redis_port = free_port()
        self.web_port = free_port()
        self.env = portal_env(
            DATABASE_URL=_database_url(),
            DB_CONN_MAX_AGE="0",
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            SECRET_KEY=secrets.token_urlsafe(50),
            DEBUG="false",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            SITE_URL=f"https://127.0.0.1:{nginx_port}",
            PROXY_SECRET=PROXY_SECRET,
            TRUSTED_PROXIES="127.0.0.1",
            SMARTCARD_TRUSTED_PROXIES="127.0.0.1",
            EMAIL_HOST="127.0.0.1",
            EMAIL_PORT=str(sink.port),
            EMAIL_USE_TLS="false",
            EMAIL_TIMEOUT="10",
            STATIC_ROOT=str(folder / "static"),
            GUNICORN_BIND=f"127.0.0.1:{self.web_port}",
            GUNICORN_WORKERS="2",
            OUTBOX_SWEEP_SECONDS=str(SWEEP_SECONDS),
            OUTBOX_RETRY_BASE_SECONDS=str(RETRY_BASE_SECONDS),
            LOG_FORMAT="json",
        )
        self.redis = redis_server(self.redis_port, folder)
        self.web = gunicorn(self.env, folder / "gunicorn.log")
        self.worker = celery_worker(self.env, folder / "worker.log", f"stack-{self.web_port}@test")
        self.beat = celery_beat(self.env, folder)
        self.nginx: subprocess.Popen[bytes] | None = None

    def processes(self) -> list[Process]:
        return [self.redis, self.web, self.worker, self.beat]

    def worker_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.worker.alive():
                pytest.fail(f"the worker exited:\n{self.worker.output()}", pytrace=False)
            if " ready." in self.worker.output()[-3000:]:
                return
            time.sleep(0.2)
        pytest.fail(f"the worker was not ready in {timeout}s:\n{self.worker.output()}")

    def logs(self) -> str:
        """Everything every process and nginx wrote."""
        texts = []
        for path in sorted(self.folder.rglob("*.log")):
            texts.append(path.read_text(errors="replace"))
        return "\n".join(texts)


@pytest.fixture
def stack(transactional_db, django_db_serialized_rollback, pki, tmp_path, settings):
    for tool in ("redis-server",):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed")
    if not NGINX.exists():
        pytest.skip("nginx not installed (apt-get install nginx)")
    with SmtpSink() as sink:
        nginx_port = free_port()
        running = Stack(tmp_path, sink, nginx_port)
        collect = subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
            cwd=ROOT,
            env=running.env,
            capture_output=True,
            text=True,
        )
        assert collect.returncode == 0, collect.stdout + collect.stderr
        try:
            running.redis.start()
            wait_for_port(running.redis_port, 10)
            running.web.start()
            wait_for_port(running.web_port, 30, alive=running.web.popen)
            running.worker.start()
            running.beat.start()
            prefix = tmp_path / "nginx"
            prefix.mkdir()
            config = render_config(
                prefix, pki=pki, port=nginx_port, upstream=f"127.0.0.1:{running.web_port}"
            )
            running.nginx = subprocess.Popen(
                [str(NGINX), "-p", str(prefix), "-c", str(config), "-e", str(prefix / "error.log")],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            wait_for_port(nginx_port, 10, alive=running.nginx)
            running.worker_ready()
            yield running
        finally:
            if running.nginx is not None:
                running.nginx.terminate()
                running.nginx.wait(10)
            for process in reversed(running.processes()):
                process.stop()


def _otp_password_step(browser: Browser, login_id: str) -> tuple[int, float]:
    """Post login ID and password on the OTP entry; return the status and the seconds taken."""
    path = reverse("authn:otp-login", kwargs={"terminal": "ccass", "scope": "online"})
    page = browser.request(path)
    assert page.status == 200, page.body[:2000]
    started = time.monotonic()
    response = browser.request(
        path,
        form={
            "csrfmiddlewaretoken": csrf_field(page.body),
            "login_id": login_id,
            "password": USER_PASSWORD,
        },
        headers={"Origin": browser.origin, "Referer": browser.origin + path},
    )
    return response.status, time.monotonic() - started


def _otp_code_step(browser: Browser, code: str) -> int:
    path = reverse("authn:otp-login-verify", kwargs={"terminal": "ccass", "scope": "online"})
    page = browser.request(path)
    response = browser.request(
        path,
        form={"csrfmiddlewaretoken": csrf_field(page.body), "code": code},
        headers={"Origin": browser.origin, "Referer": browser.origin + path},
    )
    return response.status


def _email_user(firm, login_id: str) -> User:
    person = factories.UserFactory(participant=firm, login_id=login_id)
    factories.EmailOTPDeviceFactory(user=person)
    return person


def _rows_for(user: User) -> list[OutboxEmail]:
    device = EmailOTPDevice.objects.get(user=user)
    return list(OutboxEmail.objects.filter(kind="otp-code", params__device_id=device.pk))


def test_the_production_stack_delivers_every_email_once(stack, pki, capsys, settings):
    sink = stack.sink.handler
    # The portal's processes hash with the production hasher only, not the tests' fast one.
    settings.PASSWORD_HASHERS = [h for h in settings.PASSWORD_HASHERS if "MD5" not in h]
    factories.set_phase("CCASS", Phase.PARALLEL_RUN)
    firm = factories.ParticipantFactory(name="Golden Harbour Securities Limited")
    card_user = factories.UserFactory(participant=firm, login_id="B10000U01")
    factories.SmartcardFactory(
        user=card_user, serial=pki.card.serial, fingerprint_sha256=pki.card.fingerprint_sha256
    )
    people = {n: _email_user(firm, f"B10000U1{n}") for n in range(1, 7)}
    counts: Counter[str] = Counter()
    codes: list[str] = []

    # 1. A login by card through nginx.
    browser = Browser(stack.nginx_port, pki.ca_path, pki.card_paths)
    path = reverse("authn:smartcard-login", kwargs={"terminal": "ccass", "entry": "functions"})
    page = browser.request(path)
    assert page.status == 200, page.body[:2000]
    response = browser.request(
        path,
        form={
            "csrfmiddlewaretoken": csrf_field(page.body),
            "login_id": card_user.login_id,
            "password": CARD_PASSWORD,
        },
        headers={"Origin": browser.origin, "Referer": browser.origin + path},
    )
    assert response.status == 302, response.body[:2000]
    online = browser.request(reverse("authn:online-home"))
    assert online.status == 200 and "Logged in with: smartcard" in online.body
    assert "no-store" in online.headers.get("Cache-Control", "")
    counts["card logins"] += 1

    # 2. A login by email OTP through nginx: the code arrives at the SMTP server.
    browser = Browser(stack.nginx_port, pki.ca_path)
    status, _seconds = _otp_password_step(browser, people[1].login_id)
    assert status == 302
    (mail,) = sink.wait_for(people[1].email, 30)
    code = CODE.search(mail.text).group(1)
    codes.append(code)
    assert _otp_code_step(browser, code) == 302
    assert browser.request(reverse("authn:online-home")).status == 200
    counts["email OTP logins"] += 1

    # 3. Redis stopped during an email-sending request: the request answers at once, and
    # the email arrives once when Redis is back (the beat's sweep sends it).
    stack.redis.stop()
    browser = Browser(stack.nginx_port, pki.ca_path)
    status, seconds = _otp_password_step(browser, people[2].login_id)
    assert status == 302
    assert seconds < 2, f"the password step took {seconds:.1f}s with Redis down"
    (row,) = _rows_for(people[2])
    assert row.status == EmailStatus.PENDING
    time.sleep(3)
    stack.redis.start()
    wait_for_port(stack.redis_port, 10)
    (mail,) = sink.wait_for(people[2].email, SWEEP_SECONDS * 3 + 30)
    code = CODE.search(mail.text).group(1)
    codes.append(code)
    assert _otp_code_step(browser, code) == 302
    counts[f"request with Redis down answered in {seconds:.2f}s"] += 1

    # 3b. Redis frozen (accepting connections, answering nothing): the same, within 2 s.
    stack.redis.popen.send_signal(signal.SIGSTOP)
    try:
        browser = Browser(stack.nginx_port, pki.ca_path)
        status, frozen_seconds = _otp_password_step(browser, people[5].login_id)
    finally:
        stack.redis.popen.send_signal(signal.SIGCONT)
    assert status == 302
    assert frozen_seconds < 2, f"the password step took {frozen_seconds:.1f}s with Redis frozen"
    (mail,) = sink.wait_for(people[5].email, SWEEP_SECONDS * 3 + 30)
    code = CODE.search(mail.text).group(1)
    codes.append(code)
    assert _otp_code_step(browser, code) == 302
    counts[f"request with Redis frozen answered in {frozen_seconds:.2f}s"] += 1

    # 4. SMTP answering 421 for two minutes, then 250: the email arrives once, and its code
    # still logs the user in.
    sink.mode = "421"
    outage_started = time.monotonic()
    browser = Browser(stack.nginx_port, pki.ca_path)
    assert _otp_password_step(browser, people[3].login_id)[0] == 302
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_started)))
    refused = sink.refused
    sink.mode = "accept"
    (mail,) = sink.wait_for(people[3].email, RETRY_BASE_SECONDS * 8 + SWEEP_SECONDS * 2)
    code = CODE.search(mail.text).group(1)
    codes.append(code)
    assert _otp_code_step(browser, code) == 302
    (row,) = _rows_for(people[3])
    assert refused >= 2 and row.attempts >= 3
    counts[f"SMTP 421 for {OUTAGE_SECONDS}s: refused {refused} times, sent once"] += 1

    # 5. The worker SIGKILLed while the SMTP server holds DATA: one email, within a minute
    # of the restart, with the code that logs the user in.
    sink.mode = "hold"
    browser = Browser(stack.nginx_port, pki.ca_path)
    assert _otp_password_step(browser, people[4].login_id)[0] == 302
    assert sink.holding.wait(30), "the worker never reached DATA"
    stack.worker.kill()
    sink.mode = "accept"
    sink.release.set()
    restarted = time.monotonic()
    stack.worker.start()
    (mail,) = sink.wait_for(people[4].email, 60)
    within = mail.at - restarted
    assert within < 60
    time.sleep(SWEEP_SECONDS + 2)  # a later sweep sends no second copy
    assert len(sink.to(people[4].email)) == 1
    code = CODE.search(mail.text).group(1)
    codes.append(code)
    assert _otp_code_step(browser, code) == 302
    counts[f"worker killed holding DATA: sent once, {within:.1f}s after restart"] += 1

    # 6. A bulk apply of 500 rows through an SMTP blip: each notice and each activation once.
    maker = factories.DAFactory(participant=firm, login_id="B10000DA1")
    checker = factories.DAFactory(participant=firm, login_id="B10000DA2", da_duty=DaDuty.CHECKER)
    for person in (maker, checker):
        factories.TOTPDeviceFactory(user=person)
    newcomers = User.objects.bulk_create(
        User(participant=firm, login_id=f"B10000N{n:03d}", password="!", email="")
        for n in range(BULK_ROWS)
    )
    content = "".join(f"{u.login_id},{u.login_id.lower()}@bulk.example\n" for u in newcomers)
    batch = bulk.bulk_check(
        batch_id=bulk.bulk_upload(acting_user=maker, filename="500.csv", raw=content.encode()).pk
    )
    change = bulk.bulk_submit(batch=batch, acting_user=maker)
    before = len(sink.received)
    # Approved in this process, whose tasks run in-process: the rows are left to the
    # worker, woken by the beat's sweep as if this process's wake-up had been lost.
    from outbox import services as outbox_services

    wake = outbox_services._wake
    outbox_services._wake = lambda: None
    try:
        outcome = request_approve(change=change, acting_user=checker)
    finally:
        outbox_services._wake = wake
    assert outcome.applied
    expected = BULK_ROWS * 2  # a notice and an activation email for each new address
    deadline = time.monotonic() + SWEEP_SECONDS * 2 + 60
    while len(sink.received) - before < 50 and time.monotonic() < deadline:
        time.sleep(0.05)
    sink.mode = "421"  # the blip: three seconds of refusals in the middle of the batch
    time.sleep(3)
    sink.mode = "accept"
    deadline = time.monotonic() + RETRY_BASE_SECONDS * 4 + SWEEP_SECONDS * 3 + 60
    while len(sink.received) - before < expected and time.monotonic() < deadline:
        time.sleep(0.2)
    bulk_mail = sink.received[before:]
    per_address = Counter(message.to for message in bulk_mail)
    assert len(bulk_mail) == expected, (len(bulk_mail), stack.worker.output())
    assert set(per_address.values()) == {2} and len(per_address) == BULK_ROWS
    assert len({message.message_id for message in bulk_mail}) == expected
    assert (
        not OutboxEmail.objects.exclude(status=EmailStatus.SENT)
        .filter(kind__in=["email-changed", "activation"])
        .exists()
    )
    counts[f"bulk of {BULK_ROWS}: {expected} emails through a blip, each once"] += 1

    # The activation link works through nginx: the page posts the token from the fragment.
    link = next(m for m in bulk_mail if "/activate/#" in m.text)
    token = TOKEN.search(link.text).group(1)
    browser = Browser(stack.nginx_port, pki.ca_path)
    page = browser.request(reverse("authn:activate"))
    assert page.status == 200 and 'id="activation-token"' in page.body
    shown = browser.request(
        reverse("authn:activate"),
        form={"csrfmiddlewaretoken": csrf_field(page.body), "token": token},
        headers={"Origin": browser.origin, "Referer": browser.origin + "/activate/"},
    )
    assert shown.status == 200 and "Begin setup" in shown.body, shown.body[:2000]

    # 7. A forged card header from loopback, past nginx: refused and audited.
    forged = urllib.request.Request(
        f"http://127.0.0.1:{stack.web_port}{path}",
        headers={
            "Host": "127.0.0.1",
            "X-Forwarded-Proto": "https",
            "X-SSL-Client-Cert": pki.card.escaped_pem,
            "X-SSL-Client-Verify": "SUCCESS",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as refused_card:
        urllib.request.urlopen(forged, timeout=10)
    assert refused_card.value.code == 403
    assert AuditEvent.objects.filter(action="login", reason="card_untrusted").count() == 1
    counts["forged card header from loopback refused"] += 1

    # 8. No secret in any log: codes, activation tokens, passwords.
    logs = stack.logs()
    access = (stack.folder / "nginx" / "access.log").read_text()
    assert '"POST /login/ccass/otp/online/ HTTP/1.1" 302' in access  # nginx's log was written
    tokens = [TOKEN.search(m.text).group(1) for m in sink.received if TOKEN.search(m.text)]
    for secret in [*codes, *tokens, USER_PASSWORD, CARD_PASSWORD]:
        assert secret not in logs, "a secret reached a log"
    assert '"logger": "portal.audit"' in logs  # authentication events, as JSON lines
    counts[f"logs searched for {len(codes)} codes and {len(tokens)} tokens: none found"] += 1

    with capsys.disabled():
        print("\nproduction stack:")
        for line, number in counts.items():
            print(f"  {line}" + (f" x{number}" if number > 1 else ""))
        print(f"  emails received by the SMTP sink: {len(sink.received)}")
    assert django_settings.PROXY_SECRET == PROXY_SECRET
