"""Guarantees that only PostgreSQL gives: the audit trigger and row locks under concurrency."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import AuditAction, AuditEvent, Outcome
from authn import credentials, otp
from authn.models import BackupCodeDevice, EmailOTPDevice
from tests import factories

pytestmark = pytest.mark.postgres


# The audit trail is append-only in the database itself ---------------------------------


def _raw_sql(sql: str, params: list[Any] | None = None) -> None:
    """Run SQL past the ORM (and its AppendOnlyError), in a savepoint the test survives."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)


@pytest.mark.django_db
def test_audit_rows_cannot_be_updated_with_raw_sql():
    event = AuditEvent.objects.create(
        action=AuditAction.LOGIN, outcome=Outcome.FAILURE, login_id="B10000U01", reason="bad"
    )
    with pytest.raises(DatabaseError, match="append-only"):
        _raw_sql(
            "UPDATE audit_auditevent SET outcome = %s, reason = '' WHERE id = %s",
            [Outcome.SUCCESS, event.pk],
        )
    assert AuditEvent.objects.values_list("outcome", "reason").get(pk=event.pk) == (
        Outcome.FAILURE,
        "bad",
    )


@pytest.mark.django_db
def test_audit_rows_cannot_be_deleted_with_raw_sql():
    event = AuditEvent.objects.create(
        action=AuditAction.LOGIN, outcome=Outcome.FAILURE, login_id="B10000U01"
    )
    with pytest.raises(DatabaseError, match="append-only"):
        _raw_sql("DELETE FROM audit_auditevent WHERE id = %s", [event.pk])
    with pytest.raises(DatabaseError, match="append-only"):
        _raw_sql("DELETE FROM audit_auditevent")
    assert AuditEvent.objects.filter(pk=event.pk).exists()


# A one-time code is accepted once, even when two requests race with it -------------------

RACERS = 2
# Each racer holds its device row this long before checking the code. Without the
# row lock both would read the still-valid code inside this window and both succeed.
HOLD_SECONDS = 0.3
JOIN_SECONDS = 30


def _slowed(monkeypatch: pytest.MonkeyPatch, device_class: type) -> None:
    original = device_class.verify_token

    def verify_token(self, token):
        time.sleep(HOLD_SECONDS)
        return original(self, token)

    monkeypatch.setattr(device_class, "verify_token", verify_token)


def _race(user, code: str) -> list[bool]:
    """Verify `code` for `user` from RACERS threads at once; return who succeeded."""
    barrier = threading.Barrier(RACERS, timeout=JOIN_SECONDS)
    outcomes: list[bool] = []
    errors: list[BaseException] = []

    def racer() -> None:
        try:
            barrier.wait()
            outcomes.append(otp.otp_verify(user=user, token=code).ok)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=racer, name=f"racer-{n}") for n in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_SECONDS)
    assert not any(thread.is_alive() for thread in threads), "a racer is still waiting"
    assert not errors, errors
    return outcomes


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_email_code_is_accepted_once_under_concurrency(email_user, monkeypatch):
    device = EmailOTPDevice.objects.get(user=email_user)
    code = device.issue_token()
    _slowed(monkeypatch, EmailOTPDevice)

    outcomes = _race(email_user, code)

    assert sorted(outcomes) == [False, True]
    device.refresh_from_db()
    assert device.token_hash == "" and device.valid_until is None


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_backup_code_is_accepted_once_under_concurrency(user, monkeypatch):
    backup = factories.BackupCodeDeviceFactory(user=user)
    code, *_others = backup.generate_codes(10)
    _slowed(monkeypatch, BackupCodeDevice)

    outcomes = _race(user, code)

    assert sorted(outcomes) == [False, True]
    assert backup.codes.count() == 9


# Parallel password guesses at one account wait their turn -------------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_parallel_wrong_passwords_are_each_counted_by_the_throttle(user, settings, rf):
    """An account that never failed has no throttle row to lock; the user row lock must
    still make parallel guesses queue, or all of them would be checked at once."""
    guesses = 12
    barrier = threading.Barrier(guesses, timeout=JOIN_SECONDS)
    refusals: list[str] = []
    errors: list[BaseException] = []

    def guess(n: int) -> None:
        try:
            barrier.wait()
            request = rf.post("/login/ccass/otp/online/")
            result = credentials.password_check(
                request=request,
                login_id=user.login_id,
                password=f"wrong-guess-{n:04d}",
                scopes=["online"],
                terminal=user.participant.terminal,
                method="password",
            )
            refusals.append(result.refusal or "")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=guess, args=(n,)) for n in range(guesses)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_SECONDS)
    assert not errors, errors
    checked = refusals.count(credentials.Refusal.BAD_CREDENTIALS)
    assert checked == settings.LOGIN_FREE_FAILURES
    assert refusals.count(credentials.Refusal.LOCKED) == guesses - checked


# A kept connection is checked without a round trip -----------------------------------


@pytest.mark.django_db
def test_a_healthy_kept_connection_is_reused_without_asking_the_server(monkeypatch):
    from django.db.backends.postgresql import base

    connection.ensure_connection()
    asked = []
    monkeypatch.setattr(base.DatabaseWrapper, "is_usable", lambda self: asked.append(1) or True)
    assert connection.is_usable() is True
    assert asked == []


@pytest.mark.django_db
def test_a_connection_the_server_ended_is_replaced_before_the_next_query():
    from django.db import connections

    kept = connections.create_connection("default")
    kept.settings_dict["CONN_HEALTH_CHECKS"] = True
    try:
        kept.ensure_connection()
        pid = kept.connection.info.backend_pid
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        deadline = time.monotonic() + 5
        while kept.is_usable() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert kept.is_usable() is False
        # What Django does at a request's first query: check, reconnect, and go on.
        kept.health_check_done = False
        with kept.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            assert cursor.fetchone()[0] != pid
    finally:
        kept.close()


# Milestones are carried out once, however many runners race -------------------------


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_racing_runners_carry_out_each_milestone_and_send_each_activation_once():
    import datetime as dt

    from django.utils import timezone

    from migration import services
    from migration.models import Milestone, MilestoneKind, Phase, Programme
    from outbox.models import OutboxEmail

    firm = factories.ParticipantFactory(participant_id="B40000")
    for n in range(30):
        factories.UserFactory(participant=firm, login_id=f"B40000U{n:02d}")
    past = timezone.now() - dt.timedelta(hours=1)
    Milestone.objects.filter(programme__terminal__code="CCASS").update(
        planned_at=past, approved_at=past
    )
    runners = 6
    barrier = threading.Barrier(runners, timeout=JOIN_SECONDS)
    done: list[str] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            done.extend(m.kind for m in services.milestones_carry_out())
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(runners)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_SECONDS)
    assert not errors, errors
    assert sorted(done) == sorted(kind.value for kind in MilestoneKind)
    assert Programme.objects.get(terminal__code="CCASS").phase == Phase.DECOMMISSIONED
    assert OutboxEmail.objects.filter(kind="activation").count() == 30
    assert AuditEvent.objects.filter(action=AuditAction.MILESTONE_CARRIED_OUT).count() == len(
        MilestoneKind
    )
