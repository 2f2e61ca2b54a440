"""Whether a request really came through the front proxy (nginx), and so whether the headers
it sets — the smartcard certificate and its verdict, the client's address — may be believed."""

from __future__ import annotations

from collections.abc import Collection

from django.conf import settings
from django.http import HttpRequest
from django.utils.crypto import constant_time_compare


def from_front_proxy(request: HttpRequest, *, proxies: Collection[str] | None = None) -> bool:
    """Return whether the request came from the front proxy, proven by the secret they share.

    An address alone proves nothing: every process on the web host connects from loopback
    too. The proxy sets PROXY_SECRET_HEADER to PROXY_SECRET on every request it forwards
    (and replaces whatever a client sent under that name); without a secret configured,
    no request is believed.
    """
    secret = settings.PROXY_SECRET
    addresses = settings.TRUSTED_PROXIES if proxies is None else proxies
    if not secret or request.META.get("REMOTE_ADDR") not in addresses:
        return False
    presented = request.META.get(settings.PROXY_SECRET_HEADER, "")
    return constant_time_compare(presented, secret)
