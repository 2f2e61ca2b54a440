"""Every home page links to the other functions its session may use, and to no other."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests import certs
from tests.authn.test_smartcard import PROXY, card_login, register, through_proxy
from tests.helpers import log_in_with_app

pytestmark = pytest.mark.django_db

ONLINE = reverse("authn:online-home")
REPORTS = reverse("authn:report-list")
DMS = reverse("dms:home")


@pytest.fixture
def card_session(client, user, settings):
    """`client` logged in with `user`'s smartcard: Online Functions and report download."""
    settings.SMARTCARD_TRUSTED_PROXIES = [PROXY]
    issued = certs.make_card_cert(certs.make_ca(), holder=user.name)
    register(issued, user)
    assert card_login(client, through_proxy(issued), user.login_id).status_code == 302
    return client


def links(client, url: str) -> set[str]:
    page = client.get(url)
    assert page.status_code == 200
    return {href for href in (ONLINE, REPORTS, DMS) if f'href="{href}"' in page.content.decode()}


def test_card_session_online_functions_link_to_the_reports(card_session):
    page = card_session.get(ONLINE).content.decode()
    assert f'<a href="{REPORTS}">Overnight Report Download</a>' in page
    assert f'<a href="{ONLINE}" aria-current="page">Online Functions</a>' in page
    assert card_session.get(REPORTS).status_code == 200


def test_card_session_report_list_links_back_to_online_functions(card_session):
    page = card_session.get(REPORTS).content.decode()
    assert f'<a href="{ONLINE}">Online Functions</a>' in page
    assert DMS not in links(card_session, REPORTS)


@pytest.mark.parametrize("scope", ["online", "reports"])
def test_otp_session_links_to_nothing_it_cannot_open(client, user, scope):
    log_in_with_app(client, user, scope=scope)
    home = ONLINE if scope == "online" else REPORTS
    assert links(client, home) == set()
    other = REPORTS if scope == "online" else ONLINE
    assert client.get(other).status_code == 302


def test_otp_dms_session_menu_has_no_participant_functions(client, maker_da):
    log_in_with_app(client, maker_da, scope="dms")
    assert links(client, DMS) == {DMS}  # the DMS menu's own Overview link
    assert 'class="subnav session-functions"' not in client.get(DMS).content.decode()
