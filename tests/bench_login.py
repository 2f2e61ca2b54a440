"""Launch-morning logins, for `make bench` (tests/bench.py runs this part as `login`).

1. In-process, through the real views with django.test.Client: full logins (GET the login
   form, POST the password, GET the code form, POST the TOTP code) by distinct users, at 500
   users and again at 50,000 (BENCH_LOGIN_USERS), spread over 1,000 firms. Each login's time
   outside the password hash is its total minus the time the hasher's verify() took in it
   (timed by wrapping the production hasher). The queries of a full login are counted in
   rounds that are not timed.

2. Over HTTP, on PostgreSQL only: the portal under gunicorn (deploy/gunicorn.conf.py, 2
   workers) on the bench database with the 50,000 users, and a load generator in this
   process (threads, one connection per request as gunicorn's sync workers close each)
   running full logins of distinct users for BENCH_HTTP_SECONDS (60). Its own CPU time per
   login is printed: it runs on the same two cores as the portal. Beside it, the bare hash
   rate: two processes doing nothing but check_password() with the same parameters.

The TOTP codes come from an RFC 6238 implementation here (hmac, SHA-1, 30 s, 6 digits) over
the device keys the bench gave the users, not from django-otp: an independent client.
"""

from __future__ import annotations

import gc
import hashlib
import hmac
import http.client
import multiprocessing
import os
import queue
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
FIRMS = 1_000
SCOPE = "online"
TERMINAL = "ccass"
LOGIN_PATH = f"/login/{TERMINAL}/otp/{SCOPE}/"
VERIFY_PATH = f"/login/{TERMINAL}/otp/{SCOPE}/verify/"
PASSWORD = "a-long-enough-passphrase-1"
GOAL_NONHASH_MS = 8.0
GOAL_QUERIES = 16
GOAL_HTTP_RATE = 30.0
GOAL_HTTP_TO_HASH = 0.8
GOAL_P95_MS = 500.0


class BenchFailure(Exception):
    """The login bench cannot give a meaningful answer."""


def device_key(login_id: str) -> str:
    """The hex TOTP key the bench gives a user: derived from the login ID, 20 bytes."""
    return hashlib.sha1(f"bench-totp:{login_id}".encode()).hexdigest()  # noqa: S324 - a key, not a hash


def totp_code(key_hex: str, at: float | None = None) -> str:
    """RFC 6238 with SHA-1, a 30-second step from 0 and six digits, as authenticator apps do."""
    counter = int((time.time() if at is None else at) // 30)
    digest = hmac.new(bytes.fromhex(key_hex), struct.pack(">Q", counter), "sha1").digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


# Population ------------------------------------------------------------------------------


@dataclass
class Population:
    """1,000 firms on CCASS and their users, each with a confirmed authenticator app."""

    login_ids: list[str] = field(default_factory=list)
    encoded: str = ""
    used: set[str] = field(default_factory=set)

    def grow(self, total: int) -> None:
        """Add users (round-robin over the firms) until there are `total`."""
        from django.contrib.auth.hashers import make_password
        from django.utils import timezone
        from django_otp.plugins.otp_totp.models import TOTPDevice

        from participants.models import Participant, ParticipantKind, Terminal, User

        terminal = Terminal.objects.get(code="CCASS")
        if not self.encoded:
            # One production hash shared by every user: hashing 50,000 would take minutes.
            self.encoded = make_password(PASSWORD)
            Participant.objects.bulk_create(
                Participant(
                    participant_id=f"L{n:05d}",
                    name=f"Launch Morning {n} Limited",
                    kind=ParticipantKind.CP,
                    terminal=terminal,
                )
                for n in range(FIRMS)
            )
        firms = list(
            Participant.objects.filter(participant_id__startswith="L")
            .order_by("participant_id")
            .values_list("pk", "participant_id")
        )
        now = timezone.now()
        start = len(self.login_ids)
        new_ids = []
        for n in range(start, total):
            pk, participant_id = firms[n % FIRMS]
            new_ids.append((pk, f"{participant_id}U{n // FIRMS:04d}"))
        for offset in range(0, len(new_ids), 5_000):
            chunk = new_ids[offset : offset + 5_000]
            users = User.objects.bulk_create(
                User(
                    login_id=login_id,
                    participant_id=pk,
                    password=self.encoded,
                    email=f"{login_id.lower()}@launch.example",
                    two_factor_ready_at=now,
                )
                for pk, login_id in chunk
            )
            if users and users[0].pk is None:  # SQLite before 3.35 gives no ids back
                by_id = dict(
                    User.objects.filter(
                        login_id__in=[login_id for _pk, login_id in chunk]
                    ).values_list("login_id", "pk")
                )
                for user in users:
                    user.pk = by_id[user.login_id]
            TOTPDevice.objects.bulk_create(
                TOTPDevice(
                    user_id=user.pk,
                    name="Authenticator app",
                    key=device_key(user.login_id),
                    confirmed=True,
                )
                for user in users
            )
        self.login_ids += [login_id for _pk, login_id in new_ids]

    def take(self, count: int) -> list[str]:
        """`count` users not taken before, spread over the whole population: a code is
        accepted once per user and step, so each login is a user's first."""
        unused = [login_id for login_id in self.login_ids if login_id not in self.used]
        if len(unused) < count:
            raise BenchFailure(f"{count} logins wanted, {len(unused)} users left")
        step = max(1, len(unused) // count)
        taken = unused[::step][:count]
        self.used.update(taken)
        return taken


# In-process -------------------------------------------------------------------------------


class HashClock:
    """Time spent in the production hasher's verify(), wrapped for the bench's duration."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    @contextmanager
    def installed(self) -> Iterator[HashClock]:
        from django.contrib.auth.hashers import get_hasher

        hasher_class = type(get_hasher("default"))
        original = hasher_class.verify
        clock = self

        def verify(hasher: Any, password: str, encoded: str) -> bool:
            started = time.perf_counter()
            try:
                return bool(original(hasher, password, encoded))
            finally:
                clock.seconds += time.perf_counter() - started
                clock.calls += 1

        hasher_class.verify = verify  # type: ignore[method-assign]
        try:
            yield self
        finally:
            hasher_class.verify = original  # type: ignore[method-assign]


def full_login_in_process(login_id: str) -> None:
    """A full login through the portal's WSGI application, in this process."""
    full_login(WsgiBrowser(), login_id)


@dataclass
class InProcess:
    nonhash_ms: list[float]
    hash_ms: list[float]
    total_ms: list[float]
    queries: list[int]
    per_request_queries: list[list[int]]


def in_process_logins(users: list[str], counted: list[str]) -> InProcess:
    """Time a full login for each of `users`; count the queries of each of `counted`."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    result = InProcess([], [], [], [], [])
    clock = HashClock()
    # One collection before the logins, none between them: a full collection walks every
    # object of the process and leaves the CPU caches cold, which added ~1.5 ms to the login
    # after it here, and a worker serving logins never runs one per request. The collector's
    # own runs, triggered by allocation as under gunicorn, fall where they fall.
    gc.collect()
    with clock.installed():
        for login_id in users:
            before = clock.seconds
            started = time.perf_counter()
            full_login_in_process(login_id)
            total = time.perf_counter() - started
            hashed = clock.seconds - before
            result.total_ms.append(total * 1000)
            result.hash_ms.append(hashed * 1000)
            result.nonhash_ms.append((total - hashed) * 1000)
        for login_id in counted:
            with CaptureQueriesContext(connection) as captured:
                full_login_in_process(login_id)
            result.queries.append(len(captured.captured_queries))
    return result


# The floor: what any login costs here before the portal does anything ------------------

# The statements a full login cannot do without, with the session in the database, each a
# round trip: the password step's BEGIN, user (locked), throttle, new session and COMMIT;
# the code form's session read; the code step's session read, BEGIN, device (locked),
# device update (the code used up), user update (last login), audit row, session move and
# COMMIT.
FLOOR_STATEMENTS = 14


@dataclass
class Floor:
    request_ms: float
    statement_ms: float
    # What rendering the login form would cost. A login renders no page: the login and
    # code forms are rendered once a process and handed to each visitor (common.pages).
    render_ms: float

    @property
    def login_ms(self) -> float:
        """Four requests through Django and the portal's middleware and the statements a
        login must send: before any of the login's own work."""
        return 4 * self.request_ms + FLOOR_STATEMENTS * self.statement_ms


def _median_of(action: Any, rounds: int) -> float:
    for _ in range(20):
        action()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def floor(rounds: int = 300) -> Floor:
    """Measure the parts of a login that Django, the database and the templates impose."""
    from django.contrib.auth.models import AnonymousUser
    from django.db import connection
    from django.template.loader import render_to_string
    from django.test import RequestFactory

    from authn.forms import PasswordLoginForm
    from migration.phases import entry_terminal
    from participants.models import Scope

    browser = WsgiBrowser()
    # A view that does nothing, behind every middleware a login page passes through.
    request_ms = _median_of(lambda: browser.request("GET", "/healthz"), rounds)

    def statement() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()

    statement_ms = _median_of(statement, rounds)
    terminal = entry_terminal(TERMINAL)
    factory = RequestFactory()

    def render() -> None:
        request = factory.get(LOGIN_PATH)
        request.user = AnonymousUser()
        request.session = {}  # type: ignore[assignment]
        render_to_string(
            "authn/login_password.html",
            {
                "scope": Scope(SCOPE),
                "terminal": terminal,
                "form": PasswordLoginForm(),
                "action": LOGIN_PATH,
            },
            request=request,
        )

    render_ms = _median_of(render, rounds)
    return Floor(request_ms=request_ms, statement_ms=statement_ms, render_ms=render_ms)


# Over HTTP ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _database_url(db: dict[str, Any]) -> str:
    user = db.get("USER") or "postgres"
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


@contextmanager
def gunicorn(database_url: str, workers: int) -> Iterator[tuple[int, Path]]:
    """The portal under gunicorn with the production settings but plain HTTP on loopback."""
    port = _free_port()
    folder = Path(tempfile.mkdtemp(prefix="ccass-bench-http-"))
    log = folder / "gunicorn.log"
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("TESTING", "DJANGO_SETTINGS_MODULE", "REDIS_URL")
    }
    env.update(
        DATABASE_URL=database_url,
        DEBUG="false",
        SECRET_KEY="bench-" + os.urandom(16).hex(),
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false",
        GUNICORN_BIND=f"127.0.0.1:{port}",
        GUNICORN_WORKERS=str(workers),
        MEDIA_ROOT=str(folder / "media"),
        LOG_LEVEL=os.environ.get("LOG_LEVEL", "INFO"),
    )
    static = folder / "static"
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=ROOT,
        env={**env, "STATIC_ROOT": str(static)},
        check=True,
    )
    env["STATIC_ROOT"] = str(static)
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("gunicorn")),
                "-c",
                "deploy/gunicorn.conf.py",
                "ccass.wsgi",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise BenchFailure(f"gunicorn exited: {log.read_text()[-2000:]}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchFailure(f"gunicorn did not answer: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield port, log
        errors = [line for line in log.read_text().splitlines() if "Traceback" in line]
        if errors:
            print(f"# gunicorn log ends: {log.read_text()[-1500:]}", file=sys.stderr)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


_COOKIE = re.compile(r"^\s*([^=;\s]+)=([^;]*)")


class Browser:
    """A minimal browser for one login: its cookies, and a new connection per request."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, str]:
        headers = {"Host": "127.0.0.1"}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        status, response_headers = self._send(method, path, headers, body)
        location = ""
        for name, value in response_headers:
            if name.lower() == "set-cookie":
                match = _COOKIE.match(value)
                if match:
                    self.cookies[match.group(1)] = match.group(2)
            elif name.lower() == "location":
                location = value
        return status, location

    def _send(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, list[tuple[str, str]]]:
        # HTTP/1.1 written and read by hand: http.client parses headers with the email
        # package, which cost the load generator more CPU per login than a page render
        # costs the portal, on the two cores they share. gunicorn's sync workers close
        # each connection after its response, so the response ends where the socket does.
        lines = [f"{method} {path} HTTP/1.1", "Connection: close"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        chunks = []
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(request)
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        head, separator, _body = b"".join(chunks).partition(b"\r\n\r\n")
        if not separator:
            raise http.client.IncompleteRead(head)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise http.client.BadStatusLine(status_line)
        response_headers = []
        for line in header_lines:
            name, _colon, value = line.partition(":")
            response_headers.append((name.strip(), value.strip()))
        return int(parts[1]), response_headers


class WsgiBrowser(Browser):
    """The same browser calling the portal's WSGI application in this process, as gunicorn's
    worker does, without a socket: what a login costs the portal itself."""

    def __init__(self) -> None:
        super().__init__(port=0)
        self.application = _wsgi_application()

    def _send(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, list[tuple[str, str]]]:
        import io

        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body or b""),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "CONTENT_LENGTH": str(len(body or b"")),
        }
        for name, value in headers.items():
            key = name.upper().replace("-", "_")
            environ[key if key == "CONTENT_TYPE" else f"HTTP_{key}"] = value
        answer: dict[str, Any] = {}

        def start_response(status: str, response_headers: list[tuple[str, str]], *_: Any) -> None:
            answer["status"] = int(status.split()[0])
            answer["headers"] = response_headers

        chunks = self.application(environ, start_response)
        try:
            for _chunk in chunks:
                pass
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        return answer["status"], answer["headers"]


_application: Any = None


def _wsgi_application() -> Any:
    global _application  # noqa: PLW0603 - one handler per process, as under gunicorn
    if _application is None:
        from django.core.handlers.wsgi import WSGIHandler

        _application = WSGIHandler()
    return _application


def full_login(browser: Browser, login_id: str) -> None:
    """The four requests of a full login, as a browser makes them, each answer checked."""
    status, _ = browser.request("GET", LOGIN_PATH)
    if status != 200:
        raise BenchFailure(f"GET login form: {status}")
    csrf = browser.cookies.get("csrftoken", "")
    status, location = browser.request(
        "POST",
        LOGIN_PATH,
        {"login_id": login_id, "password": PASSWORD, "csrfmiddlewaretoken": csrf},
    )
    if status != 302 or urlsplit(location).path != VERIFY_PATH:
        raise BenchFailure(f"{login_id}: password step: {status} {location}")
    status, _ = browser.request("GET", VERIFY_PATH)
    if status != 200:
        raise BenchFailure(f"{login_id}: GET code form: {status}")
    status, location = browser.request(
        "POST",
        VERIFY_PATH,
        {"code": totp_code(device_key(login_id)), "csrfmiddlewaretoken": csrf},
    )
    if status != 302 or "/login/" in location:
        raise BenchFailure(f"{login_id}: code step: {status} {location}")


def http_login(port: int, login_id: str) -> None:
    full_login(Browser(port), login_id)


@dataclass
class LoadResult:
    seconds: float
    latencies_ms: list[float]
    errors: list[str]
    cpu_seconds: float

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def load(port: int, users: list[str], *, seconds: float, concurrency: int) -> LoadResult:
    """Full logins of distinct users by `concurrency` threads for `seconds`."""
    todo: queue.SimpleQueue[str] = queue.SimpleQueue()
    for login_id in users:
        todo.put(login_id)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker() -> None:
        while time.monotonic() < stop:
            try:
                login_id = todo.get_nowait()
            except queue.Empty:
                with lock:
                    errors.append("ran out of distinct users")
                return
            started = time.perf_counter()
            try:
                http_login(port, login_id)
            except (BenchFailure, OSError, http.client.HTTPException) as error:
                with lock:
                    errors.append(f"{login_id}: {error}")
                continue
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)

    cpu = time.process_time()
    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LoadResult(
        seconds=time.monotonic() - started,
        latencies_ms=latencies,
        errors=errors,
        cpu_seconds=time.process_time() - cpu,
    )


def _hash_worker(args: tuple[str, float]) -> int:
    encoded, seconds = args
    import django

    django.setup()
    from django.contrib.auth.hashers import check_password

    count = 0
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        if not check_password(PASSWORD, encoded):
            raise BenchFailure("check_password refused the bench's password")
        count += 1
    return count


def bare_hash_rate(encoded: str, *, processes: int = 2, seconds: float = 15.0) -> float:
    """Hashes a second on `processes` processes doing nothing else."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes) as pool:
        pool.map(_hash_worker, [(encoded, 1.0)] * processes)  # warm up: imports, first hash
        started = time.monotonic()
        counts = pool.map(_hash_worker, [(encoded, seconds)] * processes)
        elapsed = time.monotonic() - started
    return sum(counts) / elapsed


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
