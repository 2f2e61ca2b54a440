"""The Celery application; tasks run in-process unless REDIS_URL names a broker."""

from __future__ import annotations

import os

from celery import Celery

from ccass import task_logs  # noqa: F401 - connects the task lifecycle logs

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ccass.settings")

app = Celery("ccass")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
