"""The login's reads written in SQL give what the ORM would, through the same index."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection, transaction
from django.forms.models import model_to_dict
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from authn import selectors
from authn.models import BackupCodeDevice, EmailOTPDevice, LoginThrottle
from participants.models import User
from tests import factories

pytestmark = pytest.mark.django_db


def _fields(instance) -> dict:
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def test_the_account_is_the_orms_user_with_its_firm_and_channel(user, django_assert_num_queries):
    User.objects.filter(pk=user.pk).update(last_login=timezone.now())
    expected = User.objects.select_related("participant").get(pk=user.pk)
    app = TOTPDevice.objects.get(user=user)
    factories.EmailOTPDeviceFactory(user=user)
    with transaction.atomic(), django_assert_num_queries(1):
        found = selectors.account_for_login(normalized_login_id=user.login_id.lower())
        assert found is not None
        assert _fields(found) == _fields(expected)
        assert isinstance(found.last_login, dt.datetime)  # converted on SQLite as well
        assert model_to_dict(found.participant) == model_to_dict(expected.participant)
    assert found.app_device_id == app.pk
    assert found.email_device_id == EmailOTPDevice.objects.get(user=user).pk


def test_an_unconfirmed_device_is_no_channel(firm, parallel_run):
    person = factories.UserFactory(participant=firm, login_id="B10000U07")
    factories.TOTPDeviceFactory(user=person, confirmed=False)
    email = factories.EmailOTPDeviceFactory(user=person)
    with transaction.atomic():
        found = selectors.account_for_login(normalized_login_id="b10000u07")
    assert found is not None
    assert (found.app_device_id, found.email_device_id) == (None, email.pk)


def test_a_login_id_that_names_nobody_finds_nobody(user):
    with transaction.atomic():
        assert selectors.account_for_login(normalized_login_id="b10000u99") is None


def test_the_account_is_found_through_the_case_insensitive_index(user):
    sql = selectors._account_sql(connection.alias)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET enable_seqscan = off")
            cursor.execute("EXPLAIN " + sql, [True, True, "b10000u01"])
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, [True, True, "b10000u01"])
        plan = " ".join(str(row) for row in cursor.fetchall())
    assert "user_login_id_ci_unique" in plan, plan


def test_the_throttle_row_is_read_whole(user):
    now = timezone.now()
    LoginThrottle.objects.create(key="b10000u01", failures=3, last_failure_at=now)
    with transaction.atomic():
        throttle = selectors.throttle_for_update(key="b10000u01")
        assert selectors.throttle_for_update(key="b10000u02") is None
    assert throttle is not None
    assert (throttle.failures, throttle.last_failure_at, throttle.locked_until) == (3, now, None)


def test_the_device_comes_with_its_user_and_firm_in_one_query(user, django_assert_num_queries):
    device = TOTPDevice.objects.get(user=user)
    with transaction.atomic(), django_assert_num_queries(1):
        found = selectors.device_for_code(model=TOTPDevice, user_id=user.pk, device_id=device.pk)
        assert found is not None
        assert _fields(found) == _fields(device)
        assert found.user.login_id == user.login_id
        assert found.user.participant.participant_id == user.participant.participant_id


def test_another_users_device_is_not_found(user, email_user):
    device = TOTPDevice.objects.get(user=user)
    with transaction.atomic():
        assert (
            selectors.device_for_code(model=TOTPDevice, user_id=email_user.pk, device_id=device.pk)
            is None
        )
        assert (
            selectors.device_for_code(model=EmailOTPDevice, user_id=user.pk, device_id=device.pk)
            is None
        )


def test_backup_codes_are_found_by_their_user(user):
    backup = factories.BackupCodeDeviceFactory(user=user)
    with transaction.atomic():
        found = selectors.device_for_code(model=BackupCodeDevice, user_id=user.pk, device_id=None)
    assert found is not None and found.pk == backup.pk
