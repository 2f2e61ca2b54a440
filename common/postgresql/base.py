"""Django's PostgreSQL backend, with a connection health check that needs no round trip, and
a cursor whose statements are prepared on the server.

With CONN_HEALTH_CHECKS, Django checks a kept connection at the start of every request
with a `SELECT 1`: one more round trip per request, four per full login. Between requests
a healthy connection has nothing to read. A server that ended it (a restart,
`pg_terminate_backend`, an idle timeout) has sent its FATAL message or closed the socket,
so the socket is readable. Only then is the `SELECT 1` asked, and a failure means a new
connection, as before. A host that vanished without closing the socket is not caught by
either check in advance: the request fails and Django drops the connection after it.

Prepared statements (`prepared_cursor()`, through `common.sql.prepared_cursor`): Django
binds parameters on the client and sends each statement as text, which PostgreSQL parses
and plans every time. The login path's few statements run tens of times a second, and
planning the two that join a user, its firm and its device took longer than running them
(about 0.6 ms each). A prepared cursor binds on the server and prepares each statement the
first time the connection runs it; after five runs PostgreSQL keeps a generic plan when it
is no worse (for these lookups by unique key, it is the same plan) and plans no more. Only
the statements run through that cursor are prepared: every other query keeps Django's
client-side binding, and with it plans made for its own values (the audit pages' filters
over firms of very different sizes). A connection pooler in transaction mode cannot keep a
prepared statement from one transaction to the next: set DB_PREPARED_STATEMENTS=false
behind one older than PgBouncer 1.21.
"""

from __future__ import annotations

import select
from typing import Any

from django.db.backends.postgresql import base, operations
from django.db.backends.utils import CursorWrapper
from django.utils.asyncio import async_unsafe
from psycopg.errors import DataError
from psycopg.pq import Format

# psycopg prepares a statement on its own only after this many runs through a cursor that
# binds on the server; the portal's prepared cursor asks for it on the first run, and no
# other cursor binds on the server. Kept from a connection's first statement to its close,
# at most psycopg's 100 a connection (the least recently used is deallocated).
_PREPARE_ON_REQUEST_ONLY = 2**31 - 1


class PreparingCursor(base.ServerBindingCursor):  # type: ignore[misc,name-defined]
    """Binds its parameters on the server and prepares each statement it runs."""

    def execute(
        self, query: Any, params: Any = None, *, prepare: bool | None = None, **kw: Any
    ) -> Any:
        return super().execute(  # type: ignore[misc]
            query, params, prepare=True if prepare is None else prepare, **kw
        )


class DatabaseOperations(operations.DatabaseOperations):
    def last_executed_query(self, cursor: Any, sql: str, params: Any) -> str | None:  # type: ignore[override]
        if isinstance(cursor, PreparingCursor):
            # Bound on the server, so psycopg keeps no text with the values: as Django does
            # for server-side binding, the statement with its values quoted on the client.
            try:
                return str(self.compose_sql(sql, params))
            except DataError:
                return None
        return super().last_executed_query(cursor, sql, params)  # type: ignore[no-any-return]


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations

    def get_connection_params(self) -> dict[str, Any]:
        options = self.settings_dict["OPTIONS"]
        self.prepares_statements = bool(options.get("prepared_statements", True))
        params = super().get_connection_params()
        params.pop("prepared_statements", None)
        if "prepare_threshold" not in options:
            params["prepare_threshold"] = _PREPARE_ON_REQUEST_ONLY
        return params

    @async_unsafe
    def prepared_cursor(self) -> CursorWrapper:
        """A cursor whose statements are prepared on the server (see the module's docstring);
        a plain one when DB_PREPARED_STATEMENTS=false."""
        self.close_if_health_check_failed()
        self.ensure_connection()
        if not self.prepares_statements:
            return self.cursor()
        with self.wrap_database_errors:
            cursor = PreparingCursor(self.connection)  # type: ignore[call-arg]
            # As Django's create_cursor(): read timestamps in the connection's time zone.
            loader = self.connection.adapters.get_loader(base.TIMESTAMPTZ_OID, Format.TEXT)
            if self.timezone != loader.timezone:
                base.register_tzloader(self.timezone, cursor)  # type: ignore[attr-defined]
            return self._prepare_cursor(cursor)  # type: ignore[attr-defined,no-any-return]

    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None or connection.closed or connection.broken:
            return False
        try:
            readable, _writable, _failed = select.select([connection.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        if not readable:
            return True
        # Something came unasked: most often the server's goodbye. Ask it properly.
        return bool(super().is_usable())
