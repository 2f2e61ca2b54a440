"""Marker policy for tests that need a service: skip where it is absent, fail in CI.

A test marked ``postgres`` or ``worker`` is skipped, with the reason saying what to
set, when its service is not configured. In CI (``CI=true``) every test marked
``postgres``, ``worker``, ``browser`` or ``nginx`` must run: any skip of such a
test, whatever raised it (a missing service, a ``skip``/``skipif`` marker,
``pytest.skip`` in a fixture or in the test), is reported as a failure with the
skip's reason, so that a misconfigured CI is red rather than quietly green.
An expected failure (``xfail``) stays what it is.

tests/conftest.py imports the two hooks below; pytest registers them from there.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

SERVICE_MARKERS = ("postgres", "worker", "browser", "nginx")

POSTGRES_REASON = "needs PostgreSQL: set DATABASE_URL=postgres://..."
WORKER_REASON = "needs Redis and a live Celery worker: set REDIS_URL and DATABASE_URL"


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def database_is_postgres() -> bool:
    from django.db import connections

    return connections["default"].vendor == "postgresql"


def broker_configured() -> bool:
    # A worker in another process cannot see an SQLite in-memory test database,
    # so a live worker needs PostgreSQL as well as Redis.
    return bool(os.environ.get("REDIS_URL")) and database_is_postgres()


def missing_service(item: pytest.Item) -> str | None:
    """Return why the item cannot run here, or None when its services are configured."""
    if item.get_closest_marker("postgres") is not None and not database_is_postgres():
        return POSTGRES_REASON
    if item.get_closest_marker("worker") is not None and not broker_configured():
        return WORKER_REASON
    return None


def _service_markers(item: pytest.Item) -> list[str]:
    return [name for name in SERVICE_MARKERS if item.get_closest_marker(name) is not None]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark for skipping each test whose service is not configured (in CI: see below)."""
    for item in items:
        reason = missing_service(item)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if not (report.skipped and in_ci()) or hasattr(report, "wasxfail"):
        return report
    markers = _service_markers(item)
    if not markers:
        return report
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    report.outcome = "failed"
    report.longrepr = (
        f"CI=true: a test marked {'/'.join(markers)} must run, but it was skipped "
        f"during {report.when}: {reason}"
    )
    return report
