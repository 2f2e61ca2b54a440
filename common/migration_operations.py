"""Migration operations for tables that are written to while they migrate.

The audit trail takes a row at every login: a plain CREATE INDEX on its millions of rows
would hold every login for as long as the build takes. On PostgreSQL these operations build
(and drop) the index CONCURRENTLY, which lets writes go on; elsewhere (SQLite, the embedded
default) they are the plain operations. A migration that uses them sets `atomic = False`,
since PostgreSQL builds an index concurrently only outside a transaction.

If a concurrent build fails, PostgreSQL leaves an INVALID index behind: the operation drops
any index of that name first, so that running the migration again finishes the job.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations


def _concurrently(schema_editor: Any) -> bool:
    return bool(schema_editor.connection.vendor == "postgresql")


class AddIndexOnline(migrations.AddIndex):
    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if _concurrently(schema_editor):
            quote = schema_editor.quote_name
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {quote(self.index.name)}")
            schema_editor.add_index(model, self.index, concurrently=True)
        else:
            schema_editor.add_index(model, self.index)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if _concurrently(schema_editor):
            schema_editor.remove_index(model, self.index, concurrently=True)
        else:
            schema_editor.remove_index(model, self.index)


class RemoveIndexOnline(migrations.RemoveIndex):
    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        index = from_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
        if _concurrently(schema_editor):
            schema_editor.remove_index(model, index, concurrently=True)
        else:
            schema_editor.remove_index(model, index)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        index = to_state.models[app_label, self.model_name_lower].get_index_by_name(self.name)
        if _concurrently(schema_editor):
            schema_editor.add_index(model, index, concurrently=True)
        else:
            schema_editor.add_index(model, index)
