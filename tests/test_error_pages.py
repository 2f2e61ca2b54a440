"""Error pages in the portal's layout and language, with a way back, with DEBUG off."""

from __future__ import annotations

from unittest import mock

import pytest
from django.core.exceptions import PermissionDenied, SuspiciousOperation
from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.test import Client
from django.urls import include, path

# The handlers must be in the URLconf module the tests use: this one.
from ccass.urls import handler400, handler403, handler404, handler500  # noqa: F401
from ccass.urls import urlpatterns as portal_urlpatterns

pytestmark = pytest.mark.django_db

CHINESE = {"HTTP_ACCEPT_LANGUAGE": "zh-hant"}
LANDING_LINK = 'href="/"'
DMS_LINK = 'href="/dms/"'


def _raise(exception: Exception):
    def view(request):
        raise exception

    return view


def _database_down(request):
    raise OperationalError("could not connect to server")


# This module is the URLconf of the tests below: the portal's URLs and handlers, and views
# that fail, in and outside the DMS.
urlpatterns = [
    path("broken/", _database_down),
    path("dms/broken/", _database_down),
    path("suspicious/", _raise(SuspiciousOperation("bad"))),
    path("dms/forbidden-here/", _raise(PermissionDenied())),
    path("", include(portal_urlpatterns)),
]


@pytest.fixture(autouse=True)
def _production_errors(settings, client):
    settings.DEBUG = False
    settings.ROOT_URLCONF = __name__
    client.raise_request_exception = False


def page(response, status: int) -> str:
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    return response.content.decode()


@pytest.mark.parametrize(
    ("language", "heading", "brand"),
    [
        ({}, "Page not found", "HKEX Terminal Access"),
        (CHINESE, "找不到頁面", "香港交易所終端機登入"),
    ],
)
def test_404_in_the_portals_layout_and_language(client, language, heading, brand):
    html = page(client.get("/no-such-page/", **language), 404)
    assert f"<h1>{heading}</h1>" in html
    assert brand in html
    assert "portal.css" in html
    assert LANDING_LINK in html
    assert DMS_LINK not in html
    assert "Not Found" not in html
    lang = "zh-hant" if language else "en"
    assert f'<html lang="{lang}">' in html
    # The same page for every address: no form that carries the path or a fresh token.
    assert "csrfmiddlewaretoken" not in html
    assert html == page(client.get("/another-missing-page/", **language), 404)


def test_404_from_a_dms_address_leads_back_to_the_dms(client):
    html = page(client.get("/dms/no-such-page/"), 404)
    assert DMS_LINK in html
    assert LANDING_LINK in html


def test_404_from_a_dms_address_in_chinese_with_the_language_cookie(client, settings):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hant"
    html = page(client.get("/dms/no-such-page/"), 404)
    assert "返回保安管理功能" in html
    assert DMS_LINK in html


@pytest.mark.parametrize(
    ("language", "heading"), [({}, "Something went wrong"), (CHINESE, "發生錯誤")]
)
def test_500_shows_with_the_database_down(client, language, heading):
    with mock.patch.object(
        BaseDatabaseWrapper, "cursor", side_effect=OperationalError("database is down")
    ):
        html = page(client.get("/broken/", **language), 500)
    assert f"<h1>{heading}</h1>" in html
    assert LANDING_LINK in html
    assert DMS_LINK not in html


def test_500_in_the_dms_leads_back_to_the_dms(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        html = page(client.get("/dms/broken/"), 500)
    assert DMS_LINK in html
    # No form that could only be refused: the page has no CSRF token to give it.
    assert "csrfmiddlewaretoken" not in html


@pytest.mark.parametrize(("language", "heading"), [({}, "Bad request"), (CHINESE, "請求無效")])
def test_400_in_the_portals_layout(client, language, heading):
    html = page(client.get("/suspicious/", **language), 400)
    assert f"<h1>{heading}</h1>" in html
    assert LANDING_LINK in html


@pytest.mark.parametrize(("language", "heading"), [({}, "Access denied"), (CHINESE, "拒絕存取")])
def test_403_in_the_portals_layout(client, language, heading):
    html = page(client.get("/dms/forbidden-here/", **language), 403)
    assert f"<h1>{heading}</h1>" in html
    assert DMS_LINK in html
    assert LANDING_LINK in html


@pytest.mark.parametrize(
    ("language", "heading"), [({}, "This form has expired"), (CHINESE, "此表格已失效")]
)
def test_a_form_without_its_csrf_token_gets_the_portals_page(language, heading):
    browser = Client(enforce_csrf_checks=True)
    html = page(browser.post("/", {"anything": "1"}, **language), 403)
    assert f"<h1>{heading}</h1>" in html
    assert LANDING_LINK in html
    assert DMS_LINK not in html
    assert "CSRF verification failed" not in html


def test_a_dms_form_without_its_csrf_token_leads_back_to_the_dms():
    browser = Client(enforce_csrf_checks=True)
    html = page(browser.post("/dms/users/new/", {"login_id": "X"}), 403)
    assert DMS_LINK in html
