"""The audit trail is append-only."""

from __future__ import annotations

import pytest

from audit.models import AppendOnlyError, AuditEvent
from audit.services import audit_record

pytestmark = pytest.mark.django_db


def test_an_audit_row_cannot_be_changed_or_deleted(user):
    event = audit_record(action="login", outcome="success", user=user)
    event.reason = "tampered"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(reason="tampered")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).reason == ""


def test_audit_row_takes_the_firm_from_the_user(user):
    event = audit_record(action="login", outcome="failure", user=user, reason="bad_code")
    assert event.participant == user.participant
    assert event.login_id == user.login_id


def test_an_audit_row_is_written_as_the_orm_would_write_it(user, rf):
    request = rf.post("/", REMOTE_ADDR="203.0.113.9")
    event = audit_record(
        action="login",
        outcome="failure",
        request=request,
        user=user,
        scope="online",
        method="otp",
        reason="bad_code",
        detail={"channel": "app", "note": "引"},
    )
    stored = AuditEvent.objects.get(pk=event.pk)
    assert event.pk is not None and not event._state.adding
    assert (stored.at, stored.ip, stored.detail) == (event.at, "203.0.113.9", event.detail)
    assert (stored.user_id, stored.participant_id, stored.scope, stored.method) == (
        user.pk,
        user.participant_id,
        "online",
        "otp",
    )
    assert stored.actor_id is None


def test_nothing_listens_for_audit_rows_being_saved():
    """audit_record writes with a plain INSERT (common.sql.insert_instance), which sends no
    signal: a receiver added for audit rows would never hear of them."""
    from django.db.models.signals import post_save, pre_save

    assert not pre_save.has_listeners(AuditEvent)
    assert not post_save.has_listeners(AuditEvent)
