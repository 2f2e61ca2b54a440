"""The DMS's connectivity-test events: a DA registers the firm, on or before the deadline, and
reads what to do in each session and which checks the firm's users completed."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import formats, timezone

from audit.models import AuditAction, AuditEvent
from migration import connectivity
from migration.models import CheckMethod, ConnectivityEvent, ConnectivityRegistration, Phase
from tests import factories
from tests.helpers import log_in_with_app, page_queries

pytestmark = pytest.mark.django_db

# Registration closes this long after the test starts: within one idle session, so a DA
# logged in at the start is still logged in at the deadline and just after it.
TO_DEADLINE = dt.timedelta(minutes=10)


def text(page: str) -> str:
    """What a person reads on the page."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def shown(when: dt.datetime) -> str:
    """A moment as the pages show it: Hong Kong time, "2 June 2023 23:59"."""
    return formats.date_format(timezone.localtime(when), "DATETIME_FORMAT")


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def clock():
    """The clock held still, so that a test can stand at the deadline to the second."""
    with time_machine.travel(timezone.now().replace(microsecond=0), tick=False) as traveller:
        yield traveller


@pytest.fixture
def maker(clock, maker):
    return maker


@pytest.fixture
def checker(clock, checker):
    return checker


@pytest.fixture
def other_da(clock, other_firm_da):
    """The browser of a DA of another firm on the same terminal."""
    browser = Client()
    log_in_with_app(browser, other_firm_da, scope="dms")
    return browser


@pytest.fixture
def event(clock, firm):
    """A published event of the firm's terminal whose registration closes in ten minutes."""
    deadline = timezone.now() + TO_DEADLINE
    return factories.ConnectivityEventFactory(
        terminal=firm.terminal,
        title="Post-release connectivity test",
        day=timezone.localdate(deadline) + dt.timedelta(days=8),
        registration_deadline=deadline,
    )


def register(browser: Client, event: ConnectivityEvent):
    return browser.post(reverse("dms:event-register", args=[event.pk]))


def withdraw(browser: Client, event: ConnectivityEvent):
    return browser.post(reverse("dms:event-withdraw", args=[event.pk]))


def registration(event: ConnectivityEvent, firm) -> ConnectivityRegistration | None:
    return ConnectivityRegistration.objects.filter(event=event, participant=firm).first()


# The list --------------------------------------------------------------------------------


def test_the_list_shows_the_terminals_published_events_newest_first(maker, event, firm):
    past = factories.ConnectivityEventFactory(
        terminal=firm.terminal,
        title="Last year's test",
        day=event.day - dt.timedelta(days=365),
        registration_deadline=event.registration_deadline - dt.timedelta(days=365),
    )
    factories.ConnectivityEventFactory(
        terminal=firm.terminal, title="Draft test", published_at=None
    )
    factories.ConnectivityEventFactory(terminal=factories.terminal("CCMS"), title="CCMS test")

    page = text(maker.get(reverse("dms:events")).content.decode())

    assert page.index("Post-release connectivity test") < page.index("Last year's test")
    assert "Draft test" not in page
    assert "CCMS test" not in page
    assert f"Registration deadline {shown(event.registration_deadline)}" in page
    assert "18:00 – 20:00" in page
    assert "takes effect at once, without a checker's approval" in page
    assert "recorded in the audit trail" in page
    # The open event has its button; the past one says it closed, and has none.
    assert f"Registration closed on {shown(past.registration_deadline)}." in page
    body = maker.get(reverse("dms:events")).content.decode()
    assert reverse("dms:event-register", args=[event.pk]) in body
    assert reverse("dms:event-register", args=[past.pk]) not in body
    assert reverse("dms:event-withdraw", args=[past.pk]) not in body


def test_no_published_event_says_so(maker, firm):
    factories.ConnectivityEventFactory(terminal=firm.terminal, published_at=None)

    page = text(maker.get(reverse("dms:events")).content.decode())

    assert "No connectivity test has been published for your terminal." in page


def test_the_events_are_in_the_dms_navigation(maker):
    page = maker.get(reverse("dms:home")).content.decode()

    assert f'href="{reverse("dms:events")}"' in page


def test_the_list_costs_the_same_queries_however_many_events(maker, event, firm, checker_da):
    connectivity.registration_register(event_id=event.pk, participant=firm, acting_user=checker_da)
    one, _response = page_queries(maker, reverse("dms:events"))
    for weeks in (1, 2, 3):
        more = factories.ConnectivityEventFactory(
            terminal=firm.terminal,
            day=event.day + dt.timedelta(weeks=weeks),
            registration_deadline=event.registration_deadline,
        )
        connectivity.registration_register(
            event_id=more.pk, participant=firm, acting_user=checker_da
        )

    four, response = page_queries(maker, reverse("dms:events"))

    assert text(response.content.decode()).count("Registered by B10000DA2") == 4
    assert four == one


# Registering and withdrawing ------------------------------------------------------------------


def test_a_da_registers_the_firm_before_the_deadline(maker, event, firm, maker_da):
    response = register(maker, event)

    assert response.status_code == 302
    assert response["Location"] == reverse("dms:event-detail", args=[event.pk])
    assert messages_of(response) == ["Your firm is registered for the connectivity test."]
    made = registration(event, firm)
    assert made is not None
    assert (made.registered_by, made.registered_at) == (maker_da, timezone.now())
    (row,) = AuditEvent.objects.filter(action=AuditAction.EVENT_REGISTERED)
    assert (row.actor, row.participant) == (maker_da, firm)
    assert row.detail["event"] == event.pk
    page = text(maker.get(reverse("dms:events")).content.decode())
    assert f"Registered by {maker_da.login_id} on {shown(timezone.now())}" in page
    assert (
        reverse("dms:event-withdraw", args=[event.pk])
        in maker.get(reverse("dms:events")).content.decode()
    )


def test_a_checker_registers_too_without_a_second_da(checker, event, firm, checker_da):
    """Registration is not a request: no maker-checker, it takes effect at once."""
    response = register(checker, event)

    assert response.status_code == 302
    made = registration(event, firm)
    assert made is not None
    assert made.registered_by == checker_da


def test_registering_at_the_deadline_itself_is_on_time(clock, maker, event, firm):
    clock.move_to(event.registration_deadline)

    response = register(maker, event)

    assert messages_of(response) == ["Your firm is registered for the connectivity test."]
    assert registration(event, firm) is not None
    assert AuditEvent.objects.filter(action=AuditAction.EVENT_REGISTERED).count() == 1


def test_registering_after_the_deadline_is_refused_and_changes_nothing(clock, maker, event, firm):
    clock.move_to(event.registration_deadline + dt.timedelta(seconds=1))
    audit_before = AuditEvent.objects.count()

    response = register(maker, event)

    assert response.status_code == 302
    assert response["Location"] == reverse("dms:event-detail", args=[event.pk])
    deadline = connectivity.hong_kong_minute(event.registration_deadline)
    assert messages_of(response) == [
        f"Registration for this connectivity test closed at {deadline}."
    ]
    assert registration(event, firm) is None
    assert AuditEvent.objects.count() == audit_before
    body = maker.get(reverse("dms:events")).content.decode()
    assert f"Registration closed on {shown(event.registration_deadline)}." in text(body)
    assert reverse("dms:event-register", args=[event.pk]) not in body
    detail = maker.get(reverse("dms:event-detail", args=[event.pk])).content.decode()
    assert f"Registration closed on {shown(event.registration_deadline)}." in text(detail)
    assert reverse("dms:event-register", args=[event.pk]) not in detail


def test_a_da_withdraws_the_firm_before_the_deadline(maker, event, firm, maker_da, checker_da):
    connectivity.registration_register(event_id=event.pk, participant=firm, acting_user=checker_da)

    response = withdraw(maker, event)

    assert response.status_code == 302
    assert messages_of(response) == [
        "Your firm's registration for the connectivity test is withdrawn."
    ]
    assert registration(event, firm) is None
    (row,) = AuditEvent.objects.filter(action=AuditAction.EVENT_WITHDRAWN)
    assert (row.actor, row.participant) == (maker_da, firm)
    page = text(maker.get(reverse("dms:event-detail", args=[event.pk])).content.decode())
    assert "Your firm Not registered" in page


def test_withdrawing_after_the_deadline_is_refused(clock, maker, event, firm, checker_da):
    connectivity.registration_register(event_id=event.pk, participant=firm, acting_user=checker_da)
    clock.move_to(event.registration_deadline + dt.timedelta(seconds=1))
    audit_before = AuditEvent.objects.count()

    response = withdraw(maker, event)

    assert messages_of(response)[0].startswith("Registration for this connectivity test closed")
    assert registration(event, firm) is not None
    assert AuditEvent.objects.count() == audit_before


def test_withdrawing_a_firm_not_registered_says_so(maker, event):
    response = withdraw(maker, event)

    assert messages_of(response) == ["Your firm was not registered for the connectivity test."]
    assert not AuditEvent.objects.filter(action=AuditAction.EVENT_WITHDRAWN).exists()


@pytest.mark.parametrize("name", ["dms:event-register", "dms:event-withdraw"])
def test_registering_and_withdrawing_answer_get_with_405(maker, event, firm, name):
    response = maker.get(reverse(name, args=[event.pk]))

    assert response.status_code == 405
    assert registration(event, firm) is None


# Another terminal's, an unpublished, a missing event ------------------------------------------


@pytest.mark.parametrize("which", ["another terminal's", "unpublished"])
@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("dms:event-detail", "get"),
        ("dms:event-register", "post"),
        ("dms:event-withdraw", "post"),
        ("dms:event-register", "get"),
    ],
)
def test_an_event_the_firm_cannot_see_answers_404_like_a_missing_one(
    maker, firm, which, name, method
):
    if which == "unpublished":
        hidden = factories.ConnectivityEventFactory(terminal=firm.terminal, published_at=None)
    else:
        hidden = factories.ConnectivityEventFactory(terminal=factories.terminal("CCMS"))
    missing = ConnectivityEvent.objects.latest("pk").pk + 1000

    foreign = getattr(maker, method)(reverse(name, args=[hidden.pk]))
    absent = getattr(maker, method)(reverse(name, args=[missing]))

    assert foreign.status_code == 404
    assert absent.status_code == 404
    assert foreign.content == absent.content
    assert not ConnectivityRegistration.objects.exists()
    assert not AuditEvent.objects.filter(action=AuditAction.EVENT_REGISTERED).exists()


def test_a_firm_on_ccms_sees_ccms_events_only(maker, firm, event):
    """A firm on CCMS sees the CCMS event, and not CCASS's."""
    factories.set_phase("CCMS", Phase.PARALLEL_RUN)
    ccms_event = factories.ConnectivityEventFactory(
        terminal=factories.terminal("CCMS"), title="CCMS test"
    )
    ccms_firm = factories.ParticipantFactory(terminal=factories.terminal("CCMS"))
    ccms_da = factories.DAFactory(participant=ccms_firm, login_id="C30000DA1")
    factories.TOTPDeviceFactory(user=ccms_da)
    browser = Client()
    log_in_with_app(browser, ccms_da, scope="dms", terminal="ccms")

    page = text(browser.get(reverse("dms:events")).content.decode())

    assert "CCMS test" in page
    assert "Post-release connectivity test" not in page
    assert register(browser, event).status_code == 404
    assert register(browser, ccms_event).status_code == 302
    assert registration(ccms_event, ccms_firm) is not None


# The schedule and the firm's results ---------------------------------------------------------


def test_the_detail_page_shows_the_circulars_schedule_and_steps(maker, event):
    page = text(maker.get(reverse("dms:event-detail", args=[event.pk])).content.decode())

    session_1 = page[page.index("Session 1:") : page.index("Session 2:")]
    session_2 = page[page.index("Session 2:") : page.index("Your firm's results")]
    assert session_1.startswith("Session 1: Primary Data Centre, 18:00 – 20:00")
    assert session_2.startswith("Session 2: Secondary Data Centre, 22:00 – 23:00")
    # Session 1: 2FA is set up from the activation email, and carried forward.
    day_before = formats.date_format(event.day - dt.timedelta(days=1), "DATE_FORMAT")
    assert (
        "Click “Login with Smartcard - Online Functions and Overnight Report Download”."
        in session_1
    )
    assert f"production smartcard and the password you used on {day_before}" in session_1
    assert "By 2FA, initiation of 2FA (users)" in session_1
    assert "By 2FA, initiation of 2FA (DAs)" in session_1
    assert (
        "Click “Login with OTP - Online Functions” or “Login with OTP - Overnight Report "
        "Download”." in session_1
    )
    assert "set up your password and OTP channel through the link in your activation email" in (
        session_1
    )
    assert "“Function not available” is displayed" in session_1
    assert "Log out from CCASS." in session_1
    assert "Log out from DMS." in session_1
    assert "carried forward to the later sessions and to production" in session_1
    assert "Not carried forward" not in session_1
    # Session 2: logging in with what was set up in Session 1; its changes are undone.
    assert "initiation" not in session_2
    assert "the same password you used in Session 1" in session_2
    assert "Log in with your user ID, the password you set up in Session 1, and an OTP." in (
        session_2
    )
    assert "Click “Login with OTP - Security Management Functions”." in session_2
    assert "Not carried forward: account changes made in this session" in session_2
    assert "undone when the session ends" in session_2


def test_the_detail_page_shows_the_firms_own_checks_only(
    maker, event, user, other_firm_user, maker_da
):
    session_1, session_2 = event.sessions.order_by("position")
    connectivity.check_record(session=session_1, user=user, method=CheckMethod.OTP, scope="online")
    connectivity.check_record(
        session=session_2, user=maker_da, method=CheckMethod.SMARTCARD, scope="dms"
    )
    connectivity.check_record(
        session=session_1, user=other_firm_user, method=CheckMethod.OTP, scope="online"
    )

    response = maker.get(reverse("dms:event-detail", args=[event.pk]))

    page = response.content.decode()
    results = text(page[page.index('data-testid="checks"') :])
    at = shown(timezone.now())
    assert f"{maker_da.login_id} Session 2 Smartcard Security Management Functions {at}" in results
    assert f"{user.login_id} Session 1 OTP Online Functions {at}" in results
    assert other_firm_user.login_id not in page


def test_a_da_of_another_firm_does_not_see_the_firms_registration(
    maker, other_da, event, firm, other_firm, maker_da
):
    register(maker, event)

    listed = other_da.get(reverse("dms:events")).content.decode()
    detail = other_da.get(reverse("dms:event-detail", args=[event.pk])).content.decode()

    for page in (listed, detail):
        assert maker_da.login_id not in page
        assert "Not registered" in text(page)
    # Its own registration is its own firm's, and leaves the first firm's alone.
    register(other_da, event)
    assert registration(event, other_firm) is not None
    assert registration(event, firm).registered_by == maker_da
    withdraw(other_da, event)
    assert registration(event, firm) is not None
