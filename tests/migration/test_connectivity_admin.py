"""Staff's connectivity-test events in the admin: the circular's event in one click,
publishing it to the DAs of its terminal, and moving a published event's times."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format

from audit.models import AuditAction, AuditEvent
from migration import connectivity, services
from migration.models import ConnectivityEvent, ConnectivitySession, DataCentre
from migration.models import TestEntry as Entry  # not Test*: pytest would collect it
from outbox.models import OutboxEmail
from outbox.relay import relay
from participants.models import Terminal, UserStatus
from tests import factories
from tests.helpers import log_in_with_app, staff_logs_in

pytestmark = pytest.mark.django_db

HKT = connectivity.HONG_KONG
CHANGELIST = "/admin/migration/connectivityevent/"
FROM_CIRCULAR = "/admin/migration/connectivityevent/from-circular/"


def _day() -> dt.date:
    """A Saturday about a month ahead."""
    today = timezone.localdate(timezone=HKT)
    return today + dt.timedelta(days=28 + (5 - today.weekday()) % 7)


def _change_url(event: ConnectivityEvent) -> str:
    return reverse("admin:migration_connectivityevent_change", args=[event.pk])


def _publish_url(event: ConnectivityEvent) -> str:
    return reverse("admin:migration_connectivityevent_publish", args=[event.pk])


def _split(value: dt.datetime) -> tuple[str, str]:
    local = timezone.localtime(value, HKT)
    return local.date().isoformat(), local.strftime("%H:%M:%S")


def _change_data(event: ConnectivityEvent, **sessions: dict[str, object]) -> dict[str, object]:
    """The change form as the admin shows it, with `sessions` (by name: field: value) changed."""
    event.refresh_from_db()
    deadline = _split(event.registration_deadline)
    data: dict[str, object] = {
        "title": event.title,
        "day": event.day.isoformat(),
        "registration_deadline_0": deadline[0],
        "registration_deadline_1": deadline[1],
    }
    if not event.is_published:
        data["terminal"] = event.terminal_id
    rows = list(event.sessions.order_by("position"))
    data.update(
        {
            "sessions-TOTAL_FORMS": len(rows),
            "sessions-INITIAL_FORMS": len(rows),
            "sessions-MIN_NUM_FORMS": 0,
            "sessions-MAX_NUM_FORMS": 1000,
        }
    )
    for index, session in enumerate(rows):
        fields: dict[str, object] = {
            "id": session.pk,
            "event": event.pk,
            "name": session.name,
            "data_centre": session.data_centre,
            "starts_at": session.starts_at,
            "ends_at": session.ends_at,
            "entries": list(session.entries),
            "carried_forward": session.carried_forward,
            **sessions.get(session.name.replace(" ", "_"), {}),
        }
        for name, value in fields.items():
            key = f"sessions-{index}-{name}"
            if isinstance(value, dt.datetime):
                data[f"{key}_0"], data[f"{key}_1"] = _split(value)
            elif isinstance(value, bool):
                if value:
                    data[key] = "on"
            else:
                data[key] = value
    return data


@pytest.fixture
def ccass_firm(db):
    return factories.ParticipantFactory(participant_id="B30000", name="Harbour Securities")


@pytest.fixture
def das(ccass_firm):
    """Two DAs of two CCASS firms who are emailed; three who are not."""
    second_firm = factories.ParticipantFactory(participant_id="B30001")
    ccms_firm = factories.ParticipantFactory(
        participant_id="C30000", terminal=Terminal.objects.get(code="CCMS")
    )
    emailed = [
        factories.DAFactory(participant=ccass_firm, login_id="B30000DA1"),
        factories.DAFactory(participant=second_firm, login_id="B30001DA1"),
    ]
    factories.DAFactory(participant=ccass_firm, login_id="B30000DA2", email="")
    factories.DAFactory(participant=ccass_firm, login_id="B30000DA3", status=UserStatus.SUSPENDED)
    factories.UserFactory(participant=ccass_firm, login_id="B30000U01")
    factories.DAFactory(participant=ccms_firm, login_id="C30000DA1")
    return emailed


@pytest.fixture
def event(db):
    """The circular's event on CCASS, unpublished."""
    return connectivity.event_from_circular(terminal=Terminal.objects.get(code="CCASS"), day=_day())


def _written(day: dt.date, language: str = "en") -> str:
    """The day as the emails write it ("12 June 2027"), in that language."""
    with translation.override(language):
        return date_format(day, "j F Y")


def _languages(body: str) -> tuple[str, str]:
    """The English and the Chinese halves of a bilingual email."""
    chinese = body.index("中央結算系統終端機")  # the terminal's name opens the Chinese
    return body[:chinese], body[chinese:]


def _publish(event: ConnectivityEvent, staff) -> ConnectivityEvent:
    return services.event_publish(event=event, acting_user=staff)


def _session(event: ConnectivityEvent, name: str) -> ConnectivitySession:
    return event.sessions.get(name=name)


# The circular's event in one click ---------------------------------------------------------


def test_staff_create_the_circulars_event_in_one_click(client, staff):
    staff_logs_in(client, staff)
    changelist = client.get(CHANGELIST).content.decode()
    assert f'href="{FROM_CIRCULAR}"' in changelist
    form = client.get(FROM_CIRCULAR).content.decode()
    assert "18:00–20:00" in form and "22:00–23:00" in form
    day = _day()
    ccass = Terminal.objects.get(code="CCASS")
    response = client.post(FROM_CIRCULAR, {"terminal": ccass.pk, "day": day.isoformat()})
    event = ConnectivityEvent.objects.get()
    assert response.status_code == 302 and response["Location"] == _change_url(event)
    assert event.terminal == ccass and event.day == day and not event.is_published
    # The circular: register on or before the Friday eight days before the Saturday.
    assert event.registration_deadline == dt.datetime.combine(
        day - dt.timedelta(days=8), dt.time(23, 59), tzinfo=HKT
    )
    one, two = event.sessions.order_by("position")
    assert (one.name, one.data_centre, one.carried_forward) == (
        "Session 1",
        DataCentre.PRIMARY,
        True,
    )
    assert (two.name, two.data_centre, two.carried_forward) == (
        "Session 2",
        DataCentre.SECONDARY,
        False,
    )
    assert (one.starts_at, one.ends_at) == (
        dt.datetime.combine(day, dt.time(18), tzinfo=HKT),
        dt.datetime.combine(day, dt.time(20), tzinfo=HKT),
    )
    assert (two.starts_at, two.ends_at) == (
        dt.datetime.combine(day, dt.time(22), tzinfo=HKT),
        dt.datetime.combine(day, dt.time(23), tzinfo=HKT),
    )
    assert one.entries == [entry.value for entry in Entry]
    assert Entry.INITIATION.value not in two.entries and len(two.entries) == 5
    page = client.get(_change_url(event)).content.decode()
    assert f'href="{_publish_url(event)}"' in page
    assert f'href="/admin/connectivity/{event.pk}/results/"' in page
    # The entries are checkboxes, ticked as the session has them.
    assert page.count('type="checkbox" name="sessions-1-entries"') == 6
    assert page.count('name="sessions-1-entries" value="initiation"') == 1
    assert 'name="sessions-1-entries" value="initiation" id="id_sessions-1-entries_5"' in page


def test_staff_may_give_the_deadline(client, staff):
    staff_logs_in(client, staff)
    day = _day()
    response = client.post(
        FROM_CIRCULAR,
        {
            "terminal": Terminal.objects.get(code="CCMS").pk,
            "day": day.isoformat(),
            "deadline_0": (day - dt.timedelta(days=3)).isoformat(),
            "deadline_1": "12:00",
        },
    )
    assert response.status_code == 302
    event = ConnectivityEvent.objects.get()
    assert event.terminal.code == "CCMS"
    assert event.registration_deadline == dt.datetime.combine(
        day - dt.timedelta(days=3), dt.time(12), tzinfo=HKT
    )


@pytest.mark.parametrize(
    ("days", "deadline", "message"),
    [
        (-1, None, "The day of the test cannot be in the past."),
        (30, (30, "18:00"), "Registration must close before the first session starts"),
    ],
)
def test_the_circulars_event_is_refused_in_the_past_or_with_a_late_deadline(
    client, staff, days, deadline, message
):
    staff_logs_in(client, staff)
    today = timezone.localdate(timezone=HKT)
    data = {
        "terminal": Terminal.objects.get(code="CCASS").pk,
        "day": (today + dt.timedelta(days=days)).isoformat(),
    }
    if deadline:
        data["deadline_0"] = (today + dt.timedelta(days=deadline[0])).isoformat()
        data["deadline_1"] = deadline[1]
    response = client.post(FROM_CIRCULAR, data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not ConnectivityEvent.objects.exists()


# Publishing --------------------------------------------------------------------------------


def test_publishing_emails_each_da_of_the_terminals_firms_once_in_both_languages(
    client, staff, das, event, mailoutbox
):
    staff_logs_in(client, staff)
    confirm = client.get(_publish_url(event)).content.decode()
    assert "2 DAs are emailed the schedule now" in confirm
    assert not ConnectivityEvent.objects.get().is_published
    response = client.post(_publish_url(event))
    assert response.status_code == 302 and response["Location"] == _change_url(event)
    event.refresh_from_db()
    assert event.is_published and event.published_by == staff
    audit = AuditEvent.objects.get(action=AuditAction.EVENT_PUBLISHED)
    assert audit.actor == staff
    assert audit.detail == {"event": event.pk, "terminal": "CCASS", "day": event.day.isoformat()}
    queued = OutboxEmail.objects.filter(kind="connectivity-published")
    assert sorted(queued.values_list("to", flat=True)) == sorted(da.email for da in das)

    relay()
    assert sorted(m.to[0] for m in mailoutbox) == sorted(da.email for da in das)
    message = mailoutbox[0]
    day = _written(event.day)
    # English first, then Traditional Chinese.
    english, chinese = _languages(message.body)
    assert (
        "CCASS Terminal: a connectivity test for two-factor authentication (2FA) will be held "
        f"on Saturday, {day}. Its sessions:"
    ) in english
    session_1 = f"Session 1, Primary Data Centre: {day} 18:00 to 20:00 (Hong Kong time)"
    session_2 = f"Session 2, Secondary Data Centre: {day} 22:00 to 23:00 (Hong Kong time)"
    assert english.index(session_1) < english.index(session_2)
    assert "are carried forward to the later sessions and to production" in english
    assert "are NOT carried forward: they are undone when the session ends" in english
    assert "Login with OTP - Online Functions" in english
    deadline = _written(event.day - dt.timedelta(days=8))
    assert f"Register your firm on or before {deadline} 23:59 (Hong Kong time)" in english
    assert "星期六" in chinese and _written(event.day, "zh-hant") in chinese
    assert "以一次性密碼登入 - 網上功能" in chinese
    link = f"http://testserver/dms/events/{event.pk}/"
    assert link in english and link in chinese
    (html, _mimetype), *_rest = message.alternatives
    assert html.index('<div lang="en">') < html.index(session_1) < html.index('lang="zh-Hant"')
    assert html.count(f'<a href="{link}">') == 2
    subject_en, subject_zh = message.subject.split(" / ")
    assert subject_en == f"CCASS Terminal: connectivity test for 2FA on {day}"
    assert _written(event.day, "zh-hant") in subject_zh
    page = client.get(_change_url(event)).content.decode()
    assert f'href="{_publish_url(event)}"' not in page


def test_publishing_twice_sends_nothing_more(client, staff, das, event):
    first = _publish(event, staff)
    other = factories.StaffFactory(login_id="hkex.ops9")
    again = services.event_publish(event=event, acting_user=other)
    assert again.published_at == first.published_at and again.published_by == staff
    staff_logs_in(client, staff)
    response = client.post(_publish_url(event), follow=True)
    assert "This event was published already." in response.content.decode()
    assert AuditEvent.objects.filter(action=AuditAction.EVENT_PUBLISHED).count() == 1
    assert OutboxEmail.objects.filter(kind="connectivity-published").count() == len(das)


def test_an_event_without_sessions_is_not_published(client, staff, das, event):
    event.sessions.all().delete()
    staff_logs_in(client, staff)
    response = client.post(_publish_url(event), follow=True)
    assert "Add the event&#x27;s sessions before publishing it." in response.content.decode()
    assert not ConnectivityEvent.objects.get().is_published
    assert not OutboxEmail.objects.exists()


def test_a_published_event_keeps_its_terminal_and_sessions_and_cannot_be_deleted(
    client, staff, event
):
    _publish(event, staff)
    staff_logs_in(client, staff)
    page = client.get(_change_url(event)).content.decode()
    assert 'name="terminal"' not in page
    assert 'name="sessions-0-DELETE"' not in page
    delete = reverse("admin:migration_connectivityevent_delete", args=[event.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert ConnectivityEvent.objects.filter(pk=event.pk).exists()


# Moving times ------------------------------------------------------------------------------


def test_moving_a_published_events_session_emails_the_das_again_and_is_audited(
    client, staff, das, event, mailoutbox
):
    _publish(event, staff)
    relay()
    mailoutbox.clear()
    one = _session(event, "Session 1")
    old_end = one.ends_at
    new_end = old_end + dt.timedelta(minutes=30)
    staff_logs_in(client, staff)
    response = client.post(_change_url(event), _change_data(event, Session_1={"ends_at": new_end}))
    assert response.status_code == 302, response.content.decode()
    one.refresh_from_db()
    assert one.ends_at == new_end and one.starts_at == old_end - dt.timedelta(hours=2)
    audit = AuditEvent.objects.get(action=AuditAction.EVENT_RESCHEDULED)
    assert audit.actor == staff
    assert audit.detail == {
        "event": event.pk,
        "terminal": "CCASS",
        "day": event.day.isoformat(),
        "changes": [
            {
                "what": "ends_at",
                "session": "Session 1",
                "old": timezone.localtime(old_end, HKT).isoformat(),
                "new": timezone.localtime(new_end, HKT).isoformat(),
            }
        ],
    }
    queued = OutboxEmail.objects.filter(kind="connectivity-rescheduled")
    assert sorted(queued.values_list("to", flat=True)) == sorted(da.email for da in das)

    relay()
    assert len(mailoutbox) == len(das)
    english, chinese = _languages(mailoutbox[0].body)
    day = _written(event.day)
    change = f"Session 1 ends: now {day} 20:30 (was {day} 20:00)"
    schedule = f"Session 1, Primary Data Centre: {day} 18:00 to 20:30 (Hong Kong time)"
    assert english.index(change) < english.index("The sessions now:") < english.index(schedule)
    zh_day = _written(event.day, "zh-hant")
    # (Only the dates: the sentences are translated after this change.)
    assert f"{zh_day} 20:30" in chinese and f"{zh_day} 20:00" in chinese
    assert mailoutbox[0].subject.startswith(
        f"CCASS Terminal: the connectivity test on {day} has changed / "
    )


def test_moving_the_deadline_of_a_published_event_is_told_too(staff, das, event):
    _publish(event, staff)
    new = event.registration_deadline + dt.timedelta(days=2)
    moved = services.event_reschedule(
        event=event,
        changes=services.EventTimes(registration_deadline=new),
        acting_user=staff,
    )
    assert [change["what"] for change in moved] == ["registration_deadline"]
    assert ConnectivityEvent.objects.get().registration_deadline == new
    assert OutboxEmail.objects.filter(kind="connectivity-rescheduled").count() == len(das)
    # The same times again: nothing moved, nobody told twice.
    services.event_reschedule(
        event=event, changes=services.EventTimes(registration_deadline=new), acting_user=staff
    )
    assert AuditEvent.objects.filter(action=AuditAction.EVENT_RESCHEDULED).count() == 1


def test_moving_the_day_moves_the_sessions_with_it(client, staff, das, event):
    _publish(event, staff)
    staff_logs_in(client, staff)
    new_day = event.day + dt.timedelta(days=7)
    data = _change_data(event)
    data["day"] = new_day.isoformat()
    assert client.post(_change_url(event), data).status_code == 302
    times = [(s.name, s.starts_at, s.ends_at) for s in event.sessions.order_by("position")]
    at = connectivity.hong_kong_at
    assert times == [
        ("Session 1", at(new_day, dt.time(18)), at(new_day, dt.time(20))),
        ("Session 2", at(new_day, dt.time(22)), at(new_day, dt.time(23))),
    ]
    (audit,) = AuditEvent.objects.filter(action=AuditAction.EVENT_RESCHEDULED)
    assert [change["what"] for change in audit.detail["changes"]] == [
        "day",
        "starts_at",
        "ends_at",
        "starts_at",
        "ends_at",
    ]


def test_moving_an_unpublished_event_tells_nobody(client, staff, das, event):
    two = _session(event, "Session 2")
    new_start = two.starts_at - dt.timedelta(minutes=30)
    staff_logs_in(client, staff)
    data = _change_data(event, Session_2={"starts_at": new_start})
    data["day"] = (event.day + dt.timedelta(days=1)).isoformat()
    response = client.post(_change_url(event), data)
    assert response.status_code == 302
    two.refresh_from_db()
    assert two.starts_at == new_start
    assert ConnectivityEvent.objects.get().day == event.day + dt.timedelta(days=1)
    assert not AuditEvent.objects.filter(action=AuditAction.EVENT_RESCHEDULED).exists()
    assert not OutboxEmail.objects.exists()


def test_a_published_events_sessions_keep_what_the_das_were_told(client, staff, das, event):
    """Once published, a session's name, data centre, entries and carry-forward are read-only
    (what the DAs registered for); its times still move, with the email. The browser posts no
    read-only field."""
    _publish(event, staff)
    two = _session(event, "Session 2")
    staff_logs_in(client, staff)
    page = client.get(_change_url(event)).content.decode()
    assert 'name="sessions-1-carried_forward"' not in page
    assert 'name="sessions-1-entries"' not in page
    data = _change_data(event, Session_2={"ends_at": two.ends_at + dt.timedelta(minutes=30)})
    for key in [
        k for k in data if k.endswith(("-name", "-data_centre", "-entries", "-carried_forward"))
    ]:
        del data[key]
    data["title"] = "Connectivity test"
    assert client.post(_change_url(event), data).status_code == 302
    assert ConnectivityEvent.objects.get().title == "Connectivity test"
    two.refresh_from_db()
    assert (two.name, two.carried_forward) == ("Session 2", False)
    assert two.ends_at == connectivity.hong_kong_at(event.day, dt.time(23, 30))
    assert OutboxEmail.objects.filter(kind="connectivity-rescheduled").exists()


def test_a_session_ending_before_it_starts_is_refused(client, staff, das, event):
    _publish(event, staff)
    one = _session(event, "Session 1")
    staff_logs_in(client, staff)
    response = client.post(
        _change_url(event),
        _change_data(event, Session_1={"ends_at": one.starts_at - dt.timedelta(minutes=1)}),
    )
    assert response.status_code == 200
    assert "A session must end after it starts." in response.content.decode()
    one.refresh_from_db()
    assert one.ends_at == one.starts_at + dt.timedelta(hours=2)
    assert not OutboxEmail.objects.filter(kind="connectivity-rescheduled").exists()


def test_a_session_that_has_ended_cannot_be_changed(client, staff, das, event):
    _publish(event, staff)
    one = _session(event, "Session 1")
    ended = timezone.now() - dt.timedelta(hours=1)
    ConnectivitySession.objects.filter(pk=one.pk).update(
        starts_at=ended - dt.timedelta(hours=2), ends_at=ended
    )
    staff_logs_in(client, staff)
    response = client.post(
        _change_url(event),
        _change_data(event, Session_1={"ends_at": ended + dt.timedelta(hours=3)}),
    )
    assert response.status_code == 200
    assert "Session 1 ended at" in response.content.decode()
    assert "it can no longer be changed." in response.content.decode()
    assert ConnectivitySession.objects.get(pk=one.pk).ends_at == ended
    with pytest.raises(connectivity.ConnectivityError, match="can no longer be changed"):
        services.event_reschedule(
            event=event,
            changes=services.EventTimes(
                sessions={one.pk: (ended - dt.timedelta(hours=2), ended + dt.timedelta(hours=1))}
            ),
            acting_user=staff,
        )
    assert not AuditEvent.objects.filter(action=AuditAction.EVENT_RESCHEDULED).exists()
    assert not OutboxEmail.objects.filter(kind="connectivity-rescheduled").exists()


def test_new_sessions_of_an_unpublished_event_come_after_the_others(client, staff, event):
    staff_logs_in(client, staff)
    data = _change_data(event)
    day = event.day
    data.update(
        {
            "sessions-TOTAL_FORMS": 3,
            "sessions-2-event": event.pk,
            "sessions-2-name": "Session 3",
            "sessions-2-data_centre": DataCentre.PRIMARY,
            "sessions-2-starts_at_0": day.isoformat(),
            "sessions-2-starts_at_1": "23:15",
            "sessions-2-ends_at_0": day.isoformat(),
            "sessions-2-ends_at_1": "23:45",
            "sessions-2-entries": [Entry.OTP_DMS.value],
        }
    )
    assert client.post(_change_url(event), data).status_code == 302
    three = _session(event, "Session 3")
    assert three.position == 3 and three.entries == ["otp_dms"] and not three.carried_forward


# Access ------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["from_circular", "publish", "change"])
def test_the_event_pages_are_for_staff_who_logged_in_with_otp(
    client, staff, maker_da, event, which
):
    url = {
        "from_circular": FROM_CIRCULAR,
        "publish": _publish_url(event),
        "change": _change_url(event),
    }[which]
    assert client.get(url)["Location"].startswith("/admin/login/")
    client.force_login(staff)  # a password alone
    assert client.get(url)["Location"].startswith("/admin/login/")
    client.logout()
    log_in_with_app(client, maker_da, scope="dms")
    response = client.post(url)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert not ConnectivityEvent.objects.get().is_published
