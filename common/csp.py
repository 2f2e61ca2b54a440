"""django-csp's middleware, with the settings' policy built once a process.

The portal's policy is in settings only: no view changes it (csp_update, csp_replace,
csp_exempt) and no template asks for a nonce. From the same parts django-csp builds the
same header, yet it builds it again for every response: two policies (enforced and
report-only), each copied part by part and joined, about 0.1 ms a response, four times a
login. Here a response with no parts of its own, to a request that took no nonce, gets the
header built once from settings, under django-csp's own rules for when a header is set. Any
other response is built by django-csp, as before.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.middleware import CheckableLazyObject
from csp.middleware import CSPMiddleware as DjangoCSPMiddleware
from csp.utils import build_policy
from django.conf import settings
from django.core.signals import setting_changed

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponseBase

# What a view or a decorator puts on a response to change its policy (django-csp).
_OWN_PARTS = (
    "_csp_config",
    "_csp_update",
    "_csp_replace",
    "_csp_config_ro",
    "_csp_update_ro",
    "_csp_replace_ro",
    "_csp_exempt",
    "_csp_exempt_ro",
)


@functools.cache
def _settings_policies() -> tuple[str, str]:
    """The enforced and the report-only header built from settings alone. Settings change
    only with a new process, or in a test (override_settings), which forgets these."""
    return build_policy(), build_policy(report_only=True)


def _forget(*, setting: str, **_kwargs: Any) -> None:
    if setting.startswith("CONTENT_SECURITY_POLICY"):
        _settings_policies.cache_clear()


setting_changed.connect(_forget, dispatch_uid="common-csp-forget")


class CSPMiddleware(DjangoCSPMiddleware):
    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if getattr(request, "_csp_nonce", None) is not None or any(
            hasattr(response, name) for name in _OWN_PARTS
        ):
            return super().process_response(request, response)
        # Exactly what django-csp does with no parts of the response's own: the debug pages
        # and excluded prefixes are checked by it, so hand those to it as well.
        if self._has_exceptions():
            return super().process_response(request, response)
        policy, report_only = _settings_policies()
        if policy and HEADER not in response:
            response[HEADER] = policy
        if report_only and HEADER_REPORT_ONLY not in response:
            response[HEADER_REPORT_ONLY] = report_only
        # As django-csp: a nonce asked for after the header is written is an error.
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)  # type: ignore[attr-defined]
        return response

    @staticmethod
    def _has_exceptions() -> bool:
        policies = (
            getattr(settings, "CONTENT_SECURITY_POLICY", None) or {},
            getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None) or {},
        )
        return settings.DEBUG or any(policy.get("EXCLUDE_URL_PREFIXES") for policy in policies)
