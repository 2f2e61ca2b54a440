"""What operations rely on: health endpoints, security headers, caching, logs, deployment files."""

from __future__ import annotations

import json
import logging
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import AnonymousUser
from django.core.management import CommandError, call_command
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse

from audit.models import AuditAction, Outcome
from audit.services import audit_record
from authn.middleware import NoStoreMiddleware
from ccass import health
from ccass.celery import app as celery_app
from common.logging import JsonLinesFormatter, TextFormatter
from participants.models import User
from tests import factories
from tests.helpers import log_in_with_app

BASE_DIR = Path(django_settings.BASE_DIR)


# Health ------------------------------------------------------------------------------------


def test_healthz_answers_without_the_database(client):
    # No `db` fixture: any query would raise.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"ok"
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405


@pytest.mark.django_db
def test_readyz_lists_its_checks_and_passes(client, settings):
    settings.REDIS_URL = ""
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "skipped"},
        "outbox_oldest_due_seconds": None,
    }
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_is_503_when_a_check_fails_and_does_not_say_why(client, settings, monkeypatch):
    settings.REDIS_URL = ""

    def database_down() -> str:
        raise ConnectionError("could not connect to db.internal:5432 as portal_owner")

    checks = [("database", database_down), *health.READINESS_CHECKS[1:]]
    monkeypatch.setattr(health, "READINESS_CHECKS", checks)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "fail",
        "checks": {"database": "fail", "redis": "skipped"},
        "outbox_oldest_due_seconds": None,
    }
    assert b"db.internal" not in response.content


@pytest.mark.django_db
def test_readyz_fails_when_redis_does_not_answer(client, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "redis": "fail"}


@pytest.mark.django_db
def test_health_endpoints_are_not_redirected_to_https(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.REDIS_URL = ""
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get(reverse("authn:landing")).status_code == 301


def test_health_endpoints_still_check_the_host(client):
    assert client.get("/healthz", headers={"host": "attacker.example"}).status_code == 400


# Content security policy -------------------------------------------------------------------


@pytest.mark.django_db
def test_pages_carry_a_content_security_policy_without_inline_code(client):
    policy = client.get(reverse("authn:landing"))["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "'unsafe-inline'" not in policy
    assert "'unsafe-eval'" not in policy


# A tag with an attribute named style or on<event>, a javascript: URL, a <style> element,
# and a <script> element that has no src or has a body.
_INLINE = {
    "style attribute": re.compile(r"<[a-zA-Z][^>]*\sstyle\s*=", re.IGNORECASE),
    "event handler": re.compile(r"<[a-zA-Z][^>]*\son[a-z]+\s*=", re.IGNORECASE),
    "javascript: URL": re.compile(r"javascript:", re.IGNORECASE),
    "style element": re.compile(r"<style[\s>]", re.IGNORECASE),
    "inline script": re.compile(
        r"<script(?![^>]*\ssrc\s*=)[^>]*>|<script[^>]*>\s*[^<\s][^<]*</script>", re.IGNORECASE
    ),
}


def test_no_page_template_has_inline_script_or_style():
    """The CSP would block them: behaviour goes in static/js, looks in static/css."""
    pages = [
        path
        for path in (BASE_DIR / "templates").rglob("*.html")
        if "emails" not in path.relative_to(BASE_DIR / "templates").parts
    ]
    assert len(pages) > 20
    found = [
        f"{path.relative_to(BASE_DIR)}: {kind}: {match.group(0)[:80]}"
        for path in pages
        for kind, pattern in _INLINE.items()
        for match in pattern.finditer(path.read_text())
    ]
    assert found == []


def test_the_inline_checks_catch_what_they_look_for():
    caught = {
        '<button onclick="window.print()">': "event handler",
        '<p class="x" style="color:red">': "style attribute",
        "<script>alert(1)</script>": "inline script",
        '<script src="/static/js/a.js" defer></script>': None,
    }
    for text, kind in caught.items():
        assert [k for k, pattern in _INLINE.items() if pattern.search(text)] == (
            [kind] if kind else []
        ), text


# Cache-Control -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_logged_in_page_is_not_stored(client, user):
    log_in_with_app(client, user)
    response = client.get(reverse("authn:online-home"))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url",
    [
        reverse("authn:otp-login", kwargs={"terminal": "ccass", "scope": "online"}),
        reverse("authn:staff-login"),
        "/activate/",
    ],
)
def test_login_and_activation_pages_are_not_stored(client, parallel_run, url):
    assert "no-store" in client.get(url)["Cache-Control"]


@pytest.mark.django_db
def test_a_report_download_is_not_stored(client, user):
    report = factories.ReportFileFactory(participant=user.participant)
    log_in_with_app(client, user, scope="reports")
    response = client.get(reverse("authn:report-download", args=[report.pk]))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_the_public_landing_page_stays_cacheable(client, parallel_run):
    response = client.get(reverse("authn:landing"))
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")


def test_any_download_is_not_stored_even_without_a_login():
    def download(request):
        response = HttpResponse(b"a,b\n", content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="x.csv"'
        return response

    request = RequestFactory().get("/anything.csv")
    request.user = AnonymousUser()
    assert NoStoreMiddleware(download)(request)["Cache-Control"] == "no-store"


def test_a_views_own_cache_control_is_kept():
    def cached(request):
        response = HttpResponse("x")
        response["Cache-Control"] = "private, max-age=60"
        return response

    request = RequestFactory().get("/login/ccass/otp/online/")
    request.user = AnonymousUser()
    assert NoStoreMiddleware(cached)(request)["Cache-Control"] == "private, max-age=60"


# Logs --------------------------------------------------------------------------------------


def _record(message: str, *, event: dict | None = None, level: int = logging.INFO):
    record = logging.LogRecord("portal.test", level, __file__, 1, message, (), None)
    if event is not None:
        record.event = event
    return record


def test_json_formatter_writes_one_parseable_line_with_the_event_fields():
    line = JsonLinesFormatter().format(
        _record(
            "login\nforged line",
            event={"login_id": "B10000U01", "outcome": "success", "level": "DEBUG"},
        )
    )
    assert "\n" not in line
    entry = json.loads(line)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
    assert entry["level"] == "INFO"  # an event field cannot pose as the level
    assert entry["event_level"] == "DEBUG"
    assert entry["logger"] == "portal.test"
    assert entry["message"] == "login\nforged line"
    assert entry["login_id"] == "B10000U01"
    assert entry["outcome"] == "success"


def test_log_formatters_blank_an_activation_token():
    record = _record("Not Found: /activate/s3cr3t-t0ken/")
    assert "s3cr3t" not in JsonLinesFormatter().format(record)
    assert "s3cr3t" not in TextFormatter().format(record)
    assert "/activate/[redacted]/" in TextFormatter().format(record)


def test_text_formatter_appends_the_event_fields():
    line = TextFormatter().format(_record("task started", event={"task": "t", "args": [1]}))
    assert line.endswith('INFO portal.test task started task="t" args=[1]')


@pytest.mark.django_db
def test_audit_record_logs_the_row_without_its_detail(
    caplog, user, django_capture_on_commit_callbacks
):
    with (
        caplog.at_level(logging.INFO, logger="portal.audit"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        event = audit_record(
            action=AuditAction.REPORT_DOWNLOAD,
            outcome=Outcome.SUCCESS,
            user=user,
            scope="reports",
            detail={"email": "hidden@golden-harbour.example"},
        )
    [record] = [r for r in caplog.records if r.name == "portal.audit"]
    assert record.event == {
        "audit_id": event.pk,
        "action": "report_download",
        "outcome": "success",
        "login_id": user.login_id,
        "user_id": user.pk,
        "actor_id": None,
        "participant": user.participant.participant_id,
        "scope": "reports",
        "method": "",
        "ip": None,
        "reason": "",
    }
    assert "hidden@" not in JsonLinesFormatter().format(record)


@pytest.mark.django_db
def test_a_rolled_back_audit_row_is_not_logged(caplog, user, django_capture_on_commit_callbacks):
    with (
        caplog.at_level(logging.INFO, logger="portal.audit"),
        django_capture_on_commit_callbacks(execute=False) as callbacks,
    ):
        audit_record(action=AuditAction.LOGIN, outcome=Outcome.SUCCESS, user=user)
    # Nothing is logged before the commit; the callback is what would log it.
    assert [r for r in caplog.records if r.name == "portal.audit"] == []
    assert len(callbacks) == 1


@celery_app.task(name="tests.test_operations.echo")
def _echo(number: int) -> int:
    return number


@celery_app.task(name="tests.test_operations.broken")
def _broken(number: int) -> None:
    raise ValueError(f"row {number} is missing")


@celery_app.task(name="tests.test_operations.flaky", bind=True, max_retries=1)
def _flaky(self, number: int) -> None:
    if not self.request.retries:
        raise self.retry(exc=OSError("SMTP server closed the connection"), countdown=0)


def _task_events(caplog) -> list[tuple[str, dict]]:
    return [(r.getMessage(), r.event) for r in caplog.records if r.name == "portal.tasks"]


def test_task_start_and_success_are_logged(caplog):
    with caplog.at_level(logging.INFO, logger="portal.tasks"):
        _echo.delay(7)
    [(started, start), (succeeded, end)] = _task_events(caplog)
    assert (started, succeeded) == ("task started", "task succeeded")
    assert start["task"] == end["task"] == "tests.test_operations.echo"
    assert start["args"] == end["args"] == [7]
    assert start["task_id"] and start["task_id"] == end["task_id"]


def test_task_failure_is_logged_with_the_exception(caplog):
    # throw=False: as in a worker, the failure is handled (and signalled), not re-raised.
    with caplog.at_level(logging.INFO, logger="portal.tasks"):
        assert _broken.apply(args=[3], throw=False).failed()
    failed = dict(_task_events(caplog))["task failed"]
    assert failed["exception"] == "ValueError"
    assert failed["error"] == "row 3 is missing"
    assert failed["args"] == [3]


def test_task_retry_is_logged_with_the_reason(caplog):
    with caplog.at_level(logging.INFO, logger="portal.tasks"):
        _flaky.apply(args=[5], throw=False)
    events = _task_events(caplog)
    assert [message for message, _ in events] == [
        "task started",
        "task retry",
        "task started",
        "task succeeded",
    ]
    retry = events[1][1]
    assert retry["exception"] == "OSError"
    assert "SMTP server closed the connection" in retry["reason"]
    assert retry["args"] == [5]


# The demo seeder ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_seed_demo_refuses_without_debug(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        call_command("seed_demo")
    assert not User.objects.filter(login_id="hkex.ops").exists()


# Production settings and deployment files --------------------------------------------------


def test_production_settings_hash_static_names_and_log_json():
    env = {
        "PATH": os.environ.get("PATH", ""),
        "SECRET_KEY": "x" * 60,
        "DEBUG": "false",
        "ALLOWED_HOSTS": "portal.example",
    }
    script = (
        "from ccass import settings as s; "
        "print(s.STORAGES['staticfiles']['BACKEND']); print(s.LOG_FORMAT)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["django.contrib.staticfiles.storage.ManifestStaticFilesStorage", "json"]


def test_gunicorn_listens_on_loopback_and_keeps_query_strings_and_tokens_out_of_its_log(
    monkeypatch,
):
    monkeypatch.delenv("GUNICORN_BIND", raising=False)
    monkeypatch.setenv("GUNICORN_WORKERS", "3")
    conf = runpy.run_path(str(BASE_DIR / "deploy" / "gunicorn.conf.py"))
    assert conf["bind"] == "127.0.0.1:8000"
    assert conf["workers"] == 3
    assert conf["timeout"] == 30
    assert conf["forwarded_allow_ips"] == "127.0.0.1"
    assert "%(U)s" in conf["access_log_format"]
    for leaky in ("%(r)s", "%(q)s", "%(f)s", "{referer}i"):
        assert leaky not in conf["access_log_format"]

    from gunicorn.config import Config

    logger = conf["logger_class"](Config())
    atoms = logger.atoms(
        SimpleNamespace(status="200 OK", headers=[], sent=10),
        SimpleNamespace(headers=[]),
        {
            "REQUEST_METHOD": "GET",
            "RAW_URI": "/activate/s3cr3t/?a=b",
            "PATH_INFO": "/activate/s3cr3t/",
            "QUERY_STRING": "a=b",
            "SERVER_PROTOCOL": "HTTP/1.1",
        },
        SimpleNamespace(seconds=0, microseconds=1000),
    )
    assert atoms["U"] == "/activate/[redacted]/"


def test_gunicorn_refuses_a_bad_worker_count(monkeypatch):
    monkeypatch.setenv("GUNICORN_WORKERS", "many")
    with pytest.raises(SystemExit, match="GUNICORN_WORKERS"):
        runpy.run_path(str(BASE_DIR / "deploy" / "gunicorn.conf.py"))


def test_readme_lists_every_setting_read_from_the_environment():
    source = (BASE_DIR / "ccass" / "settings.py").read_text()
    source += (BASE_DIR / "common" / "env.py").read_text()
    read = set(re.findall(r'env_[a-z]+\(\s*"([A-Z][A-Z0-9_]*)"', source))
    readme = (BASE_DIR / "README.md").read_text()
    table = readme.split("## Configuration (environment)", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`([A-Z][A-Z0-9_]*)`", table))
    assert read - listed == set()


@pytest.mark.django_db
def test_outbox_show_counts_and_lists_the_failed_emails_without_their_secrets(capsys):
    from django.utils import timezone

    from outbox.models import EmailStatus, OutboxEmail

    now = timezone.now()
    OutboxEmail.objects.create(
        kind="otp-code", to="a@x.example", params={"device_id": 7}, deadline=now
    )
    OutboxEmail.objects.create(
        kind="activation",
        to="b@x.example",
        params={"user_id": 9},
        status=EmailStatus.FAILED,
        attempts=5,
        last_error="550 mailbox unavailable",
        deadline=now,
    )
    call_command("outbox_show")
    out = capsys.readouterr().out
    assert "pending: 1, sent: 0, failed: 1, cancelled: 0" in out
    assert "oldest due: waiting" in out
    assert "activation to b@x.example" in out and "550 mailbox unavailable" in out
    assert "user_id" not in out and "a@x.example" not in out
