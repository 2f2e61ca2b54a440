"""The login pages' terminal and phase come from a per-process copy that a change clears."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from migration import phases
from migration.models import Phase, Programme
from tests import factories
from tests.helpers import otp_login_url

pytestmark = pytest.mark.django_db

LOGIN = otp_login_url("online")


def test_a_second_login_form_reads_no_terminal(client, settings):
    settings.PHASE_CACHE_SECONDS = 60
    factories.set_phase("CCASS", Phase.PARALLEL_RUN)
    assert client.get(LOGIN).status_code == 200
    with CaptureQueriesContext(connection) as captured:
        assert client.get(LOGIN).status_code == 200
    read = [q["sql"] for q in captured.captured_queries if "participants_terminal" in q["sql"]]
    assert read == []


def test_a_phase_saved_in_this_process_takes_effect_at_once(client, settings):
    settings.PHASE_CACHE_SECONDS = 60
    factories.set_phase("CCASS", Phase.PARALLEL_RUN)
    assert client.get(LOGIN).status_code == 200
    factories.set_phase("CCASS", Phase.EMAIL_REGISTRATION)  # Programme.save(), as the admin
    assert client.get(LOGIN).status_code == 403
    factories.set_phase("CCASS", Phase.TWO_FA_ONLY)
    assert client.get(LOGIN).status_code == 200


def test_a_phase_changed_elsewhere_is_seen_once_the_copy_expires(client, settings, monkeypatch):
    settings.PHASE_CACHE_SECONDS = 5
    factories.set_phase("CCASS", Phase.PARALLEL_RUN)
    clock = [1000.0]
    monkeypatch.setattr(phases.time, "monotonic", lambda: clock[0])
    assert client.get(LOGIN).status_code == 200
    # Another process's change: no signal reaches this one.
    Programme.objects.filter(terminal__code="CCASS").update(phase=Phase.EMAIL_REGISTRATION)
    clock[0] += 4
    assert client.get(LOGIN).status_code == 200
    clock[0] += 2
    assert client.get(LOGIN).status_code == 403


def test_with_no_cache_every_page_reads_the_phase(client, settings):
    settings.PHASE_CACHE_SECONDS = 0
    factories.set_phase("CCASS", Phase.PARALLEL_RUN)
    assert client.get(LOGIN).status_code == 200
    Programme.objects.filter(terminal__code="CCASS").update(phase=Phase.EMAIL_REGISTRATION)
    assert client.get(LOGIN).status_code == 403


def test_an_unknown_terminal_is_not_found(client, settings):
    settings.PHASE_CACHE_SECONDS = 60
    assert client.get("/login/nosuch/otp/online/").status_code == 404
    assert phases.entry_terminal("NOSUCH") is None
