"""Password lockout with growing delay that never reveals whether a login ID exists."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from audit.models import AuditEvent
from authn.models import LoginThrottle
from tests.factories import USER_PASSWORD
from tests.helpers import password_step

pytestmark = pytest.mark.django_db

WRONG = "not-the-password-42"


def _fail(client, login_id, times):
    responses = [password_step(client, login_id, password=WRONG) for _ in range(times)]
    return responses[-1]


def _visible(response) -> str:
    """The page as a person sees it, without the per-response CSRF token."""
    import re

    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())


def test_unknown_user_wrong_password_and_locked_account_look_identical(client, user, settings):
    unknown = password_step(client, "NOSUCHUSER", password=WRONG)
    wrong = password_step(client, user.login_id, password=WRONG)
    _fail(client, user.login_id, settings.LOGIN_FREE_FAILURES)
    locked = password_step(client, user.login_id, password=USER_PASSWORD)

    assert unknown.status_code == wrong.status_code == locked.status_code == 200
    # The login ID is echoed back in the form; take it out before comparing.
    bodies = [
        _visible(r).replace(user.login_id, "ID").replace("NOSUCHUSER", "ID")
        for r in (unknown, wrong, locked)
    ]
    assert bodies[0] == bodies[1] == bodies[2]
    assert "Login failed" in bodies[0]


def test_account_locks_after_free_failures_and_the_right_password_waits(client, user, settings):
    _fail(client, user.login_id, settings.LOGIN_FREE_FAILURES)
    response = password_step(client, user.login_id)
    assert "Login failed" in response.content.decode()
    assert "authn_pending" not in client.session
    assert AuditEvent.objects.filter(user=user, reason="locked").exists()

    with time_machine.travel(dt.timedelta(seconds=settings.LOGIN_LOCKOUT_BASE_SECONDS + 1)):
        response = password_step(client, user.login_id)
    assert response.status_code == 302


def test_at_most_ten_consecutive_failures_before_a_wait(settings):
    assert settings.LOGIN_FREE_FAILURES <= 10


def test_lockout_delay_grows(client, user, settings):
    _fail(client, user.login_id, settings.LOGIN_FREE_FAILURES)
    first = LoginThrottle.objects.get(key=user.login_id.casefold())
    first_wait = first.locked_until - first.last_failure_at
    with time_machine.travel(first_wait + dt.timedelta(seconds=1)):
        password_step(client, user.login_id, password=WRONG)
    second = LoginThrottle.objects.get(key=user.login_id.casefold())
    assert second.locked_until - second.last_failure_at == 2 * first_wait


def test_unknown_login_ids_are_throttled_the_same_way(client, settings, parallel_run):
    _fail(client, "NOSUCHUSER", settings.LOGIN_FREE_FAILURES)
    throttle = LoginThrottle.objects.get(key="nosuchuser")
    assert throttle.locked_until is not None


def test_success_resets_the_failure_count(client, user):
    _fail(client, user.login_id, 2)
    assert password_step(client, user.login_id).status_code == 302
    assert LoginThrottle.objects.get(key=user.login_id.casefold()).failures == 0


def test_every_password_failure_is_audited_with_firm_scope_method_and_ip(client, user):
    password_step(client, user.login_id, password=WRONG)
    event = AuditEvent.objects.get(user=user, outcome="failure")
    assert event.participant == user.participant
    assert event.scope == "online"
    assert event.method == "password"
    assert event.ip == "127.0.0.1"
    assert event.reason == "bad_credentials"


def test_unknown_login_id_failure_is_audited_without_a_user(client, parallel_run):
    password_step(client, "NOSUCHUSER", password=WRONG)
    event = AuditEvent.objects.get(login_id="NOSUCHUSER")
    assert event.user is None and event.outcome == "failure"


def test_successful_login_is_audited(client, user):
    from tests.helpers import log_in_with_app

    log_in_with_app(client, user)
    event = AuditEvent.objects.get(user=user, action="login", outcome="success")
    assert event.method == "otp" and event.scope == "online"
    assert reverse("authn:online-home")


# Every character outside ASCII whose upper or lower case is ASCII: the database's UPPER()
# (PostgreSQL) would match such a variant to the ASCII login ID, while Python's casefold
# gave it a throttle counter of its own, so a locked account could be entered through it.
CASE_MAPPED_TO_ASCII = sorted(
    {
        (ch, mapped)
        for ch in map(chr, range(0x80, 0x110000))
        for mapped in (ch.upper(), ch.lower())
        if mapped.isascii() and mapped.isalnum()
    }
)


def test_the_case_mapped_characters_are_all_found():
    # ß, dotless ı, long s, the Kelvin sign and the Latin ligatures ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ.
    assert {ch for ch, _mapped in CASE_MAPPED_TO_ASCII} >= {"ß", "ı", "ſ", "\u212a", "ﬁ", "ﬆ"}


@pytest.mark.parametrize(
    ("variant", "mapped"),
    CASE_MAPPED_TO_ASCII,
    ids=[f"U+{ord(c):04X}" for c, _ in CASE_MAPPED_TO_ASCII],
)
def test_a_locked_account_cannot_be_entered_through_a_unicode_variant_of_its_id(
    client, parallel_run, firm, settings, variant, mapped
):
    from tests import factories

    person = factories.UserFactory(participant=firm, login_id=f"B10000{mapped}1")
    factories.TOTPDeviceFactory(user=person)
    _fail(client, person.login_id, settings.LOGIN_FREE_FAILURES + 1)
    assert password_step(client, person.login_id).status_code == 200  # locked

    response = password_step(client, f"B10000{variant}1")
    assert response.status_code == 200
    assert "A login ID is made of the letters A-Z" in response.content.decode()
    # Nothing was looked up or counted for the variant, and the account stays locked.
    assert not LoginThrottle.objects.exclude(key=person.login_id.lower()).exists()
    assert password_step(client, person.login_id.lower()).status_code == 200
