"""The Content-Security-Policy header, built once from settings (common.csp), is the one
django-csp builds; a response or request with parts of its own is built by django-csp."""

from __future__ import annotations

import pytest
from csp.constants import HEADER, HEADER_REPORT_ONLY, NONCE
from csp.decorators import csp_exempt, csp_update
from csp.exceptions import CSPNonceError
from csp.middleware import CSPMiddleware as DjangoCSPMiddleware
from django.http import HttpResponse
from django.test import RequestFactory

from common.csp import CSPMiddleware

REPORT_ONLY = {"DIRECTIVES": {"default-src": ["'none'"], "report-uri": ["/csp-report/"]}}


def _headers(middleware_class, view, *, nonce: bool = False) -> dict[str, str | None]:
    request = RequestFactory().get("/anywhere/")
    middleware = middleware_class(view)
    middleware.process_request(request)
    if nonce:
        str(request.csp_nonce)  # a template asked for it
    response = middleware.process_response(request, view(request))
    return {name: response.get(name) for name in (HEADER, HEADER_REPORT_ONLY)}


def _page(request):
    return HttpResponse("page")


@pytest.fixture(autouse=True)
def _report_only_too(settings):
    settings.CONTENT_SECURITY_POLICY_REPORT_ONLY = REPORT_ONLY


def test_the_settings_policy_is_the_one_django_csp_builds():
    ours = _headers(CSPMiddleware, _page)
    assert ours == _headers(DjangoCSPMiddleware, _page)
    assert "default-src 'self'" in ours[HEADER] and "frame-ancestors 'none'" in ours[HEADER]
    assert ours[HEADER_REPORT_ONLY].startswith("default-src 'none'")


def test_a_change_of_the_settings_policy_is_followed(settings):
    _headers(CSPMiddleware, _page)  # built and kept
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'self'", "cdn.example"]}}
    assert _headers(CSPMiddleware, _page)[HEADER] == "default-src 'self' cdn.example"


def test_a_view_s_own_policy_and_a_nonce_are_built_by_django_csp(settings):
    updated = csp_update({"img-src": ["images.example"]})(_page)
    assert "images.example" in _headers(CSPMiddleware, updated)[HEADER]
    assert _headers(CSPMiddleware, updated) == _headers(DjangoCSPMiddleware, updated)
    assert _headers(CSPMiddleware, csp_exempt()(_page))[HEADER] is None
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"script-src": ["'self'", NONCE]}}
    assert _headers(CSPMiddleware, _page) == _headers(DjangoCSPMiddleware, _page)
    assert "nonce" not in _headers(CSPMiddleware, _page)[HEADER]
    assert "script-src 'self' 'nonce-" in _headers(CSPMiddleware, _page, nonce=True)[HEADER]


def test_a_nonce_asked_for_after_the_header_is_written_is_refused():
    request = RequestFactory().get("/anywhere/")
    middleware = CSPMiddleware(_page)
    middleware.process_request(request)
    middleware.process_response(request, _page(request))
    with pytest.raises(CSPNonceError):
        str(request.csp_nonce)
