"""The DMS pages at a large firm beside a small one, for `make bench` (part `pages`).

Two firms on PostgreSQL: a large one of 20,000 users with 1,000,000 audit rows
(BENCH_PAGES_USERS, BENCH_AUDIT_ROWS), and a small one of 30 users with 1,000 rows. The
audit rows are written in one INSERT ... SELECT over generate_series: logins of the firm's
users a second apart, every tenth a request by the firm's DA, every hundredth an OTP reset.
Each firm's DA is logged in through the real views, and each page is fetched through the
real view (django.test.Client), BENCH_PAGES_ROUNDS times, the median kept:

- the audit trail: the first page, a deep page (a cursor nine tenths of the way down, or
  as deep as a firm of 1,000 rows goes with a full page left), the rows of the DA (the
  user of some rows, the actor of every tenth), the rows of one action;
- the users list: the first page, a deep page (likewise; the small firm's 30 users make one
  short page, so its "deep" page is 29 rows against 50), a search by login ID prefix.

The ratio large / small is the goal (at most 1.5x). The export of the large firm's trail
(1,000,000 rows, too many to stream, so the background writer's path) is timed beside a
bare server-side cursor reading the same columns of the same rows (goal: at most 2x).
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

GOAL_PAGE_RATIO = 1.5
GOAL_EXPORT_RATIO = 2.0
SMALL_USERS = 30
SMALL_ROWS = 1_000


@dataclass
class Firm:
    participant: Any
    da: Any
    client: Any
    users: int
    rows: int


def load_audit_rows(participant: Any, da: Any, rows: int) -> None:
    """`rows` audit rows for the firm in one statement (PostgreSQL)."""
    from django.db import connection

    sql = """
        INSERT INTO audit_auditevent
            (at, action, outcome, login_id, user_id, actor_id, participant_id,
             scope, method, ip, reason, detail)
        SELECT now() - (g * interval '1 second'),
               CASE WHEN g %% 100 = 0 THEN 'otp_reset'
                    WHEN g %% 10 = 0 THEN 'request_made' ELSE 'login' END,
               CASE WHEN g %% 7 = 0 THEN 'failure' ELSE 'success' END,
               u.login_id, u.id,
               CASE WHEN g %% 10 = 0 THEN %(da)s END,
               %(firm)s, 'online', 'otp', '10.0.0.1', '', '{}'::jsonb
        FROM generate_series(1, %(rows)s) AS g
        JOIN (
            SELECT id, login_id, (row_number() OVER (ORDER BY id)) - 1 AS k
            FROM participants_user WHERE participant_id = %(firm)s
        ) AS u ON u.k = g %% %(users)s
    """
    users = participant.users.count()
    with connection.cursor() as cursor:
        cursor.execute(sql, {"da": da.pk, "firm": participant.pk, "rows": rows, "users": users})


def _firm(participant_id: str, users: int, rows: int, list_firm: Callable[..., Any]) -> Firm:
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from tests.bench import LoginRound

    da = list_firm(participant_id, users)
    load_audit_rows(da.participant, da, rows)
    client = LoginRound(TOTPDevice.objects.get(user=da), login_id=da.login_id, scope="dms").run(
        lambda _step, action: action()
    )
    return Firm(participant=da.participant, da=da, client=client, users=users, rows=rows)


def _probes(firm: Firm) -> dict[str, str]:
    """The URL of each page the bench times, for this firm."""
    from urllib.parse import urlencode

    from django.urls import reverse

    from audit.models import AuditEvent
    from audit.selectors import NEWEST_FIRST
    from common.keyset import cursor_for
    from dms.selectors import USER_ORDER, users_for_dms

    audit = reverse("dms:audit-list")
    users = reverse("dms:user-list")
    events = AuditEvent.objects.filter(participant=firm.participant).order_by("-at", "-id")
    listed = users_for_dms(participant=firm.participant)
    # Nine tenths of the way down, or as deep as the firm goes with a page still to show.
    deep_event = events[min(firm.rows * 9 // 10, max(0, firm.rows - 51))]
    deep_user = listed[min(firm.users * 9 // 10, max(0, firm.users - 51))]
    return {
        "audit_first": audit,
        "audit_deep": f"{audit}?{urlencode({'after': cursor_for(deep_event, NEWEST_FIRST)})}",
        # The DA: the user of the rows about them and the actor of every tenth row.
        "audit_by_user": f"{audit}?{urlencode({'user': firm.da.login_id})}",
        "audit_by_action": f"{audit}?{urlencode({'action': 'request_made'})}",
        "users_first": users,
        "users_deep": f"{users}?{urlencode({'after': cursor_for(deep_user, USER_ORDER)})}",
        "users_search": f"{users}?{urlencode({'q': firm.participant.participant_id})}",
    }


def _time_pages(firm: Firm, probes: dict[str, str], rounds: int) -> dict[str, float]:
    for url in probes.values():  # warm up, and check each page answers
        response = firm.client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code}")
    samples: dict[str, list[float]] = {name: [] for name in probes}
    for _ in range(rounds):
        gc.collect()
        for name, url in probes.items():
            started = time.perf_counter()
            firm.client.get(url)
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) * 1000 for name, values in samples.items()}


def _export_seconds(firm: Firm) -> tuple[float, int]:
    """The background writer's time for the firm's whole trail, and its rows."""
    from audit import exports
    from audit.models import AuditExport
    from audit.selectors import TrailFilters

    up_to_id = exports.newest_id()
    rows = exports.export_rows(
        participant=firm.participant, filters=TrailFilters(), up_to_id=up_to_id
    )
    # The row audit_export_request() makes, without queueing it: the bench runs the task.
    export = AuditExport.objects.create(
        participant=firm.participant,
        requested_by=firm.da,
        filters=TrailFilters().as_json(),
        language="en",
        up_to_id=up_to_id,
        rows_expected=firm.rows,
    )
    gc.collect()
    started = time.perf_counter()
    done = exports.audit_export_write(export_id=export.pk)
    elapsed = time.perf_counter() - started
    if done.rows_written != rows.count():
        raise RuntimeError(f"the export wrote {done.rows_written} rows, not {rows.count()}")
    return elapsed, done.rows_written


def _bare_cursor_seconds(firm: Firm) -> float:
    """A named (server-side) psycopg cursor over the same columns, fetched in chunks."""
    from django.db import connection, transaction

    from audit import exports

    gc.collect()
    started = time.perf_counter()
    with transaction.atomic():
        cursor = connection.connection.cursor(name="bench_bare")
        # The export's columns (audit.exports), the acting user's login ID through the join.
        cursor.execute(
            "SELECT e.at, e.action, e.outcome, e.login_id, actor.login_id, e.scope, e.method,"
            " e.ip, e.reason FROM audit_auditevent e"
            " LEFT JOIN participants_user actor ON actor.id = e.actor_id"
            " WHERE e.participant_id = %s ORDER BY e.at, e.id",
            [firm.participant.pk],
        )
        while cursor.fetchmany(exports.CHUNK_ROWS):
            pass
        cursor.close()
    return time.perf_counter() - started


def pages_bench(section: Any, *, users: int, rows: int, rounds: int) -> None:
    from django.db import connection

    from tests.bench import _analyze, _list_firm

    small = _firm("P00030", SMALL_USERS, SMALL_ROWS, _list_firm)
    large = _firm("P20000", users, rows, _list_firm)
    _analyze()
    times = {}
    for firm in (small, large):
        times[firm.users] = _time_pages(firm, _probes(firm), rounds)
    for name in times[small.users]:
        ratio = times[large.users][name] / times[small.users][name]
        section.figure(f"{name}_small", f"{times[small.users][name]:.2f}", "ms")
        section.figure(f"{name}_large", f"{times[large.users][name]:.2f}", "ms")
        section.figure(f"{name}_ratio", f"{ratio:.2f}", "x")
        if ratio > GOAL_PAGE_RATIO:
            section.missed.append(f"{name}_ratio {ratio:.2f} > {GOAL_PAGE_RATIO}")
    export_seconds, written = _export_seconds(large)
    bare = _bare_cursor_seconds(large)
    export_ratio = export_seconds / bare
    section.figure("audit_export_rows_per_second", f"{written / export_seconds:.0f}", "rows/s")
    section.figure("bare_cursor_rows_per_second", f"{written / bare:.0f}", "rows/s")
    section.figure("audit_export_to_bare_cursor", f"{export_ratio:.2f}", "x")
    if export_ratio > GOAL_EXPORT_RATIO:
        section.missed.append(f"audit_export_to_bare_cursor {export_ratio:.2f} > 2")
    section.details.append(
        f"pages: {connection.vendor}; small firm {small.users} users / {small.rows} audit rows,"
        f" large firm {large.users} users / {large.rows} rows; {rounds} rounds, median"
    )
