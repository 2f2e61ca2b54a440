"""The production stack as separate processes, for the stack test and `make bench`.

An SMTP sink (in this process) whose replies a test controls; a Redis of its own
(so it can be stopped and started); gunicorn, Celery worker and beat started from the
deploy files with the settings an operator would set, against a PostgreSQL database.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import overload

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, timeout: float, *, alive: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and alive.poll() is not None:
            raise RuntimeError(f"the process exited with {alive.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on port {port} within {timeout}s")


# The SMTP sink ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    """A message as the sink accepted it; parsed only when a test reads its headers or text,
    so that the sink's own cost per message stays small beside the sender's."""

    to: str
    raw: bytes
    at: float

    @property
    def parsed(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def message_id(self) -> str:
        return str(self.parsed["Message-ID"])

    @property
    def subject(self) -> str:
        return str(self.parsed["Subject"])

    @property
    def text(self) -> str:
        body = self.parsed.get_body(preferencelist=("plain",))
        return body.get_content() if body is not None else ""


class Messages(Sequence[Received]):
    """The messages received, kept as plain tuples: the garbage collector stops tracking a
    tuple of strings, bytes and numbers, so a sink holding 50,000 messages does not make
    each of this process's collections walk them all (it did, at half the sink's cost)."""

    def __init__(self) -> None:
        self._kept: list[tuple[str, bytes, float]] = []

    def append(self, message: Received) -> None:
        self._kept.append((message.to, message.raw, message.at))

    def clear(self) -> None:
        self._kept.clear()

    def __len__(self) -> int:
        return len(self._kept)

    @overload
    def __getitem__(self, index: int) -> Received: ...

    @overload
    def __getitem__(self, index: slice) -> list[Received]: ...

    def __getitem__(self, index: int | slice) -> Received | list[Received]:
        if isinstance(index, slice):
            return [Received(*kept) for kept in self._kept[index]]
        return Received(*self._kept[index])


@dataclass
class SinkHandler:
    """Accepts (250), refuses for a while (421), or holds DATA without answering."""

    mode: str = "accept"  # "accept", "421" or "hold"
    received: Messages = field(default_factory=Messages)
    refused: int = 0
    # Addresses refused for good (550), and whether the server offers PIPELINING.
    unknown: set[str] = field(default_factory=set)
    pipelining: bool = True
    # Messages whose MAIL, RCPT and DATA came in one read: sent pipelined.
    pipelined: int = 0
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def recipient(self, address: str) -> bytes:
        """The reply to RCPT TO."""
        if address in self.unknown:
            return b"550 5.1.1 No such user here"
        if self.mode == "421":
            with self.lock:
                self.refused += 1
            return b"421 4.3.2 Service not available, closing transmission channel"
        return b"250 OK"

    def message(self, recipients: list[str], raw: bytes) -> bytes | None:
        """Take a message; return the reply, or None while the test holds it."""
        if self.mode == "hold":
            return None
        with self.lock:
            self.received.append(Received(to=",".join(recipients), raw=raw, at=time.monotonic()))
        return b"250 Message accepted for delivery"

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [message for message in self.received if message.to == address]

    def wait_for(self, address: str, timeout: float, count: int = 1) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.to(address)
            if len(found) >= count:
                return found
            time.sleep(0.1)
        raise TimeoutError(f"{count} email(s) to {address} not received within {timeout}s")


class _SmtpSession(asyncio.Protocol):
    """One SMTP conversation (RFC 5321, what smtplib and Django say): EHLO/HELO, MAIL,
    RCPT, DATA with dot-unstuffing, RSET, NOOP, QUIT. Lines are split by hand and a message
    is kept as bytes: the sink's cost per message stays a small part of the sender's."""

    def __init__(self, handler: SinkHandler, open_sessions: set[_SmtpSession]) -> None:
        self.handler = handler
        self.open_sessions = open_sessions
        self.buffer = bytearray()
        self.read: list[bytes] = []  # the verbs of the commands in the latest read
        self.recipients: list[str] = []
        self.in_data = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.open_sessions.add(self)
        self.reply(b"220 sink ESMTP")

    def connection_lost(self, exc: Exception | None) -> None:
        self.open_sessions.discard(self)

    def reply(self, line: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(line + b"\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.read = []
        while self.transport is not None:
            if self.in_data:
                # The message ends at a line holding one dot.
                if self.buffer.startswith(b".\r\n"):
                    end, skip = 0, 3
                else:
                    end = self.buffer.find(b"\r\n.\r\n")
                    if end < 0:
                        return
                    end, skip = end + 2, 3
                raw = bytes(self.buffer[:end]).replace(b"\r\n..", b"\r\n.")
                if raw.startswith(b".."):
                    raw = raw[1:]
                del self.buffer[: end + skip]
                self.in_data = False
                self.deliver(raw)
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            line = bytes(self.buffer[:end])
            del self.buffer[: end + 2]
            self.read.append(line[:4].upper())
            self.command(line)

    def command(self, line: bytes) -> None:
        verb = line[:4].upper()
        if verb == b"EHLO":
            offered = b"250-PIPELINING\r\n" if self.handler.pipelining else b""
            self.reply(b"250-sink\r\n" + offered + b"250-8BITMIME\r\n250-SMTPUTF8\r\n250 HELP")
        elif verb in (b"HELO", b"NOOP"):
            self.reply(b"250 OK")
        elif verb == b"MAIL":
            self.recipients = []
            self.reply(b"250 OK")
        elif verb == b"RCPT":
            raw = line.split(b":", 1)[1].split(b">", 1)[0].strip().lstrip(b"<")
            address = raw.decode("utf-8", "replace")
            answer = self.handler.recipient(address)
            if answer.startswith(b"250"):
                self.recipients.append(address)
            self.reply(answer)
        elif verb == b"DATA":
            if not self.recipients:
                self.reply(b"503 5.5.1 RCPT first")
                return
            if self.read[-3:-1] == [b"MAIL", b"RCPT"]:
                with self.handler.lock:
                    self.handler.pipelined += 1
            self.in_data = True
            self.reply(b"354 End data with <CR><LF>.<CR><LF>")
        elif verb == b"RSET":
            self.recipients = []
            self.reply(b"250 OK")
        elif verb == b"QUIT":
            self.reply(b"221 Bye")
            assert self.transport is not None
            self.transport.close()
        else:
            self.reply(b"500 5.5.2 Command not recognised")

    def deliver(self, raw: bytes) -> None:
        recipients, self.recipients = self.recipients, []
        answer = self.handler.message(recipients, raw)
        if answer is not None:
            self.reply(answer)
            return
        # Held: the message is here, the server has not said "250". A sender killed now
        # has not had it accepted. Released, the message is dropped with a 451.
        self.handler.holding.set()
        waited = asyncio.get_running_loop().run_in_executor(None, self.handler.release.wait)
        waited.add_done_callback(lambda _: self.reply(b"451 4.3.0 Held and dropped by the test"))


class SmtpSink:
    """An SMTP server on a free port, served by an event loop in a thread of this process."""

    def __init__(self) -> None:
        self.handler = SinkHandler()
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.sessions: set[_SmtpSession] = set()

    def __enter__(self) -> SmtpSink:
        self.thread.start()
        serving = asyncio.run_coroutine_threadsafe(self._serve(), self.loop)
        self.server = serving.result(10)
        return self

    async def _serve(self) -> asyncio.Server:
        return await self.loop.create_server(
            lambda: _SmtpSession(self.handler, self.sessions), "127.0.0.1", self.port
        )

    def __exit__(self, *exc: object) -> None:
        self.handler.release.set()

        async def close() -> None:
            self.server.close()
            for session in list(self.sessions):
                if session.transport is not None:
                    session.transport.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


# Processes --------------------------------------------------------------------------------


class Process:
    """A child process whose output goes to a log file, stopped with SIGTERM (or killed)."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.log = log
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        with self.log.open("ab") as sink:
            self.popen = subprocess.Popen(
                self.command, cwd=ROOT, env=self.env, stdout=sink, stderr=subprocess.STDOUT
            )
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process dies where it stands, as in a crash."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:] if self.log.exists() else ""


def redis_server(port: int, folder: Path) -> Process:
    command = [
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(folder),
    ]  # fmt: skip
    return Process("redis", command, dict(os.environ), folder / "redis.log")


def portal_env(**settings: str) -> dict[str, str]:
    """The environment of the portal's processes: this one's, less test switches, plus these."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"CELERY_TASK_ALWAYS_EAGER", "TESTING", "PYTEST_CURRENT_TEST"}
    }
    env.update(DJANGO_SETTINGS_MODULE="ccass.settings", PYTHONUNBUFFERED="1", **settings)
    return env


def gunicorn(env: dict[str, str], log: Path) -> Process:
    command = [str(VENV_BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "ccass.wsgi"]
    return Process("gunicorn", command, env, log)


def celery_worker(env: dict[str, str], log: Path, name: str, *, solo: bool = True) -> Process:
    """A worker: one process (solo, so that a SIGKILL kills the worker whole), or as deployed
    (deploy/systemd/ccass-worker.service: prefork, four processes)."""
    pool = ["--pool=solo"] if solo else ["--concurrency=4"]
    command = [
        sys.executable, "-m", "celery", "-A", "ccass", "worker", *pool,
        "-n", name, "--without-heartbeat", "--without-gossip", "--without-mingle",
        "--loglevel=INFO",
    ]  # fmt: skip
    return Process("worker", command, env, log)


def celery_beat(env: dict[str, str], folder: Path) -> Process:
    command = [
        sys.executable, "-m", "celery", "-A", "ccass", "beat", "--loglevel=INFO",
        "-s", str(folder / "beat-schedule"), "--pidfile=",
    ]  # fmt: skip
    return Process("beat", command, env, folder / "beat.log")
