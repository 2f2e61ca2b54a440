"""An ended session: the warning before it, "Stay logged in", and the way back to the page."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlencode

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests import certs
from tests.authn.test_smartcard import PROXY, card_login, register, through_proxy
from tests.factories import CARD_PASSWORD, USER_PASSWORD
from tests.helpers import TOTP, log_in_with_app, otp_login_url

pytestmark = pytest.mark.django_db

PAGE = "/dms/users/?page=2"
KEEPALIVE = "/session/keep-alive/"


def _later(seconds: float):
    return time_machine.travel(dt.timedelta(seconds=seconds))


def _log_in_again(client: Client, user, *, nxt: str, scope: str = "dms"):
    """Log in through the pages, as the login form carries `next` from step to step."""
    page = client.get(otp_login_url(scope) + "?" + urlencode({"next": nxt}))
    assert f'name="next" value="{nxt}"'.replace("&", "&amp;") in page.content.decode()
    step_one = client.post(
        otp_login_url(scope), {"login_id": user.login_id, "password": USER_PASSWORD, "next": nxt}
    )
    assert step_one.status_code == 302
    code_page = client.get(step_one["Location"])
    assert 'name="next"' in code_page.content.decode()
    code = TOTP().code(TOTPDevice.objects.get(user=user, confirmed=True))
    return client.post(otp_login_url(scope, step="verify"), {"code": code, "next": nxt})


def test_idle_dms_session_goes_to_the_dms_login_and_back_to_the_page(client, maker_da, settings):
    log_in_with_app(client, maker_da, scope="dms")
    with _later(settings.SESSION_IDLE_TIMEOUT + 1):
        response = client.get(PAGE)
        assert response.status_code == 302
        assert response["Location"] == (otp_login_url("dms") + "?" + urlencode({"next": PAGE}))
        login_page = client.get(response["Location"])
        assert "Your session has ended. Please log in again." in login_page.content.decode()

        back = _log_in_again(client, maker_da, nxt=PAGE)
        assert back["Location"] == PAGE
        assert client.get(PAGE).status_code == 200


def test_absolute_limit_also_returns_to_the_page(client, user, settings):
    settings.SESSION_ABSOLUTE_TIMEOUT = 3 * 60
    settings.SESSION_IDLE_TIMEOUT = 2 * 60
    log_in_with_app(client, user)
    with _later(100):
        assert client.get("/online/").status_code == 200
    with _later(190):
        response = client.get("/online/?tab=1")
    assert response["Location"] == otp_login_url("online") + "?next=%2Fonline%2F%3Ftab%3D1"


@pytest.mark.parametrize(
    "unsafe", ["https://evil.example/dms/", "//evil.example/dms/", "javascript:alert(1)"]
)
def test_an_unsafe_next_falls_back_to_the_home_page(client, maker_da, unsafe):
    response = _log_in_again(client, maker_da, nxt=unsafe)
    assert response.status_code == 302
    assert response["Location"] == reverse("dms:home")


def test_next_survives_an_emailed_code_being_sent_again(
    client, email_user, mailoutbox, django_capture_on_commit_callbacks, settings
):
    nxt = "/online/?tab=2"
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            otp_login_url("online"),
            {"login_id": email_user.login_id, "password": USER_PASSWORD, "next": nxt},
        )
    with _later(settings.OTP_EMAIL_COOLDOWN_DURATION + 1):
        with django_capture_on_commit_callbacks(execute=True):
            resent = client.post(otp_login_url("online", step="resend"), {"next": nxt})
        assert resent["Location"] == otp_login_url("online", step="verify") + "?next=" + (
            "%2Fonline%2F%3Ftab%3D2"
        )
        code = re.search(r"\b(\d{6})\b", mailoutbox[-1].body).group(1)
        response = client.post(otp_login_url("online", step="verify"), {"code": code, "next": nxt})
    assert response["Location"] == nxt


def test_an_ended_form_post_goes_to_the_login_without_next(client, maker_da, settings):
    log_in_with_app(client, maker_da, scope="dms")
    with _later(settings.SESSION_IDLE_TIMEOUT + 1):
        response = client.post("/dms/users/new/", {})
    assert response["Location"] == otp_login_url("dms")


def test_an_ended_script_request_goes_to_the_login_without_next(client, maker_da, settings):
    log_in_with_app(client, maker_da, scope="dms")
    with _later(settings.SESSION_IDLE_TIMEOUT + 1):
        response = client.get(PAGE, HTTP_SEC_FETCH_MODE="cors")
    assert response["Location"] == otp_login_url("dms")


def test_an_ended_session_on_a_login_page_just_shows_it(client, maker_da, settings):
    log_in_with_app(client, maker_da, scope="dms")
    with _later(settings.SESSION_IDLE_TIMEOUT + 1):
        response = client.get(otp_login_url("dms"))
    assert response.status_code == 200
    assert "Your session has ended" in response.content.decode()
    assert "next=" not in response.content.decode()


# A card session goes back to the card login -----------------------------------------------


@pytest.fixture
def card_user(user, settings):
    settings.SMARTCARD_TRUSTED_PROXIES = [PROXY]
    issued = certs.make_card_cert(certs.make_ca(), holder=user.name)
    register(issued, user)
    return user, issued


def test_an_ended_card_session_logs_in_with_the_card_and_returns(client, card_user, settings):
    user, card = card_user
    assert card_login(client, through_proxy(card), user.login_id).status_code == 302
    with _later(settings.SESSION_IDLE_TIMEOUT + 1):
        response = client.get("/reports/?day=2", **through_proxy(card))
        card_page = reverse(
            "authn:smartcard-login", kwargs={"terminal": "ccass", "entry": "functions"}
        )
        assert response["Location"] == card_page + "?next=%2Freports%2F%3Fday%3D2"
        page = client.get(response["Location"], **through_proxy(card))
        assert 'name="next" value="/reports/?day=2"' in page.content.decode()
        again = client.post(
            card_page,
            {"login_id": user.login_id, "password": CARD_PASSWORD, "next": "/reports/?day=2"},
            **through_proxy(card),
        )
    assert again["Location"] == "/reports/?day=2"


# "Stay logged in" -------------------------------------------------------------------------


def test_a_logged_in_page_carries_the_warning_and_its_limits(client, user, settings):
    settings.SESSION_IDLE_WARNING_SECONDS = 45
    log_in_with_app(client, user)
    with time_machine.travel(dt.datetime.now(dt.UTC), tick=False):
        page = client.get("/online/").content.decode()
    assert 'role="alertdialog"' in page
    assert f'data-idle-limit="{settings.SESSION_IDLE_TIMEOUT}"' in page
    assert 'data-warning="45"' in page
    assert "Stay logged in" in page
    assert "js/session-timeout.js" in page


def test_a_page_without_a_session_has_no_warning(client):
    page = client.get("/").content.decode()
    assert "alertdialog" not in page
    assert "session-timeout.js" not in page


def test_stay_logged_in_restarts_the_idle_clock(client, user):
    log_in_with_app(client, user)
    with _later(14 * 60):
        assert client.post(KEEPALIVE).status_code == 204
    with _later(28 * 60):
        assert client.get("/online/").status_code == 200


def test_stay_logged_in_is_not_lost_in_the_idle_clock_slack(client, user, settings):
    # Requests within a few seconds of the last do not write the idle clock; this one must.
    log_in_with_app(client, user)
    with _later(5):
        assert client.post(KEEPALIVE).status_code == 204
    with _later(settings.SESSION_IDLE_TIMEOUT + 3):
        assert client.get("/online/").status_code == 200


def test_without_stay_logged_in_the_session_ends(client, user):
    log_in_with_app(client, user)
    with _later(28 * 60):
        assert client.get("/online/").status_code == 302


def test_stay_logged_in_needs_a_logged_in_session(client, user):
    assert client.post(KEEPALIVE).status_code == 403
    client.post(otp_login_url("online"), {"login_id": user.login_id, "password": USER_PASSWORD})
    # Halfway through a login is not logged in.
    assert client.post(KEEPALIVE).status_code == 403


def test_stay_logged_in_needs_post_and_the_csrf_token(user):
    browser = Client(enforce_csrf_checks=True)
    page = browser.get(otp_login_url("online")).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    browser.post(
        otp_login_url("online"),
        {"login_id": user.login_id, "password": USER_PASSWORD, "csrfmiddlewaretoken": token},
    )
    code = TOTP().code(TOTPDevice.objects.get(user=user))
    browser.post(
        otp_login_url("online", step="verify"), {"code": code, "csrfmiddlewaretoken": token}
    )
    home = browser.get("/online/").content.decode()
    assert home.count("data-session-stay") == 1
    assert browser.get(KEEPALIVE).status_code == 405
    assert browser.post(KEEPALIVE).status_code == 403
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', home).group(1)
    assert browser.post(KEEPALIVE, {"csrfmiddlewaretoken": token}).status_code == 204
