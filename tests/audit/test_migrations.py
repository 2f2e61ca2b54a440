"""The audit trail's indexes are built without holding logins, which write to it."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_trail_indexes_are_built_concurrently_on_postgresql():
    out = io.StringIO()
    call_command("sqlmigrate", "audit", "0005", stdout=out)
    sql = out.getvalue()
    creates = [line for line in sql.splitlines() if line.startswith("CREATE INDEX")]
    if connection.vendor == "postgresql":
        assert len(creates) == 5
        # Outside a transaction (no BEGIN), each build CONCURRENTLY: inserts go on meanwhile.
        assert "BEGIN;" not in sql
        assert all(line.startswith("CREATE INDEX CONCURRENTLY") for line in creates)
        # The new indexes stand before the old ones go.
        assert sql.rindex("CREATE INDEX") < sql.index('"audit_participant_at_idx"')
    else:
        # SQLite remakes the table (and every index) for the foreign keys' changes.
        assert creates and "CONCURRENTLY" not in sql
