"""Django's PostgreSQL backend, with a connection health check that needs no round trip.

With CONN_HEALTH_CHECKS, Django checks a kept connection at the start of every request
with a `SELECT 1`: one more round trip per request, four per full login. Between requests
a healthy connection has nothing to read. A server that ended it (a restart,
`pg_terminate_backend`, an idle timeout) has sent its FATAL message or closed the socket,
so the socket is readable. Only then is the `SELECT 1` asked, and a failure means a new
connection, as before. A host that vanished without closing the socket is not caught by
either check in advance: the request fails and Django drops the connection after it.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base


class DatabaseWrapper(base.DatabaseWrapper):
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
