"""Moving the requests and bulk registrations to the dms app keeps every row as it was."""

from __future__ import annotations

import pytest
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from dms.models import BulkEmailBatch, BulkEmailRow, BulkStatus, ChangeRequest, RequestStatus

# serialized_rollback: the tests after this one find the content types as the suite made them.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

# The schema as it landed before the move: the models lived in participants.
LANDED = [("participants", "0005_user_participant_login_index")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _latest():
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


def test_requests_and_batches_survive_the_move_to_dms():
    old = _migrate(LANDED)
    try:
        # The landed state, with rows made through the models as they were then.
        Participant = old.get_model("participants", "Participant")
        Terminal = old.get_model("participants", "Terminal")
        User = old.get_model("participants", "User")
        OldRequest = old.get_model("participants", "ChangeRequest")
        OldBatch = old.get_model("participants", "BulkEmailBatch")
        OldRow = old.get_model("participants", "BulkEmailRow")
        firm = Participant.objects.create(
            participant_id="B77777",
            name="Old Firm",
            kind="CP",
            terminal=Terminal.objects.get(code="CCASS"),
        )
        maker = User.objects.create(
            login_id="B77777DA1", participant=firm, role="da", da_duty="maker"
        )
        user = User.objects.create(login_id="B77777U01", participant=firm)
        email_request = OldRequest.objects.create(
            participant=firm,
            kind="email_register",
            target=user,
            target_version=0,
            payload={"email": "u01@old.example"},
            maker=maker,
        )
        bulk_request = OldRequest.objects.create(
            participant=firm,
            kind="bulk_email",
            payload={"batch": 0},
            maker=maker,
            status="approved",
        )
        batch = OldBatch.objects.create(
            participant=firm,
            maker=maker,
            filename="emails.csv",
            source=b"B77777U01,u01@old.example\n",
            status="applied",
            total_rows=1,
            processed_rows=1,
            register_count=1,
            change_request=bulk_request,
        )
        OldRow.objects.create(
            batch=batch,
            line=1,
            login_id="B77777U01",
            email="u01@old.example",
            outcome="register",
            user=user,
            user_version=0,
        )
        # As the landed database had them: the content types belonged to participants.
        ContentType.objects.filter(app_label="dms").delete()
        for model in ("changerequest", "bulkemailbatch", "bulkemailrow"):
            ContentType.objects.create(app_label="participants", model=model)
        ContentType.objects.clear_cache()
    finally:
        _migrate(_latest())

    moved = ChangeRequest.objects.get(pk=email_request.pk)
    assert (moved.kind, moved.status, moved.payload) == (
        "email_register",
        RequestStatus.PENDING,
        {"email": "u01@old.example"},
    )
    assert (moved.target.login_id, moved.maker.login_id) == ("B77777U01", "B77777DA1")
    moved_batch = BulkEmailBatch.objects.get(pk=batch.pk)
    assert moved_batch.status == BulkStatus.APPLIED
    assert bytes(moved_batch.source) == b"B77777U01,u01@old.example\n"
    assert moved_batch.change_request.pk == bulk_request.pk
    assert list(
        BulkEmailRow.objects.filter(batch=moved_batch).values_list("login_id", "email")
    ) == [("B77777U01", "u01@old.example")]
    # Permissions follow the models: their content types now belong to dms.
    ContentType.objects.clear_cache()
    assert ContentType.objects.get_for_model(ChangeRequest).app_label == "dms"
    assert not ContentType.objects.filter(app_label="participants", model="changerequest").exists()
    # And new rows continue the same tables.
    newer = ChangeRequest.objects.create(
        participant=moved.participant, kind="user_suspend", target=moved.target, maker=moved.maker
    )
    assert newer.pk > bulk_request.pk
