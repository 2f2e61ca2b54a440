"""Log each Celery task's start and end as a structured event on logger `portal.tasks`.

The portal's tasks take ids only (STYLE: load by id), so their arguments are safe to log;
keyword arguments are not logged, in case one ever carries more.
"""

from __future__ import annotations

import logging
import logging.config
from typing import Any

from celery import Task, signals
from django.conf import settings

logger = logging.getLogger("portal.tasks")


def _fields(task: Task, task_id: str | None, args: Any) -> dict[str, Any]:
    return {"task": task.name, "task_id": task_id, "args": list(args or ())}


@signals.setup_logging.connect
def _use_portal_logging(**kwargs: Any) -> None:
    # Without a receiver here the worker replaces the root handlers with its own text
    # format; with one, its logs are formatted by LOGGING like the web's (JSON lines).
    # `--loglevel` is then ignored: LOGGING sets the levels.
    logging.config.dictConfig(settings.LOGGING)


@signals.task_prerun.connect
def _task_started(sender: Task, task_id: str, args: Any = (), **kwargs: Any) -> None:
    logger.info("task started", extra={"event": _fields(sender, task_id, args)})


@signals.task_success.connect
def _task_succeeded(sender: Task, **kwargs: Any) -> None:
    request = sender.request
    logger.info("task succeeded", extra={"event": _fields(sender, request.id, request.args)})


@signals.task_retry.connect
def _task_retried(sender: Task, request: Any, reason: Any, **kwargs: Any) -> None:
    fields = _fields(sender, request.id, request.args)
    cause = getattr(reason, "exc", None)
    fields["reason"] = str(reason)
    if cause is not None:
        fields["exception"] = type(cause).__name__
    logger.warning("task retry", extra={"event": fields})


@signals.task_failure.connect
def _task_failed(
    sender: Task, task_id: str, exception: BaseException, args: Any = (), **kwargs: Any
) -> None:
    fields = _fields(sender, task_id, args)
    fields["exception"] = type(exception).__name__
    fields["error"] = str(exception)
    logger.error("task failed", extra={"event": fields})
