"""Benchmark the portal's heavy paths in one run: `make bench`.

Run from the project root as `python -m tests.bench`. It builds a throwaway
database (a temporary SQLite file unless DATABASE_URL is set; for PostgreSQL a
separate `<name>_bench` database, dropped afterwards) and measures seven things.

1. Launch-morning logins (tests/bench_login.py): full logins (login form, password, code
   form, TOTP code) of distinct users through the portal's WSGI application, at 500 users
   and at 50,000 (BENCH_LOGIN_USERS) over 1,000 firms: the time outside the password hash
   per full login (median of BENCH_ROUNDS, 100, after a checkpoint has written the users
   just loaded), and its queries; beside it the floor: a request to a view that does
   nothing and one statement (SELECT 1), and what four and 14 of them add up to before a
   login does any work of its own (and what one render of the login form would cost: the
   login renders none, common.pages). Then, on PostgreSQL, the same logins over HTTP to
   gunicorn (2 workers, BENCH_HTTP_WORKERS) for 60 s (BENCH_HTTP_SECONDS) from a load
   generator of 6 threads (BENCH_HTTP_CONCURRENCY), beside the bare hash rate of two
   processes: logins/s, p50/p95/p99, errors, and the generator's own CPU per login; and
   from these, the CPU a login costs outside its hash with the cores saturated, and the
   hash that leaves 30 logins a second.

2. Bulk email registration of BULK_ROWS (10,000) emails through the real
   services (dms.bulk), for BENCH_BULK_ROUNDS rounds (3 by default):

   - validate: bulk_upload() of the CSV, then bulk_check() of the batch it queued;
   - apply: bulk_submit() by the maker DA, then request_approve() by a checker DA,
     which calls bulk_apply();

   and, in the same round, a bare baseline on the same rows: bulk_create() of
   10,000 BulkEmailRow rows for a dummy batch and bulk_update() of the same
   10,000 users' email, email_registered_by, email_registered_at and version,
   1,000 users a statement (the model instances are built before the clock
   starts). The goal is the portal's total at most GOAL_BULK_RATIO times the
   baseline. Most of bulk_update's time is Django building and compiling its
   Case(When()) expressions, not the database; stderr gives each part apart.

   Celery is kept out: the tasks the services queue on commit (bulk_check,
   outbox_relay) are replaced by recorders, so nothing reaches a
   broker or runs twice. The bench then calls bulk_check() itself, once, for the
   batch the upload queued, as the worker would. "apply" writes the notification and
   activation emails as outbox rows; sending them is the relay's, not part of "apply".
   Every round starts from the same users: one UPDATE, outside the timed part,
   clears their emails and versions.

3. The DMS users list, GET /dms/users/ (first page of 50), for a firm of 100
   users beside one of 10,000, each logged in as its DA through the real login
   views for the DMS scope, BENCH_LIST_ROUNDS times (30 by default). A share of
   the users has an authenticator app, a smartcard or an open activation link,
   so that the page's Exists() columns find something. On stderr, each of the
   page's SQL statements is timed again on its own, to show where the time goes,
   with the plans of its COUNT and of its page of users.

On PostgreSQL the bench runs ANALYZE once each part's rows are loaded, as
autovacuum would soon after such a load in production: without statistics the
planner takes a 10,000-user firm for a few dozen rows, and the users list then
joins every one of them before sorting (about 12 ms instead of 2).

4. The outbox relay: 10,000 emails (BENCH_RELAY_EMAILS) through a real worker to an SMTP
   sink, against a bare loop of send_mail to the same sink (tests/bench_relay.py).

5. The DMS pages at a firm of 20,000 users and 1,000,000 audit rows beside one of 30 users
   and 1,000 rows, and the audit export beside a bare server-side cursor, on PostgreSQL
   (tests/bench_pages.py).

6. The migration programme at launch-morning scale, on PostgreSQL (tests/bench_programme.py):
   the end of the parallel run and the decommissioning carried out over 50,000 accounts
   (BENCH_PROGRAMME_USERS) beside a bare update of their cards, and their queries beside
   those over 100; the staff readiness dashboard over 1,000 firms beside one aggregate
   query; the activation fan-out of the launch through a real worker to an SMTP sink.

7. The connectivity test's undo, on PostgreSQL (tests/bench_connectivity.py): the account
   changes of Session 2 undone over 5,000 accounts (BENCH_UNDO_ACCOUNTS) beside a bare
   restore of the same rows, and its queries beside those over 50 accounts.

Each figure is printed on stdout as `<name>: <value> <unit>`; the last line says
whether the goal is met: login outside the hash at most 8 ms and 16 queries, over HTTP
at least 30 logins/s and 0.8 times the hash rate with p95 at most 500 ms; bulk
registration at most GOAL_BULK_RATIO times the baseline, with the same number of
queries to apply 1,000 rows as 10,000; the same number of queries for the users list
at 100 and 10,000 users; pages at most 1.5 times the small firm's, the export at most
twice the bare cursor; the milestones at most twice the bare update with as many queries
at 100 accounts as at 50,000, the dashboard at most 1.5 times the aggregate, the fan-out at
least 500 emails a second; the undo at most twice the bare restore, with as many queries at
50 accounts as at 5,000. A missed goal still exits 0: the script reports. It exits
non-zero on errors, and when the production hasher is not Argon2id with at least OWASP's parameters
(m=19456 KiB, t=2, p=1).

Queries are counted with CaptureQueriesContext in rounds that are not timed
(BENCH_COUNT_ROUNDS, 3 by default, for the login and the list; one at 1,000 and
one at 10,000 rows for the bulk registration, which also warm it up): capturing
formats every statement, which would add to the times. The count is what the
database is sent, BEGIN and COMMIT included (each is a round trip); stderr
splits it.

Outside the timed sections each login round uses a fresh Client (a fresh
session, as for a browser arriving at the login page), fetches the login form
for its CSRF cookie (CSRF checks are on, as in production), and rewinds the
TOTP device's replay guard with a queryset update (last_t = -1, drift = 0): the
device refuses a code for any step at or before the last one it accepted and
allows one step of drift, so thirty logins in one 30-second window would run
out of codes.

BENCH_SHOW_QUERIES=1 also lists each step's SQL on stderr; BENCH_ONLY=relay (or a comma-separated
list of login, bulk, list, relay, pages, programme) runs only those parts. The HTTP logins,
the pages and the programme need PostgreSQL: without DATABASE_URL they are skipped (and
under CI=true refused).
"""

from __future__ import annotations

import gc
import hashlib
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Settings are read at django.setup(): the environment must be right before it.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ccass.settings")
os.environ.setdefault("STRONG_HASHER_IN_TESTS", "1")

GOAL_BULK_RATIO = 1.5
# OWASP Password Storage Cheat Sheet, Argon2id minimum: 19 MiB, 2 iterations, 1 lane.
OWASP_MEMORY_KIB = 19 * 1024
OWASP_TIME_COST = 2
OWASP_PARALLELISM = 1

SCOPE = "online"
TERMINAL = "ccass"
LOGIN_ID = "B10000U01"
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")

BULK_ROWS = 10_000
BULK_SMALL_ROWS = 1_000
BULK_FIRM = "C10000"
# Django's documented remedy for a large bulk_update: without it PostgreSQL gets one UPDATE
# with four 10,000-arm CASEs, whose planning ran for over ten minutes (deaf to a cancel).
# SQLite caps it lower anyway (999 parameters: 166 rows a statement).
BULK_BASELINE_BATCH = 1_000
LIST_SIZES = (100, 10_000)
LIST_FIRMS = {100: "D00100", 10_000: "D10000"}

Samples = dict[str, list[float]]
Captured = list[dict[str, str]]


class BenchError(Exception):
    """The bench cannot give a meaningful answer."""


@dataclass(frozen=True)
class Knobs:
    rounds: int
    warmup: int
    count_rounds: int
    bulk_rounds: int
    list_rounds: int
    relay_emails: int
    login_users: int = 50_000
    http_seconds: int = 60
    http_workers: int = 2
    http_concurrency: int = 6
    pages_users: int = 20_000
    audit_rows: int = 1_000_000
    pages_rounds: int = 20
    programme_users: int = 50_000
    programme_rounds: int = 5
    undo_accounts: int = 5_000
    undo_rounds: int = 3


@dataclass
class Section:
    """One part's figures (stdout), missed goals and details (stderr)."""

    figures: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def figure(self, name: str, value: str, unit: str) -> None:
        self.figures.append(f"{name}: {value} {unit}")


def _env_int(name: str, default: int, *, minimum: int) -> int:
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise BenchError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise BenchError(f"{name} must be at least {minimum}")
    return value


def _bench_database_name(db: dict[str, Any]) -> str:
    """A database of its own, never the one DATABASE_URL names."""
    name = str(db["NAME"])
    if db["ENGINE"].endswith("sqlite3"):
        path = Path(name)
        return str(path.with_name(f"{path.stem}_bench{path.suffix}"))
    return f"{name}_bench"


def _show_queries() -> bool:
    return os.environ.get("BENCH_SHOW_QUERIES", "") not in ("", "0")


def main() -> int:
    knobs = Knobs(
        rounds=_env_int("BENCH_ROUNDS", 100, minimum=1),
        warmup=_env_int("BENCH_WARMUP", 3, minimum=0),
        count_rounds=_env_int("BENCH_COUNT_ROUNDS", 3, minimum=1),
        bulk_rounds=_env_int("BENCH_BULK_ROUNDS", 3, minimum=1),
        list_rounds=_env_int("BENCH_LIST_ROUNDS", 30, minimum=1),
        relay_emails=_env_int("BENCH_RELAY_EMAILS", 10_000, minimum=1),
        login_users=_env_int("BENCH_LOGIN_USERS", 50_000, minimum=1_000),
        http_seconds=_env_int("BENCH_HTTP_SECONDS", 60, minimum=5),
        http_workers=_env_int("BENCH_HTTP_WORKERS", 2, minimum=1),
        http_concurrency=_env_int("BENCH_HTTP_CONCURRENCY", 6, minimum=1),
        pages_users=_env_int("BENCH_PAGES_USERS", 20_000, minimum=100),
        audit_rows=_env_int("BENCH_AUDIT_ROWS", 1_000_000, minimum=10_000),
        pages_rounds=_env_int("BENCH_PAGES_ROUNDS", 20, minimum=1),
        programme_users=_env_int("BENCH_PROGRAMME_USERS", 50_000, minimum=1_000),
        programme_rounds=_env_int("BENCH_PROGRAMME_ROUNDS", 5, minimum=1),
        undo_accounts=_env_int("BENCH_UNDO_ACCOUNTS", 5_000, minimum=100),
        undo_rounds=_env_int("BENCH_UNDO_ROUNDS", 3, minimum=1),
    )

    # The bench runs the bulk check itself, in-line, as a worker would; not in a thread.
    os.environ.setdefault("BULK_CHECK_IN_THREAD", "false")
    # The audit export part writes a file of a million rows: in a folder of its own.
    exports_folder = tempfile.mkdtemp(prefix="ccass-bench-exports-")
    os.environ["EXPORT_ROOT"] = exports_folder
    sqlite_folder = None
    if not os.environ.get("DATABASE_URL"):
        sqlite_folder = tempfile.mkdtemp(prefix="ccass-bench-")
        os.environ["DATABASE_URL"] = f"sqlite:///{sqlite_folder}/portal.sqlite3"
    try:
        import django

        django.setup()

        from django.conf import settings
        from django.test.utils import (
            setup_databases,
            setup_test_environment,
            teardown_databases,
            teardown_test_environment,
        )

        db: dict[str, Any] = settings.DATABASES["default"]
        if sqlite_folder is not None:
            # The embedded default's options (`make run`), which a bare sqlite URL lacks.
            db["OPTIONS"] = {
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL;",
            }
        db["TEST"] = {**db.get("TEST", {}), "NAME": _bench_database_name(db)}

        # DEBUG off as in production, in-memory email, "testserver" allowed.
        setup_test_environment(debug=False)
        old_config = setup_databases(verbosity=0, interactive=False, serialized_aliases=set())
        try:
            return _run(knobs)
        finally:
            teardown_databases(old_config, verbosity=0)
            teardown_test_environment()
    finally:
        shutil.rmtree(exports_folder, ignore_errors=True)
        if sqlite_folder is not None:
            shutil.rmtree(sqlite_folder, ignore_errors=True)


def _run(knobs: Knobs) -> int:
    from django.db import connection

    from migration.models import Phase
    from tests import factories

    factories.set_phase("CCASS", Phase.PARALLEL_RUN)
    started = time.perf_counter()
    parts = {
        "login": _login_bench,
        "bulk": _bulk_bench,
        "list": _list_bench,
        "relay": _relay_bench,
        "pages": _pages_bench,
        "programme": _programme_bench,
        "connectivity": _connectivity_bench,
    }
    # BENCH_ONLY=relay (or login,bulk ...) runs only those parts.
    only = [name for name in os.environ.get("BENCH_ONLY", "").split(",") if name]
    unknown = set(only) - set(parts)
    if unknown:
        raise BenchError(f"BENCH_ONLY names no part {sorted(unknown)}; parts: {sorted(parts)}")
    sections = [part(knobs) for name, part in parts.items() if not only or name in only]
    for section in sections:
        for line in section.figures:
            print(line)
    missed = [goal for section in sections for goal in section.missed]
    print("bench_goal: " + (f"missed ({'; '.join(missed)})" if missed else "met"))
    sys.stdout.flush()

    print(f"# {connection.vendor}, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    for section in sections:
        for line in section.details:
            print(f"# {line}", file=sys.stderr)
    return 0


def _pages_bench(knobs: Knobs) -> Section:
    from django.db import connection

    from tests.bench_pages import pages_bench

    section = Section()
    if connection.vendor != "postgresql":
        if os.environ.get("CI"):
            raise BenchError("the pages bench needs PostgreSQL (DATABASE_URL), and CI has it")
        section.details.append("pages: skipped, they are measured on PostgreSQL (DATABASE_URL)")
        return section
    pages_bench(section, users=knobs.pages_users, rows=knobs.audit_rows, rounds=knobs.pages_rounds)
    return section


def _programme_bench(knobs: Knobs) -> Section:
    from django.db import connection

    from tests.bench_programme import programme_bench

    section = Section()
    if connection.vendor != "postgresql":
        if os.environ.get("CI"):
            raise BenchError("the programme bench needs PostgreSQL (DATABASE_URL), and CI has it")
        section.details.append("programme: skipped, it is measured on PostgreSQL (DATABASE_URL)")
        return section
    programme_bench(section, users=knobs.programme_users, rounds=knobs.programme_rounds)
    return section


def _connectivity_bench(knobs: Knobs) -> Section:
    from django.db import connection

    from tests.bench_connectivity import connectivity_bench

    section = Section()
    if connection.vendor != "postgresql":
        if os.environ.get("CI"):
            raise BenchError(
                "the connectivity bench needs PostgreSQL (DATABASE_URL), and CI has it"
            )
        section.details.append(
            "connectivity undo: skipped, it is measured on PostgreSQL (DATABASE_URL): SQLite"
            " splits a large INSERT into batches, so its statements grow with the accounts"
        )
        return section
    connectivity_bench(section, accounts=knobs.undo_accounts, small=50, rounds=knobs.undo_rounds)
    return section


def _relay_bench(knobs: Knobs) -> Section:
    from tests.bench_relay import relay_bench

    section = Section()
    relay_bench(section, knobs.relay_emails)
    return section


def _analyze() -> None:
    """Give PostgreSQL's planner statistics for the rows just loaded, as autovacuum would
    within a minute in production; without them it plans for a handful of rows per firm.
    SQLite keeps none unless asked, and the portal never asks, so it is left alone."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def _checkpoint() -> None:
    """Write out the pages of the rows just loaded now, rather than have PostgreSQL's
    checkpointer do it on the other core while the logins are timed: in production the
    users were loaded weeks before launch morning."""
    from django.db import DatabaseError, connection

    if connection.vendor == "postgresql":
        try:
            with connection.cursor() as cursor:
                cursor.execute("CHECKPOINT")
        except DatabaseError as error:  # needs a superuser or pg_checkpoint
            print(f"# no CHECKPOINT before the timed logins: {error}", file=sys.stderr)


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def _sql_text(sql: str, width: int) -> str:
    return " ".join(sql.split())[:width]


def _query_lines(name: str, runs: list[Captured], *, slowest: int = 0) -> list[str]:
    """How many statements and transaction controls a step sent, its `slowest` statements
    as timed while captured, and with BENCH_SHOW_QUERIES its SQL."""
    sizes = sorted({len(run) for run in runs})
    last = runs[-1]
    control = sum(1 for q in last if q["sql"].startswith(TRANSACTION_CONTROL))
    lines = [
        f"{name}: {len(last)} queries = {len(last) - control} statements"
        f" + {control} transaction control"
        + (f" (counts varied: {sizes}; the maximum is reported)" if len(sizes) > 1 else "")
    ]
    if slowest:
        ranked = sorted(enumerate(last, 1), key=lambda item: -float(item[1]["time"]))
        lines += [
            f" {number:3d}. {float(query['time']) * 1000:8.1f} ms  {_sql_text(query['sql'], 130)}"
            for number, query in ranked[:slowest]
        ]
    if _show_queries():
        lines += [
            f" {number:3d}. {_sql_text(query['sql'], 200)}" for number, query in enumerate(last, 1)
        ]
    return lines


# 1. Login -----------------------------------------------------------------------------


def _argon2_params(encoded: str) -> dict[str, Any]:
    """The parameters of the stored hash, refusing anything but OWASP-grade Argon2id."""
    from django.contrib.auth.hashers import get_hasher, identify_hasher

    default = get_hasher("default")
    if default.algorithm != "argon2":
        raise BenchError(f"the production hasher is {default.algorithm}, not argon2")
    hasher = identify_hasher(encoded)
    if hasher.algorithm != "argon2":
        raise BenchError(f"the user's password is hashed with {hasher.algorithm}, not argon2")
    decoded = hasher.decode(encoded)
    if decoded["variety"] != "argon2id":
        raise BenchError(f"the hash is {decoded['variety']}, not argon2id")
    below = [
        f"{name}={decoded[name]} < {floor}"
        for name, floor in (
            ("memory_cost", OWASP_MEMORY_KIB),
            ("time_cost", OWASP_TIME_COST),
            ("parallelism", OWASP_PARALLELISM),
        )
        if decoded[name] < floor
    ]
    if below:
        raise BenchError("Argon2 parameters below OWASP's minimum: " + ", ".join(below))
    return decoded


def _untimed(_step: str, action: Callable[[], Any]) -> Any:
    return action()


class LoginRound:
    """One login through the real views, each step run by `measure`."""

    def __init__(self, device: Any, *, login_id: str = LOGIN_ID, scope: str = SCOPE) -> None:
        from tests.helpers import TOTP, otp_login_url

        self.device = device
        self.login_id = login_id
        self.totp = TOTP()
        self.login_path = otp_login_url(scope, TERMINAL)
        self.verify_path = otp_login_url(scope, TERMINAL, "verify")

    def run(self, measure: Callable[[str, Callable[[], Any]], Any]) -> Any:
        """Log in and return the logged-in Client."""
        from django.test import Client
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from tests.factories import USER_PASSWORD

        # Untimed: a device whose replay guard is rewound, so the current step's code
        # is valid, and a fresh browser that has the login form and its CSRF cookie.
        TOTPDevice.objects.filter(pk=self.device.pk).update(last_t=-1, drift=0)
        code = self.totp.code(self.device)
        client = Client(enforce_csrf_checks=True)
        form = client.get(self.login_path)
        if form.status_code != 200:
            raise BenchError(f"GET {self.login_path} answered {form.status_code}")
        csrf = client.cookies["csrftoken"].value
        gc.collect()

        response = measure(
            "password",
            lambda: client.post(
                self.login_path,
                {"login_id": self.login_id, "password": USER_PASSWORD, "csrfmiddlewaretoken": csrf},
            ),
        )
        if response.status_code != 302 or response["Location"] != self.verify_path:
            raise BenchError(f"password step failed: {_describe(response)}")
        response = measure(
            "otp",
            lambda: client.post(self.verify_path, {"code": code, "csrfmiddlewaretoken": csrf}),
        )
        if response.status_code != 302 or "_auth_user_id" not in client.session:
            raise BenchError(f"OTP step failed: {_describe(response)}")
        return client


def _describe(response: Any) -> str:
    return (
        f"{response.status_code} {response.get('Location', '')} "
        f"{response.content.decode(errors='replace')[:500]}"
    )


@contextmanager
def _templates_uninstrumented() -> Iterator[None]:
    """Render templates as production does: setup_test_environment() makes every render
    send a signal for the test client's `response.context`, which the login part never reads."""
    from django.template import Template
    from django.test.utils import _TestState

    instrumented = Template._render
    Template._render = _TestState.saved_data.template_render  # type: ignore[method-assign]
    try:
        yield
    finally:
        Template._render = instrumented  # type: ignore[method-assign]


def _login_in_process(knobs: Knobs, section: Section, population: Any, size: int) -> None:
    """Full logins through the WSGI application with `size` users in all."""
    from tests import bench_login as bl

    population.grow(size)
    _analyze()
    _checkpoint()
    warm = population.take(knobs.warmup)
    timed = population.take(knobs.rounds)
    counted = population.take(knobs.count_rounds)
    bl.in_process_logins(warm, [])
    result = bl.in_process_logins(timed, counted)
    nonhash = bl.median(result.nonhash_ms)
    queries = max(result.queries)
    section.figure(f"login_nonhash_ms_at_{size}_users", f"{nonhash:.2f}", "ms")
    section.figure(f"login_full_queries_at_{size}_users", str(queries), "queries")
    section.details.append(
        f"login at {size} users: {len(timed)} full logins (4 requests each), median total"
        f" {bl.median(result.total_ms):.1f} ms, of which the hash"
        f" {bl.median(result.hash_ms):.1f} ms and the rest {nonhash:.2f} ms;"
        f" queries per full login {sorted(set(result.queries))}"
    )
    if nonhash > bl.GOAL_NONHASH_MS:
        section.missed.append(
            f"login_nonhash_ms_at_{size}_users {nonhash:.2f} > {bl.GOAL_NONHASH_MS}"
        )
    if queries > bl.GOAL_QUERIES:
        section.missed.append(f"login_full_queries_at_{size}_users {queries} > {bl.GOAL_QUERIES}")


def _login_bench(knobs: Knobs) -> Section:
    """Full logins in-process at 500 and 50,000 users, then over HTTP (tests/bench_login.py)."""
    from django.conf import settings
    from django.db import connection

    from tests import bench_login as bl

    section = Section()
    population = bl.Population()
    with _templates_uninstrumented():
        for size in (500, knobs.login_users):
            _login_in_process(knobs, section, population, size)
    with _templates_uninstrumented():
        base = bl.floor()
    section.figure("login_floor_request_ms", f"{base.request_ms:.2f}", "ms")
    section.figure("login_floor_statement_ms", f"{base.statement_ms:.2f}", "ms")
    section.figure("login_floor_render_ms", f"{base.render_ms:.2f}", "ms")
    section.figure("login_floor_ms", f"{base.login_ms:.2f}", "ms")
    section.details.append(
        f"login floor: 4 requests to a view that does nothing ({base.request_ms:.2f} ms each),"
        f" and the {bl.FLOOR_STATEMENTS} statements a login must send ({base.statement_ms:.2f}"
        f" ms each, a SELECT 1): {base.login_ms:.2f} ms before the login does any work of its"
        f" own (goal for all of it: {bl.GOAL_NONHASH_MS} ms); a render of the login form"
        f" would add {base.render_ms:.2f} ms, but the login's two pages are kept (common.pages)"
    )
    params = _argon2_params(population.encoded)
    section.figure("argon2_memory_cost", str(params["memory_cost"]), "KiB")
    section.figure("argon2_time_cost", str(params["time_cost"]), "passes")
    section.figure("argon2_parallelism", str(params["parallelism"]), "lanes")

    if connection.vendor != "postgresql":
        if os.environ.get("CI"):
            raise BenchError("the HTTP login bench needs PostgreSQL (DATABASE_URL), and CI has it")
        section.details.append("http login throughput: skipped, it needs PostgreSQL (DATABASE_URL)")
        return section
    users = population.take(len(population.login_ids) - len(population.used))
    database_url = bl._database_url(settings.DATABASES["default"])
    with bl.gunicorn(database_url, knobs.http_workers) as (port, _log):
        # Warm up: each worker's first requests compile templates and open a connection.
        bl.load(port, users[:20], seconds=3, concurrency=knobs.http_concurrency)
        result = bl.load(
            port, users[20:], seconds=knobs.http_seconds, concurrency=knobs.http_concurrency
        )
    hashes = bl.bare_hash_rate(population.encoded, processes=2)
    ratio = result.rate / hashes
    section.figure("http_login_throughput", f"{result.rate:.1f}", "logins/s")
    section.figure("http_login_p50", f"{result.percentile(50):.0f}", "ms")
    section.figure("http_login_p95", f"{result.percentile(95):.0f}", "ms")
    section.figure("http_login_p99", f"{result.percentile(99):.0f}", "ms")
    section.figure("http_login_errors", str(len(result.errors)), "errors")
    section.figure("bare_hash_rate_2_processes", f"{hashes:.1f}", "hashes/s")
    section.figure("http_login_to_hash_rate", f"{ratio:.2f}", "x")
    cpu_ms = result.cpu_seconds * 1000 / max(1, len(result.latencies_ms))
    section.figure("load_generator_cpu_per_login", f"{cpu_ms:.2f}", "ms")
    # With both cores busy, a login costs 2 / rate core-seconds and its hash 2 / hash rate:
    # the rest is the portal, PostgreSQL, gunicorn and the load generator, per login.
    hash_ms = 2000 / hashes
    outside_ms = 2000 / result.rate - hash_ms if result.rate else float("nan")
    section.figure("http_login_core_ms_outside_hash", f"{outside_ms:.1f}", "ms")
    # What this machine can give the hash and still serve GOAL_HTTP_RATE logins a second,
    # and what the 0.8 ratio needs (a hash at least four times the rest).
    budget_ms = 2000 / bl.GOAL_HTTP_RATE - outside_ms
    section.figure("hash_core_ms_now", f"{hash_ms:.1f}", "ms")
    section.figure("hash_core_ms_affordable_at_goal_rate", f"{budget_ms:.1f}", "ms")
    # The same in passes at this memory, taking the hash's time as proportional to them
    # (a little short: part of a hash does not grow with its passes).
    ratio_ms = outside_ms * bl.GOAL_HTTP_TO_HASH / (1 - bl.GOAL_HTTP_TO_HASH)
    per_pass_ms = hash_ms / params["time_cost"]
    section.figure(
        "argon2_time_cost_for_ratio",
        str(max(OWASP_TIME_COST, math.ceil(ratio_ms / per_pass_ms))),
        "passes",
    )
    section.figure(
        "argon2_time_cost_affordable_at_goal_rate", str(int(budget_ms / per_pass_ms)), "passes"
    )
    section.details.append(
        f"hash: {hash_ms:.1f} ms of a core now; at {bl.GOAL_HTTP_RATE:.0f} logins/s this machine"
        f" could give it {budget_ms:.1f} ms ({budget_ms / hash_ms:.1f}x, about"
        f" {int(budget_ms / per_pass_ms)} passes at {params['memory_cost']}"
        f" KiB); logins/s reach {bl.GOAL_HTTP_TO_HASH}x the hash rate once the hash takes"
        f" {ratio_ms:.1f} ms"
    )
    section.details.append(
        f"http: gunicorn {knobs.http_workers} workers, {knobs.http_concurrency} client threads,"
        f" {result.seconds:.0f} s, {len(result.latencies_ms)} logins of distinct users"
        f" out of {len(population.login_ids)}; first errors: {result.errors[:3]}"
    )
    if result.rate < bl.GOAL_HTTP_RATE:
        section.missed.append(f"http_login_throughput {result.rate:.1f} < {bl.GOAL_HTTP_RATE}")
    if ratio < bl.GOAL_HTTP_TO_HASH:
        section.missed.append(f"http_login_to_hash_rate {ratio:.2f} < {bl.GOAL_HTTP_TO_HASH}")
    if result.percentile(95) > bl.GOAL_P95_MS:
        section.missed.append(f"http_login_p95 {result.percentile(95):.0f} > {bl.GOAL_P95_MS:.0f}")
    if result.errors:
        section.missed.append(f"http_login_errors {len(result.errors)}")
    return section


# 2. Bulk email registration -----------------------------------------------------------


class _Queued:
    """Stands in for a Celery task: records what the services queue for the worker."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[tuple[Any, ...]] = []

    def delay(self, *args: Any) -> None:
        self.calls.append(args)

    def take(self) -> tuple[Any, ...]:
        """The one call queued since the last take()."""
        if len(self.calls) != 1:
            raise BenchError(f"{self.name} was queued {len(self.calls)} times, not once")
        return self.calls.pop()


@contextmanager
def _tasks_recorded() -> Iterator[dict[str, _Queued]]:
    """Replace the tasks the bulk services queue on commit, so that none runs here."""
    from dms import tasks as dms_tasks
    from outbox import tasks as outbox_tasks

    modules = {"bulk_check": dms_tasks, "outbox_relay": outbox_tasks}
    saved = {name: getattr(module, name) for name, module in modules.items()}
    queued = {name: _Queued(name) for name in modules}
    try:
        for name, recorder in queued.items():
            setattr(modules[name], name, recorder)
        yield queued
    finally:
        for name, task in saved.items():
            setattr(modules[name], name, task)


class BulkFirm:
    """A firm with a maker DA, a checker DA and `size` users without an email."""

    def __init__(self, participant_id: str, size: int) -> None:
        from participants.models import DaDuty, User
        from tests import factories

        self.participant = factories.ParticipantFactory(
            participant_id=participant_id, name="Bulk Bench Securities Limited"
        )
        self.maker = factories.DAFactory(
            participant=self.participant, login_id=f"{participant_id}DA1", da_duty=DaDuty.MAKER
        )
        self.checker = factories.DAFactory(
            participant=self.participant, login_id=f"{participant_id}DA2", da_duty=DaDuty.CHECKER
        )
        self.login_ids = [f"{participant_id}U{n:05d}" for n in range(size)]
        User.objects.bulk_create(
            User(login_id=login_id, participant=self.participant, password="!")
            for login_id in self.login_ids
        )

    def reset(self) -> None:
        """Back to no email, version 0: one UPDATE, outside the timed part."""
        from participants.models import Role, User

        User.objects.filter(participant=self.participant, role=Role.USER).update(
            email="", email_registered_by=None, email_registered_at=None, version=0
        )

    def csv(self, rows: int) -> bytes:
        return (
            "LOGINID,email\n"
            + "".join(
                f"{login_id},{login_id.lower()}@bulk.example\n"
                for login_id in self.login_ids[:rows]
            )
        ).encode()

    def registered(self, domain: str) -> int:
        from participants.models import User

        return User.objects.filter(
            participant=self.participant, email__endswith=f"@{domain}"
        ).count()


def _bulk_portal(
    firm: BulkFirm, rows: int, queued: dict[str, _Queued], measure: Callable[..., Any]
) -> None:
    """Validate and apply a file of `rows` emails through the services, each step by `measure`."""
    from dms import bulk
    from dms.models import BulkStatus
    from dms.services import request_approve

    firm.reset()
    content = firm.csv(rows)
    gc.collect()

    batch = measure(
        "upload",
        lambda: bulk.bulk_upload(
            acting_user=firm.maker, filename=f"emails-{rows}.csv", raw=content
        ),
    )
    # The worker's part, run here once for the batch the upload queued.
    (batch_id,) = queued["bulk_check"].take()
    if batch_id != batch.pk:
        raise BenchError(f"the upload queued batch {batch_id}, not {batch.pk}")
    batch = measure("check", lambda: bulk.bulk_check(batch_id=batch_id))
    if batch.status != BulkStatus.READY or batch.register_count != rows:
        raise BenchError(
            f"bulk_check left batch {batch.pk} {batch.status} with {batch.register_count}"
            f" rows to register, not {rows}: {batch.error}"
        )

    change = measure("submit", lambda: bulk.bulk_submit(batch=batch, acting_user=firm.maker))
    measure("approve", lambda: request_approve(change=change, acting_user=firm.checker))
    # The submit and the approval each woke the outbox relay once (its emails are rows).
    queued["outbox_relay"].calls.clear()
    batch.refresh_from_db()
    if batch.status != BulkStatus.APPLIED:
        raise BenchError(f"batch {batch.pk} is {batch.status} after approval")
    if firm.registered("bulk.example") != rows:
        raise BenchError(f"{firm.registered('bulk.example')} emails registered, not {rows}")


def _bulk_baseline(firm: BulkFirm, rows: int, measure: Callable[..., Any]) -> None:
    """The same rows written bare: bulk_create of the rows, bulk_update of the users."""
    from django.utils import timezone

    from dms.models import BulkEmailBatch, BulkEmailRow, BulkOutcome, BulkStatus
    from participants.models import User

    firm.reset()
    batch = BulkEmailBatch.objects.create(
        participant=firm.participant,
        maker=firm.maker,
        filename="baseline.csv",
        source=b"",
        status=BulkStatus.APPLIED,
    )
    users = list(
        User.objects.filter(login_id__in=firm.login_ids[:rows])
        .only("pk", "login_id")
        .order_by("login_id")
    )
    now = timezone.now()
    new_rows = []
    for line, user in enumerate(users, start=2):
        email = f"{user.login_id.lower()}@baseline.example"
        new_rows.append(
            BulkEmailRow(
                batch=batch,
                line=line,
                login_id=user.login_id,
                email=email,
                outcome=BulkOutcome.REGISTER,
                user=user,
                user_version=0,
                previous_email="",
            )
        )
        user.email = email
        user.email_registered_by = firm.maker
        user.email_registered_at = now
        user.version = 1
    fields = ["email", "email_registered_by", "email_registered_at", "version"]
    gc.collect()
    measure("rows", lambda: BulkEmailRow.objects.bulk_create(new_rows))
    measure(
        "users", lambda: User.objects.bulk_update(users, fields, batch_size=BULK_BASELINE_BATCH)
    )
    if firm.registered("baseline.example") != rows:
        raise BenchError(f"the baseline set {firm.registered('baseline.example')} emails")


def _bulk_bench(knobs: Knobs) -> Section:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    firm = BulkFirm(BULK_FIRM, BULK_ROWS)
    _analyze()
    # SQLite asks once per connection whether it has JSON functions (the outbox rows' params
    # are built with JSONObject): ask before counting, so that the first round does not pay it.
    assert connection.features.supports_json_field
    phases = {"upload": "validate", "check": "validate", "submit": "apply", "approve": "apply"}

    with _tasks_recorded() as queued:
        # Counted rounds, which also warm up: 1,000 rows, then 10,000.
        queries: dict[tuple[str, int], Captured] = {}
        for rows in (BULK_SMALL_ROWS, BULK_ROWS):

            def counted(step: str, action: Callable[[], Any], rows: int = rows) -> Any:
                with CaptureQueriesContext(connection) as captured:
                    result = action()
                queries.setdefault((phases[step], rows), []).extend(captured.captured_queries)
                return result

            _bulk_portal(firm, rows, queued, counted)
        _bulk_baseline(firm, BULK_ROWS, _untimed)

        seconds: Samples = {
            name: [] for name in ("upload", "check", "submit", "approve", "rows", "users")
        }

        def timed(step: str, action: Callable[[], Any]) -> Any:
            started = time.perf_counter()
            result = action()
            seconds[step].append(time.perf_counter() - started)
            return result

        for _ in range(knobs.bulk_rounds):
            _bulk_portal(firm, BULK_ROWS, queued, timed)
            _bulk_baseline(firm, BULK_ROWS, timed)

    def sums(*steps: str) -> list[float]:
        return [sum(values) for values in zip(*(seconds[step] for step in steps), strict=True)]

    validate = _median_ms(sums("upload", "check"))
    apply = _median_ms(sums("submit", "approve"))
    total = _median_ms(sums("upload", "check", "submit", "approve"))
    baseline = _median_ms(sums("rows", "users"))
    ratio = total / baseline
    count = {key: len(captured) for key, captured in queries.items()}

    section = Section()
    n = BULK_ROWS
    section.figure(f"bulk_validate_{n}_median", f"{validate:.1f}", "ms")
    section.figure(f"bulk_apply_{n}_median", f"{apply:.1f}", "ms")
    section.figure(f"bulk_total_{n}_median", f"{total:.1f}", "ms")
    section.figure(f"bulk_baseline_{n}_median", f"{baseline:.1f}", "ms")
    section.figure("bulk_to_baseline_ratio", f"{ratio:.2f}", "x")
    for phase in ("apply", "validate"):
        for rows in (BULK_ROWS, BULK_SMALL_ROWS):
            section.figure(f"bulk_{phase}_queries_{rows}", str(count[(phase, rows)]), "queries")

    if ratio > GOAL_BULK_RATIO:
        section.missed.append(f"bulk_to_baseline_ratio {ratio:.2f} > {GOAL_BULK_RATIO}")
    if count[("apply", BULK_ROWS)] != count[("apply", BULK_SMALL_ROWS)]:
        section.missed.append(
            f"bulk_apply_queries_{BULK_ROWS} {count[('apply', BULK_ROWS)]}"
            f" != bulk_apply_queries_{BULK_SMALL_ROWS} {count[('apply', BULK_SMALL_ROWS)]}"
        )

    section.details.append(
        f"bulk: {knobs.bulk_rounds} timed rounds of {n} rows, queries counted in one round"
        f" at {BULK_SMALL_ROWS} and one at {n} rows (they also warm up)"
    )
    parts = ", ".join(
        f"{step} {_median_ms(seconds[step]):.1f}"
        for step in ("upload", "check", "submit", "approve", "rows", "users")
    )
    section.details.append(f"bulk step medians, ms: {parts}")
    check_to_rows = _median_ms(seconds["check"]) / _median_ms(seconds["rows"])
    apply_to_users = apply / _median_ms(seconds["users"])
    section.details.append(
        f"bulk check / bare bulk_create of the rows: {check_to_rows:.2f} x;"
        f" apply / bare bulk_update of the users: {apply_to_users:.2f} x"
    )
    section.details.append(
        "bulk rounds, ms (validate + apply | rows + users): "
        + "; ".join(
            f"{(u + c) * 1000:.0f} + {(s + a) * 1000:.0f} | {r * 1000:.0f} + {w * 1000:.0f}"
            for u, c, s, a, r, w in zip(
                *(
                    seconds[step]
                    for step in ("upload", "check", "submit", "approve", "rows", "users")
                ),
                strict=True,
            )
        )
    )
    for (phase, rows), captured in sorted(queries.items()):
        slowest = 4 if rows == BULK_ROWS else 0
        section.details += _query_lines(
            f"bulk {phase} at {rows} rows"
            + (f", {slowest} slowest statements as timed while counted" if slowest else ""),
            [captured],
            slowest=slowest,
        )
    return section


# 3. DMS users list ---------------------------------------------------------------------


def _list_firm(participant_id: str, size: int) -> Any:
    """A firm of `size` users, its DA included; returns the DA, who has an authenticator app.

    Every other user has an authenticator app and 2FA set up, every tenth a usable
    smartcard, every fifth of those without 2FA an open activation link.
    """
    import datetime as dt

    from django.utils import timezone
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from authn.models import ActivationToken
    from participants.models import Smartcard, User
    from tests import factories

    participant = factories.ParticipantFactory(
        participant_id=participant_id, name=f"List Bench {size} Limited"
    )
    da = factories.DAFactory(participant=participant, login_id=f"{participant_id}DA1")
    factories.TOTPDeviceFactory(user=da)
    now = timezone.now()
    User.objects.bulk_create(
        User(
            login_id=f"{participant_id}U{n:05d}",
            participant=participant,
            password="!",
            email=f"u{n}@{participant_id.lower()}.example",
            email_registered_by=da,
            email_registered_at=now,
            two_factor_ready_at=now if n % 2 == 0 else None,
            last_login=now if n % 2 == 0 else None,
            last_login_method="otp" if n % 2 == 0 else "",
        )
        for n in range(size - 1)
    )
    pks = list(
        User.objects.filter(participant=participant, login_id__contains="U")
        .order_by("login_id")
        .values_list("pk", flat=True)
    )
    TOTPDevice.objects.bulk_create(
        TOTPDevice(user_id=pk, name="Authenticator app", confirmed=True) for pk in pks[::2]
    )
    Smartcard.objects.bulk_create(
        Smartcard(
            user_id=pk,
            serial=f"{participant_id}C{n:05d}",
            fingerprint_sha256=hashlib.sha256(f"{participant_id}C{n:05d}".encode()).hexdigest(),
            valid_from=now - dt.timedelta(days=30),
            valid_to=now + dt.timedelta(days=300),
            password_hash="!",
        )
        for n, pk in enumerate(pks)
        if n % 10 == 0
    )
    ActivationToken.objects.bulk_create(
        ActivationToken(
            user_id=pk,
            token_hash=hashlib.sha256(f"{participant_id}T{n:05d}".encode()).hexdigest(),
            expires_at=now + dt.timedelta(days=7),
        )
        for n, pk in enumerate(pks)
        if n % 10 == 1
    )
    return da


def _list_bench(knobs: Knobs) -> Section:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from dms.views import PAGE_SIZE

    path = reverse("dms:user-list")
    das = {size: _list_firm(LIST_FIRMS[size], size) for size in LIST_SIZES}
    _analyze()
    clients = {
        size: LoginRound(TOTPDevice.objects.get(user=da), login_id=da.login_id, scope="dms").run(
            _untimed
        )
        for size, da in das.items()
    }

    def fetch(size: int) -> Any:
        response = clients[size].get(path)
        if response.status_code != 200:
            raise BenchError(f"GET {path} at {size} users: {_describe(response)}")
        return response

    for size in LIST_SIZES:
        page = fetch(size).context["page"]
        if len(page.object_list) != min(PAGE_SIZE, size):
            raise BenchError(f"the list of {size} users shows {len(page.object_list)} users")
        for _ in range(knobs.warmup):
            fetch(size)

    seconds: Samples = {str(size): [] for size in LIST_SIZES}
    for _ in range(knobs.list_rounds):
        gc.collect()
        for size in LIST_SIZES:
            started = time.perf_counter()
            fetch(size)
            seconds[str(size)].append(time.perf_counter() - started)

    queries: dict[int, list[Captured]] = {size: [] for size in LIST_SIZES}
    for _ in range(knobs.count_rounds):
        for size in LIST_SIZES:
            with CaptureQueriesContext(connection) as captured:
                fetch(size)
            queries[size].append(captured.captured_queries)
    counts = {size: max(len(run) for run in runs) for size, runs in queries.items()}

    section = Section()
    for size in LIST_SIZES:
        section.figure(
            f"dms_users_list_{size}_median", f"{_median_ms(seconds[str(size)]):.1f}", "ms"
        )
    for size in LIST_SIZES:
        section.figure(f"dms_users_list_queries_{size}", str(counts[size]), "queries")
    small, large = LIST_SIZES
    if counts[small] != counts[large]:
        section.missed.append(
            f"dms_users_list_queries_{large} {counts[large]}"
            f" != dms_users_list_queries_{small} {counts[small]}"
        )

    section.details.append(
        f"dms users list: {knobs.list_rounds} timed rounds, queries counted in"
        f" {knobs.count_rounds} more; first page of {PAGE_SIZE}"
    )
    for size in LIST_SIZES:
        section.details += _query_lines(f"users list at {size} users", queries[size])
    for size in LIST_SIZES:
        section.details += _statement_times(
            f"users list at {size} users", queries[size][-1], knobs.list_rounds
        )
    section.details += _list_plans(das[large].participant, queries[large][-1])
    return section


def _statement_times(name: str, captured: Captured, rounds: int) -> list[str]:
    """Each SELECT of one page view, run again on its own: where the database time goes."""
    from django.db import connection

    lines = [f"{name}, each SELECT run alone {rounds} times, median ms:"]
    total = 0.0
    for number, query in enumerate(captured, 1):
        sql = query["sql"]
        if not sql.lstrip().upper().startswith("SELECT"):
            continue
        samples = []
        with connection.cursor() as cursor:
            for _ in range(rounds):
                started = time.perf_counter()
                cursor.execute(sql)
                cursor.fetchall()
                samples.append(time.perf_counter() - started)
        median = _median_ms(samples)
        total += median
        lines.append(f" {number:2d}. {median:7.2f}  {_sql_text(sql, 150)}")
    lines.append(f"     {total:7.2f}  all SELECTs together")
    return lines


def _list_plans(participant: Any, captured: Captured) -> list[str]:
    """The plans of the statements that read the page of users and their flags."""
    from django.db import connection

    lines: list[str] = []
    postgres = connection.vendor == "postgresql"
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if postgres else "EXPLAIN QUERY PLAN "
    wanted = [
        query["sql"]
        for query in captured
        if query["sql"].startswith("SELECT") and 'FROM "participants_user"' in query["sql"]
    ]
    with connection.cursor() as cursor:
        for sql in wanted:
            cursor.execute(prefix + sql)
            lines.append(f"plan at {LIST_SIZES[-1]} users of: {_sql_text(sql, 110)}")
            # PostgreSQL answers one text column; SQLite (id, parent, 0, detail).
            lines += [f"   {row[0] if postgres else row[-1]}" for row in cursor.fetchall()]
    return lines


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"bench error: {error}", file=sys.stderr)
        sys.exit(2)
