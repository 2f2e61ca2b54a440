"""Fixtures for driving the portal in the machine's Chromium through Playwright.

The browser is Debian's Chromium (``apt-get install chromium``), never one that
``playwright install`` downloads. The portal runs in pytest-django's live server, a
thread of this process, so settings, the locmem ``mail.outbox`` and (for in-memory
SQLite) the database connection are shared with the test body.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
# Bounded waits: every locator action, expect() and navigation gives up well within a minute.
ACTION_TIMEOUT_MS = 10_000
NAVIGATION_TIMEOUT_MS = 15_000
LAUNCH_TIMEOUT_MS = 30_000


@pytest.fixture(scope="session")
def live_server(django_db_setup, live_server):
    """pytest-django's live server, started only after the test database is set up.

    pytest-django's own fixture may start before the test database exists (it does
    not depend on it); it then cannot tell that the test database is in-memory SQLite
    and does not share the test's connection with its thread, as Django's
    LiveServerTestCase does.
    """
    return live_server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("chromium not installed (apt-get install chromium)")
    from django.db import connections
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio event loop running in the main thread
    # (it switches greenlets inside it). Two things in Django react to that loop:
    #
    # 1. The async-safety check raises SynchronousOnlyOperation for every ORM call
    #    the test body or a database fixture makes. Nothing here is really async (the
    #    browser is another process, the portal runs in the live server's thread),
    #    so the check is a false alarm; DJANGO_ALLOW_ASYNC_UNSAFE turns it off, only
    #    while the Playwright driver runs. The rest of the suite keeps the check.
    # 2. Database connections become context-local instead of thread-local, so the
    #    test would get fresh connection objects, not the ones pytest-django set up:
    #    those carry the serialized initial data (the terminals and programmes the
    #    data migrations create) that a transactional test restores, and, for
    #    in-memory SQLite, are the ones shared with the live server's thread. So the
    #    same objects are put back in place.
    set_up = {alias: connections[alias] for alias in connections}
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            for alias, connection in set_up.items():
                connections[alias] = connection
            chromium = playwright.chromium.launch(
                executable_path=executable,
                headless=True,
                args=CHROMIUM_ARGS,
                timeout=LAUNCH_TIMEOUT_MS,
            )
            try:
                yield chromium
            finally:
                chromium.close()
                for alias in set_up:
                    del connections[alias]
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """Keep each phase's report on the item, so `page` can tell whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Page]:
    """A fresh browser context (no cookies) and page; a screenshot is kept if the test fails."""
    context = browser.new_context(
        locale="en-GB",
        timezone_id="Asia/Hong_Kong",
        viewport={"width": 1280, "height": 900},
    )
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
    tab = context.new_page()
    try:
        yield tab
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            shot = tmp_path / "failure.png"
            try:
                tab.screenshot(path=shot, full_page=True)
                print(f"Screenshot of the page at the failure: {shot} (URL {tab.url})")
            except Exception as error:  # the page may be gone; the failure matters more
                print(f"No screenshot at the failure: {error}")
        context.close()


@pytest.fixture
def portal(live_server, settings, transactional_db, django_db_serialized_rollback):
    """The live portal, with links in emails pointing at it.

    The live server needs committed data, hence a transactional database; its flush
    after each test would also delete the terminals and programmes that data
    migrations created, so the serialized rollback puts them back for the next test.
    """
    settings.SITE_URL = live_server.url
    # The live server speaks plain HTTP: secure-only cookies would never come back.
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.SECURE_SSL_REDIRECT = False
    return live_server
