"""The local outbox: a DEBUG-only page listing the emails the portal wrote."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from common.mail import outbox_messages


def _require_debug() -> None:
    if not settings.DEBUG:
        raise Http404


def outbox(request: HttpRequest) -> HttpResponse:
    _require_debug()
    rows = [
        {"name": name, "to": msg["To"], "subject": msg["Subject"], "date": msg["Date"]}
        for name, msg in outbox_messages()
    ]
    return render(request, "outbox/list.html", {"rows": rows})


def outbox_message(request: HttpRequest, name: str) -> HttpResponse:
    _require_debug()
    for found, msg in outbox_messages():
        if found == name:
            text_part = msg.get_body(preferencelist=("plain",))
            text = text_part.get_content() if text_part is not None else ""
            return render(request, "outbox/message.html", {"msg": msg, "text": text, "name": name})
    raise Http404
