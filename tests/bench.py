"""Benchmark a full OTP login against the password hash alone: `make bench`.

Run from the project root as `python -m tests.bench`. It builds a throwaway
database (a temporary SQLite file unless DATABASE_URL is set; for PostgreSQL a
separate `<name>_bench` database, dropped afterwards), creates a user with an
authenticator app, warms up, and then for BENCH_ROUNDS rounds (30 by default)
logs in through the real views with django.test.Client:

- the password step, POST /login/ccass/otp/online/;
- the OTP step, POST /login/ccass/otp/online/verify/ with a valid TOTP code;

and, in the same round, times check_password() alone on the user's stored hash,
so that both medians see the same machine load.

Each figure is printed on stdout as `<name>: <value> <unit>`; the last line says
whether the goal (login at most 1.3 times the hash, at most 12 queries a step)
is met. A missed goal still exits 0: the script reports. It exits non-zero on
errors, and when the production hasher is not Argon2id with at least OWASP's
parameters (m=19456 KiB, t=2, p=1).

Queries are counted with CaptureQueriesContext in BENCH_COUNT_ROUNDS further
rounds (3 by default), not in the timed ones: capturing formats every statement,
which would add to the times. The count is what the database is sent, BEGIN and
COMMIT included (each is a round trip); stderr splits it.

Outside the timed sections each round uses a fresh Client (a fresh session, as
for a browser arriving at the login page), fetches the login form for its CSRF
cookie (CSRF checks are on, as in production), and rewinds the TOTP device's
replay guard with a queryset update (last_t = -1, drift = 0): the device refuses
a code for any step at or before the last one it accepted and allows one step
of drift, so thirty logins in one 30-second window would run out of codes.

BENCH_SHOW_QUERIES=1 also lists each step's SQL on stderr.
"""

from __future__ import annotations

import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Settings are read at django.setup(): the environment must be right before it.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ccass.settings")
os.environ.setdefault("STRONG_HASHER_IN_TESTS", "1")

GOAL_RATIO = 1.3
GOAL_QUERIES = 12
# OWASP Password Storage Cheat Sheet, Argon2id minimum: 19 MiB, 2 iterations, 1 lane.
OWASP_MEMORY_KIB = 19 * 1024
OWASP_TIME_COST = 2
OWASP_PARALLELISM = 1

SCOPE = "online"
TERMINAL = "ccass"
LOGIN_ID = "B10000U01"
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT")


class BenchError(Exception):
    """The bench cannot give a meaningful answer."""


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


def main() -> int:
    rounds = _env_int("BENCH_ROUNDS", 30, minimum=1)
    warmup = _env_int("BENCH_WARMUP", 3, minimum=0)
    count_rounds = _env_int("BENCH_COUNT_ROUNDS", 3, minimum=1)

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
            return _run(rounds=rounds, warmup=warmup, count_rounds=count_rounds)
        finally:
            teardown_databases(old_config, verbosity=0)
            teardown_test_environment()
    finally:
        if sqlite_folder is not None:
            shutil.rmtree(sqlite_folder, ignore_errors=True)


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


class LoginRound:
    """One login through the real views, each step run by `measure`."""

    def __init__(self, device: Any) -> None:
        from tests.helpers import TOTP, otp_login_url

        self.device = device
        self.totp = TOTP()
        self.login_path = otp_login_url(SCOPE, TERMINAL)
        self.verify_path = otp_login_url(SCOPE, TERMINAL, "verify")

    def run(self, measure: Callable[[str, Callable[[], Any]], Any]) -> None:
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
                {"login_id": LOGIN_ID, "password": USER_PASSWORD, "csrfmiddlewaretoken": csrf},
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


def _describe(response: Any) -> str:
    return (
        f"{response.status_code} {response.get('Location', '')} "
        f"{response.content.decode(errors='replace')[:500]}"
    )


def _run(*, rounds: int, warmup: int, count_rounds: int) -> int:
    from django.contrib.auth.hashers import check_password
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from migration.models import Phase
    from participants.models import User
    from tests import factories

    factories.set_phase("CCASS", Phase.PARALLEL_RUN)
    user = factories.UserFactory(login_id=LOGIN_ID)
    login = LoginRound(factories.TOTPDeviceFactory(user=user))
    encoded = User.objects.get(pk=user.pk).password
    params = _argon2_params(encoded)

    def untimed(_step: str, action: Callable[[], Any]) -> Any:
        return action()

    for _ in range(warmup):
        login.run(untimed)
        check_password(factories.USER_PASSWORD, encoded)

    seconds: dict[str, list[float]] = {"password": [], "otp": [], "total": [], "hash": []}

    def timed(step: str, action: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        result = action()
        seconds[step].append(time.perf_counter() - started)
        return result

    for _ in range(rounds):
        login.run(timed)
        seconds["total"].append(seconds["password"][-1] + seconds["otp"][-1])
        if not timed("hash", lambda: check_password(factories.USER_PASSWORD, encoded)):
            raise BenchError("check_password refused the user's own password")

    queries: dict[str, list[list[dict[str, str]]]] = {"password": [], "otp": []}

    def counted(step: str, action: Callable[[], Any]) -> Any:
        with CaptureQueriesContext(connection) as captured:
            result = action()
        queries[step].append(captured.captured_queries)
        return result

    for _ in range(count_rounds):
        login.run(counted)

    def median_ms(step: str) -> float:
        return statistics.median(seconds[step]) * 1000

    ratio = median_ms("total") / median_ms("hash")
    counts = {step: max(len(run) for run in runs) for step, runs in queries.items()}
    print(f"login_password_step_median: {median_ms('password'):.1f} ms")
    print(f"login_otp_step_median: {median_ms('otp'):.1f} ms")
    print(f"login_total_median: {median_ms('total'):.1f} ms")
    print(f"password_hash_verify_median: {median_ms('hash'):.1f} ms")
    print(f"login_to_hash_ratio: {ratio:.2f} x")
    print(f"login_password_step_queries: {counts['password']} queries")
    print(f"login_otp_step_queries: {counts['otp']} queries")
    print(f"argon2_memory_cost: {params['memory_cost']} KiB")
    print(f"argon2_time_cost: {params['time_cost']} passes")
    print(f"argon2_parallelism: {params['parallelism']} lanes")

    missed = []
    if ratio > GOAL_RATIO:
        missed.append(f"login_to_hash_ratio {ratio:.2f} > {GOAL_RATIO}")
    for step, name in (
        ("password", "login_password_step_queries"),
        ("otp", "login_otp_step_queries"),
    ):
        if counts[step] > GOAL_QUERIES:
            missed.append(f"{name} {counts[step]} > {GOAL_QUERIES}")
    print("bench_goal: " + (f"missed ({'; '.join(missed)})" if missed else "met"))
    sys.stdout.flush()

    _report_details(vendor=connection.vendor, rounds=rounds, queries=queries)
    return 0


def _report_details(
    *, vendor: str, rounds: int, queries: dict[str, list[list[dict[str, str]]]]
) -> None:
    """Context for the figures, on stderr so that stdout stays comparable between runs."""

    def err(line: str) -> None:
        print(f"# {line}", file=sys.stderr)

    show = os.environ.get("BENCH_SHOW_QUERIES", "") not in ("", "0")
    err(f"{vendor}, {rounds} timed rounds, queries counted in {len(queries['otp'])} more")
    for step, runs in queries.items():
        sizes = sorted({len(run) for run in runs})
        last = runs[-1]
        control = sum(1 for q in last if q["sql"].startswith(TRANSACTION_CONTROL))
        err(
            f"{step} step: {len(last)} queries = {len(last) - control} statements"
            f" + {control} transaction control"
            + (f" (counts varied: {sizes}; the maximum is reported)" if len(sizes) > 1 else "")
        )
        if show:
            for number, query in enumerate(last, 1):
                err(f" {number:2d}. {' '.join(query['sql'].split())[:200]}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"bench error: {error}", file=sys.stderr)
        sys.exit(2)
