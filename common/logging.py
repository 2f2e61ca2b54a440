"""Log formatters: one JSON object a line in production, plain text in development.

A caller passes structured fields as one dict under the `event` key of `extra`:

    logger.info("login", extra={"event": {"login_id": "B01234U01", "outcome": "success"}})

The JSON formatter writes those fields beside time, level, logger and message; the text
formatter appends them as `key=value`. Both blank an activation token found in a path
(/activate/<token>/, the form links once had): Django's request logger writes the path of
every 404, so an old or mistyped link would otherwise put its token in the log.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from typing import Any

EVENT_KEY = "event"

# The fields every line has; an event field of the same name is written as event_<name>,
# so that an event cannot pass itself off as another level, time or logger.
_CORE_FIELDS = ("time", "level", "logger", "message")

_ACTIVATION_TOKEN = re.compile(r"(/activate/)[^/\s?#\"']+")


def redact_secrets(text: str) -> str:
    """Return `text` with the token of any activation link path replaced."""
    return _ACTIVATION_TOKEN.sub(r"\1[redacted]", text)


def event_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Return the structured fields a caller passed under extra={"event": {...}}."""
    event = getattr(record, EVENT_KEY, None)
    return dict(event) if isinstance(event, dict) else {}


class JsonLinesFormatter(logging.Formatter):
    """Format a record as one line of JSON: time (ISO 8601, UTC), level, logger, message, event."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact_secrets(record.getMessage()),
        }
        for key, value in event_fields(record).items():
            entry[f"event_{key}" if key in _CORE_FIELDS else key] = value
        if record.exc_info:
            entry["exception"] = redact_secrets(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # json.dumps escapes newlines, so a message cannot forge a second log line.
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """Format a record as plain text, the event's fields appended as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = redact_secrets(super().format(record))
        fields = event_fields(record)
        if fields:
            line += " " + " ".join(
                f"{key}={json.dumps(value, ensure_ascii=False, default=str)}"
                for key, value in fields.items()
            )
        return line
