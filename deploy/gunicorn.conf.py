"""gunicorn settings for the portal's web process: `gunicorn -c deploy/gunicorn.conf.py ccass.wsgi`.

Read by deploy/systemd/ccass-web.service; the environment file (/etc/ccass/portal.env) may
set GUNICORN_BIND and GUNICORN_WORKERS.
"""

from __future__ import annotations

import os
import re
from typing import Any

from gunicorn.glogging import Logger

from common.logging import redact_secrets

# Loopback only: nginx (deploy/nginx.conf) is the one client. Whoever reaches gunicorn
# directly could set the X-Forwarded-Proto and smartcard headers that nginx overwrites.
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")

_workers = os.environ.get("GUNICORN_WORKERS", "2")
if not re.fullmatch(r"[1-9][0-9]*", _workers):
    raise SystemExit(f"GUNICORN_WORKERS={_workers!r} is not a whole number of workers")
# Sync workers, two on two cores. A login is CPU-bound: its password hash (Argon2id, one
# lane, 6 passes) holds a core for 44-51 ms on this machine, the rest of its four requests
# (the portal, PostgreSQL, this server) 7-11 ms more. Measured with `make bench` (full
# logins of distinct users for 60 s, PostgreSQL, 50,000 users): 2 workers keep both cores
# busy (33-36 logins a second, p95 209-238 ms); at 5 passes 3 workers served what 2 did
# (38 and 39-43 a second), and with 2 passes 2, 3 and 4 workers were within 2% of each
# other. More workers only queue the same work in more places and hold 19 MiB more each
# during a hash.
workers = int(_workers)

# A worker silent for 30 s is killed and replaced. The slowest request the portal serves
# is an audit CSV streamed in the request: it is sent only up to AUDIT_EXPORT_STREAM_ROWS
# rows (~2 s at the measured 50,000-70,000 rows a second) and stops itself at 25 s, so a
# longer one is written in the background instead of being cut by this timeout. nginx waits
# 60 s (proxy_read_timeout) for an answer: a stuck worker is recycled before nginx gives up
# on it, and never holds a request for minutes.
timeout = 30
# On a restart or reload (SIGHUP), a worker has this long to finish the requests it holds.
graceful_timeout = 30
keepalive = 5
# Replace each worker after about ten thousand requests, so a slow leak cannot grow for
# ever; the jitter keeps the workers from restarting together. At launch-morning rates (35
# logins, 140 requests a second) a worker restarts every minute or two: each restart
# imports Django again (about a second of a core), so a thousand would cost ~10% of the CPU.
max_requests = 10_000
max_requests_jitter = 1_000

# No runtime control socket (gunicorn >= 25.1 opens one in $HOME by default): systemd
# starts, stops and reloads the web process, and nothing else should be able to.
control_socket_disable = True

# X-Forwarded-* are believed from nginx on this host only.
forwarded_allow_ips = "127.0.0.1"

# Access log to stdout, error log to stderr: journald keeps both. The path (%(U)s) never
# carries the query string, and the request line (%(r)s), the query (%(q)s) and the
# Referer (%(f)s) are left out because they can; X-Real-IP is the client nginx saw.
accesslog = "-"
errorlog = "-"
access_log_format = '%({x-real-ip}i)s "%(m)s %(U)s" %(s)s %(B)s %(M)sms "%(a)s"'


class PortalLogger(Logger):
    """gunicorn's logger, blanking an activation token in the path (the form links once had)."""

    def atoms(
        self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any
    ) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["U"] = redact_secrets(atoms.get("U") or "")
        return atoms


logger_class = PortalLogger
