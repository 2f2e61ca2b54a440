"""Each login step costs a fixed, small number of queries."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.helpers import TOTP, otp_step, password_step

pytestmark = pytest.mark.django_db

MAX_QUERIES_PER_STEP = 12


def _statements(captured: CaptureQueriesContext) -> int:
    """Count every round trip. The test runs inside a transaction, so each atomic block
    shows as SAVEPOINT/RELEASE where production sends BEGIN/COMMIT: both are counted."""
    return len(captured.captured_queries)


def test_otp_login_steps_stay_within_the_query_budget(client, user):
    with CaptureQueriesContext(connection) as password_queries:
        assert password_step(client, user.login_id).status_code == 302
    code = TOTP().code(TOTPDevice.objects.get(user=user))
    with CaptureQueriesContext(connection) as otp_queries:
        assert otp_step(client, code).status_code == 302
    assert _statements(password_queries) <= MAX_QUERIES_PER_STEP
    assert _statements(otp_queries) <= MAX_QUERIES_PER_STEP
