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
