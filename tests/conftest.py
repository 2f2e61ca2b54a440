"""Fixtures named like the people of the portal."""

from __future__ import annotations

import os

import pytest

from ccass.celery import app as celery_app
from migration import phases
from migration.models import Phase
from tests import factories
from tests.helpers import PROXY_SECRET, TOTP

# Marker policy (postgres, worker, browser, nginx): skip when a service is absent,
# fail instead in CI. pytest registers the hooks found in this module, imported ones too.
from tests.markers import pytest_collection_modifyitems, pytest_runtest_makereport  # noqa: F401

IN_CI = os.environ.get("CI") == "true"


@pytest.fixture(autouse=True)
def _portal_settings(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.EMAIL_OUTBOX_DIR = tmp_path / "outbox"
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.PROXY_SECRET = PROXY_SECRET
    settings.SITE_URL = "http://testserver"
    # Query counts the same whatever the clock: the per-process phase copy expires after
    # PHASE_CACHE_SECONDS, in the middle of a slow test. tests/migration/test_phase_cache.py
    # turns it on.
    settings.PHASE_CACHE_SECONDS = 0
    settings.STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _fresh_phase_cache():
    """Each test starts from its own database's phases: a rolled-back test's change of
    phase sends no signal, so a terminal cached in it must not outlive it."""
    phases.entry_terminals_forget()
    yield
    phases.entry_terminals_forget()


@pytest.fixture(autouse=True)
def _tasks_in_process():
    """Run tasks in-process unless a test asks for the live worker."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


@pytest.fixture
def parallel_run(db):
    return factories.set_phase("CCASS", Phase.PARALLEL_RUN)


@pytest.fixture
def firm(db):
    return factories.ParticipantFactory(name="Golden Harbour Securities Limited")


@pytest.fixture
def other_firm(db):
    return factories.ParticipantFactory(name="Lantau Peak Brokers Limited")


@pytest.fixture
def user(parallel_run, firm):
    """A user of `firm` with an authenticator app set up."""
    person = factories.UserFactory(participant=firm, login_id="B10000U01")
    factories.TOTPDeviceFactory(user=person)
    return person


@pytest.fixture
def email_user(parallel_run, firm):
    """A user of `firm` whose OTP channel is email."""
    person = factories.UserFactory(participant=firm, login_id="B10000U02")
    factories.EmailOTPDeviceFactory(user=person)
    return person


@pytest.fixture
def maker_da(parallel_run, firm):
    person = factories.DAFactory(participant=firm, login_id="B10000DA1")
    factories.TOTPDeviceFactory(user=person)
    return person


@pytest.fixture
def checker_da(parallel_run, firm):
    from participants.models import DaDuty

    person = factories.DAFactory(participant=firm, login_id="B10000DA2", da_duty=DaDuty.CHECKER)
    factories.TOTPDeviceFactory(user=person)
    return person


@pytest.fixture
def newcomer(parallel_run, firm):
    """A user of `firm` with a registered email who has not set up 2FA yet."""
    person = factories.UserFactory(participant=firm, login_id="B10000U09")
    person.set_unusable_password()
    person.save()
    return person


@pytest.fixture
def other_firm_user(parallel_run, other_firm):
    person = factories.UserFactory(participant=other_firm, login_id="B20000U01")
    factories.TOTPDeviceFactory(user=person)
    return person


@pytest.fixture
def other_firm_da(parallel_run, other_firm):
    person = factories.DAFactory(participant=other_firm, login_id="B20000DA1")
    factories.TOTPDeviceFactory(user=person)
    return person


@pytest.fixture
def staff(db):
    person = factories.StaffFactory(login_id="hkex.staff")
    factories.TOTPDeviceFactory(user=person)
    return person


@pytest.fixture
def totp():
    return TOTP()
