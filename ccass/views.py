"""The local outbox: a DEBUG-only page listing the emails the portal wrote."""

from __future__ import annotations

import datetime as dt
from email.utils import parsedate_to_datetime

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from common.mail import outbox_messages


def _require_debug() -> None:
    if not settings.DEBUG:
        raise Http404


def _sent_at(header: object) -> dt.datetime | None:
    """Return an email's Date header as an aware datetime (the portal writes it in UTC)."""
    if not header:
        return None
    try:
        sent = parsedate_to_datetime(str(header))
    except (TypeError, ValueError):
        return None
    # "-0000" parses to a naive datetime: RFC 5322's "UTC, zone unknown", which Django writes.
    return sent.replace(tzinfo=dt.UTC) if timezone.is_naive(sent) else sent


def outbox(request: HttpRequest) -> HttpResponse:
    _require_debug()
    rows = [
        {
            "name": name,
            "to": msg["To"],
            "subject": msg["Subject"],
            "date": _sent_at(msg["Date"]),
        }
        for name, msg in outbox_messages()
    ]
    return render(request, "outbox/list.html", {"rows": rows})


def outbox_message(request: HttpRequest, name: str) -> HttpResponse:
    _require_debug()
    for found, msg in outbox_messages():
        if found == name:
            text_part = msg.get_body(preferencelist=("plain",))
            text = text_part.get_content() if text_part is not None else ""
            return render(
                request,
                "outbox/message.html",
                {"msg": msg, "text": text, "name": name, "date": _sent_at(msg["Date"])},
            )
    raise Http404
