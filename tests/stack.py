"""The production stack as separate processes, for the stack test and `make bench`.

An SMTP sink (aiosmtpd, in this process) whose replies a test controls; a Redis of its own
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
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller

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


@dataclass
class Received:
    message_id: str
    to: str
    subject: str
    text: str
    at: float


@dataclass
class SinkHandler:
    """Accepts (250), refuses for a while (421), or holds DATA without answering."""

    mode: str = "accept"  # "accept", "421" or "hold"
    received: list[Received] = field(default_factory=list)
    refused: int = 0
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if self.mode == "421":
            with self.lock:
                self.refused += 1
            return "421 4.3.2 Service not available, closing transmission channel"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        if self.mode == "hold":
            # The message is here, the server has not said "250": a sender killed now has
            # not had it accepted.
            self.holding.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait)
            return "451 4.3.0 Held and dropped by the test"
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        body = parsed.get_body(preferencelist=("plain",))
        with self.lock:
            self.received.append(
                Received(
                    message_id=str(parsed["Message-ID"]),
                    to=",".join(envelope.rcpt_tos),
                    subject=str(parsed["Subject"]),
                    text=body.get_content() if body is not None else "",
                    at=time.monotonic(),
                )
            )
        return "250 Message accepted for delivery"

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


class SmtpSink:
    def __init__(self) -> None:
        self.handler = SinkHandler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.handler.release.set()
        self.controller.stop()


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
