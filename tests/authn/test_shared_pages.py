"""The login and code forms, the same for every visitor not logged in, are rendered once a
process and handed out with each visitor's own CSRF token (common.pages)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from common.pages import shared_pages_forget
from tests.helpers import TOTP, log_in_with_app, otp_login_url, password_step

pytestmark = pytest.mark.django_db

LOGIN = otp_login_url("online")
VERIFY = otp_login_url("online", step="verify")
TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture(autouse=True)
def _kept_pages(settings):
    # As in production: the entry's terminal is kept a while, and the form with it.
    settings.PHASE_CACHE_SECONDS = 60
    shared_pages_forget()
    yield
    shared_pages_forget()


def _tokens(response) -> list[str]:
    return TOKEN.findall(response.content.decode())


def _without_tokens(response) -> str:
    return TOKEN.sub("", response.content.decode())


def test_each_visitor_gets_the_same_form_with_a_token_of_their_own(user):
    first, second = Client(enforce_csrf_checks=True), Client(enforce_csrf_checks=True)
    page_one = first.get(LOGIN)
    page_two = second.get(LOGIN)
    assert page_one.status_code == page_two.status_code == 200
    # The second was not rendered: the page kept from the first.
    assert [t.name for t in page_one.templates][:1] == ["authn/login_password.html"]
    assert page_two.templates == []
    assert _without_tokens(page_one) == _without_tokens(page_two)
    # Each page carries its visitor's token (the login form's and the language switch's),
    # never the other's, and the token works with that visitor's cookie.
    (token_one,) = set(_tokens(page_one))
    (token_two,) = set(_tokens(page_two))
    assert token_one != token_two
    assert "csrf-token-" not in page_two.content.decode()
    response = second.post(
        LOGIN,
        {
            "login_id": user.login_id,
            "password": "a-long-enough-passphrase-1",
            "csrfmiddlewaretoken": token_two,
        },
    )
    assert response.status_code == 302 and response["Location"] == VERIFY


def test_the_kept_form_is_per_language(user):
    assert "Login with OTP" in Client().get(LOGIN).content.decode()
    chinese = Client(headers={"accept-language": "zh-hant"}).get(LOGIN).content.decode()
    assert 'lang="zh-hant"' in chinese and "Login with OTP" not in chinese
    assert 'lang="en"' in Client().get(LOGIN).content.decode()


def test_a_visitor_with_a_next_page_a_message_or_a_login_gets_their_own_page(client, user):
    Client().get(LOGIN)  # kept
    with_next = client.get(LOGIN + "?next=/online/reports/")
    assert 'name="next" value="/online/reports/"' in with_next.content.decode()
    # The language switch comes back to this very address.
    assert f'value="{LOGIN}?next=/online/reports/"' in with_next.content.decode()
    # The code form without a password step sends back with a message: shown, to this one.
    response = client.get(VERIFY, follow=True)
    assert "Please start again with your login ID and password." in response.content.decode()
    assert "Please start again" not in Client().get(LOGIN).content.decode()
    # Someone logged in sees their own top bar on the login form, not the kept page.
    log_in_with_app(client, user)
    assert user.login_id in client.get(LOGIN).content.decode()
    assert user.login_id not in Client().get(LOGIN).content.decode()


def test_a_change_of_the_terminal_reaches_the_kept_form(user):
    assert "2211 2211" not in Client().get(LOGIN).content.decode()
    terminal = user.participant.terminal
    terminal.hotline = "2211 2211"
    terminal.save()
    assert "2211 2211" in Client().get(LOGIN).content.decode()


def test_the_app_code_form_is_kept_and_the_email_one_is_not(client, user, email_user):
    first, second = Client(), Client()
    for visitor in (first, second):
        assert password_step(visitor, user.login_id).status_code == 302
    page_one, page_two = first.get(VERIFY), second.get(VERIFY)
    assert "Open your authenticator app" in page_one.content.decode()
    assert page_two.templates == [] and _without_tokens(page_one) == _without_tokens(page_two)
    # The kept page works for the second visitor: the code logs them in.
    code = TOTP().code(user.totpdevice_set.get())
    response = second.post(VERIFY, {"code": code, "csrfmiddlewaretoken": _tokens(page_two)[0]})
    assert response.status_code == 302 and "/login/" not in response["Location"]
    # The email channel's page says when the code went: rendered for each visitor.
    for visitor in (first, second):
        visitor.cookies.clear()
        assert password_step(visitor, email_user.login_id).status_code == 302
    assert first.get(VERIFY).templates and second.get(VERIFY).templates
