"""Health endpoints for the load balancer and the process manager.

/healthz (liveness) answers as long as the process serves requests; it touches nothing else,
so a database outage does not get every web process restarted. /readyz (readiness) runs
READINESS_CHECKS and answers 503 when one fails, so the load balancer stops sending traffic
to a process that cannot serve it. Neither needs a login; both are exempt from the HTTPS
redirect (SECURE_REDIRECT_EXEMPT) but not from ALLOWED_HOSTS: the probe sends a valid Host.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from outbox.selectors import oldest_pending_age

logger = logging.getLogger("portal.health")

OK = "ok"
SKIPPED = "skipped"
FAIL = "fail"

# A check returns OK or SKIPPED, and raises when what it checks is not usable.
Check = Callable[[], str]


def check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return OK


def check_redis() -> str:
    if not settings.REDIS_URL:
        return SKIPPED
    # One second at most: a probe that hangs is as bad as a failed one.
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()
    return OK


# Run in this order by /readyz; append a (name, check) pair to add one.
READINESS_CHECKS: list[tuple[str, Check]] = [
    ("database", check_database),
    ("redis", check_redis),
]


@require_safe
@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """Answer 200 while the process serves requests."""
    return HttpResponse("ok", content_type="text/plain")


@require_safe
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Run every readiness check; answer 200 when all pass, 503 otherwise."""
    checks: dict[str, str] = {}
    for name, check in READINESS_CHECKS:
        try:
            checks[name] = check()
        except Exception as error:
            # The reason goes to the log, not to the unauthenticated caller: an error
            # message may name hosts, users or paths.
            logger.warning(
                "readiness check failed",
                extra={"event": {"check": name, "error": f"{type(error).__name__}: {error}"}},
            )
            checks[name] = FAIL
    ready = FAIL not in checks.values()
    return JsonResponse(
        {
            "status": OK if ready else FAIL,
            "checks": checks,
            "outbox_oldest_due_seconds": _outbox_oldest_due_seconds()
            if checks.get("database") == OK
            else None,
        },
        status=200 if ready else 503,
    )


def _outbox_oldest_due_seconds() -> int | None:
    """How long the oldest email due for sending has waited, for monitoring to alert on.

    Reported, not a check: a backlog of mail (SMTP or the workers down) does not stop this
    process from serving pages, and taking every web process out of the load balancer for
    it would turn late email into no portal at all.
    """
    age = oldest_pending_age()
    return None if age is None else int(age.total_seconds())
