"""`make run` starts the portal where the emails' links point."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _make_run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> str:
    # A stand-in for the virtualenv's python: it loads the portal's settings and says which
    # SITE_URL they read, instead of migrating, seeding and serving.
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / ".installed").touch()
    fake = tmp_path / "python"
    fake.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" -c "'
        "import django; django.setup(); from django.conf import settings; "
        "print('SITE_URL', settings.SITE_URL)\"\n"
    )
    fake.chmod(0o755)
    environ = {k: v for k, v in os.environ.items() if k != "SITE_URL"}
    environ.update(env or {}, DJANGO_SETTINGS_MODULE="ccass.settings")
    result = subprocess.run(
        ["make", "-s", "run", f"VENV={venv}", f"PY={fake}", *args],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return result.stdout


def test_make_run_on_another_port_sends_links_to_that_port(tmp_path):
    out = _make_run(tmp_path, "PORT=8101")
    assert "SITE_URL http://127.0.0.1:8101" in out.splitlines()
    assert "SITE_URL http://127.0.0.1:8000" not in out


def test_make_run_keeps_a_site_url_that_is_set(tmp_path):
    out = _make_run(tmp_path, "PORT=8101", env={"SITE_URL": "https://portal.example/"})
    assert "SITE_URL https://portal.example" in out.splitlines()
