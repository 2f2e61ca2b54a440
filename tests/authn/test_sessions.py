"""Idle and absolute session limits."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from audit.models import AuditEvent
from tests.helpers import log_in_with_app

pytestmark = pytest.mark.django_db


def test_idle_session_ends_after_the_idle_timeout(client, user, settings):
    log_in_with_app(client, user)
    with time_machine.travel(dt.timedelta(seconds=settings.SESSION_IDLE_TIMEOUT + 1)):
        response = client.get(reverse("authn:online-home"))
    assert response.status_code == 302
    # Back to the login for the session's scope, and then to the page it was on.
    assert response["Location"] == "/login/ccass/otp/online/?next=%2Fonline%2F"
    assert client.get(reverse("authn:online-home")).status_code == 302
    assert AuditEvent.objects.filter(user=user, action="session_expired").exists()


def test_activity_keeps_the_session_alive(client, user, settings):
    log_in_with_app(client, user)
    step = dt.timedelta(seconds=settings.SESSION_IDLE_TIMEOUT - 60)
    with time_machine.travel(step):
        assert client.get(reverse("authn:online-home")).status_code == 200
    with time_machine.travel(2 * step):
        assert client.get(reverse("authn:online-home")).status_code == 200


def test_absolute_timeout_ends_even_an_active_session(client, user, settings):
    settings.SESSION_ABSOLUTE_TIMEOUT = 3 * 60
    settings.SESSION_IDLE_TIMEOUT = 2 * 60
    log_in_with_app(client, user)
    with time_machine.travel(dt.timedelta(seconds=100)):
        assert client.get(reverse("authn:online-home")).status_code == 200
    with time_machine.travel(dt.timedelta(seconds=190)):
        assert client.get(reverse("authn:online-home")).status_code == 302


def test_timeouts_are_configurable(client, user, settings):
    settings.SESSION_IDLE_TIMEOUT = 30
    log_in_with_app(client, user)
    with time_machine.travel(dt.timedelta(seconds=31)):
        assert client.get(reverse("authn:online-home")).status_code == 302
