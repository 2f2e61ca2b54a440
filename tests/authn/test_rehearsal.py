"""The connectivity test as users and DAs live it: logins in each session recorded once,
"Function not available", unregistered firms refused, 2FA initiated in Session 1 carried
forward, and the account changes of Session 2 undone at its end (footnotes 1-4)."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import time_machine
from django.contrib.auth.hashers import check_password
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditAction, AuditEvent
from authn import rehearsal
from authn.devices import backup_codes_issue
from authn.models import AccountSnapshot, BackupCode, BackupCodeDevice
from migration.connectivity import hong_kong_at
from migration.models import (
    ConnectivityCheck,
    ConnectivityEvent,
    ConnectivityRegistration,
    ConnectivitySession,
    Phase,
)
from outbox.models import OutboxEmail
from participants.models import User
from tests import certs, factories
from tests.authn.test_smartcard import card_login, register, through_proxy
from tests.factories import USER_PASSWORD
from tests.helpers import TOTP, otp_step, password_step

pytestmark = pytest.mark.django_db

DAY = dt.date(2027, 6, 12)  # a Saturday
SESSION_1 = hong_kong_at(DAY, dt.time(18, 30))
BETWEEN = hong_kong_at(DAY, dt.time(21, 0))
SESSION_2 = hong_kong_at(DAY, dt.time(22, 15))
AFTER = hong_kong_at(DAY, dt.time(23, 5))
NEXT_BUSINESS_DAY = hong_kong_at(DAY + dt.timedelta(days=2), dt.time(9, 0))
NEW_PASSWORD = "A brand new passphrase 2027"


@pytest.fixture(autouse=True)
def _trusted_proxy(settings):
    settings.SMARTCARD_TRUSTED_PROXIES = ["10.20.0.5"]


@pytest.fixture
def event(parallel_run) -> ConnectivityEvent:
    return factories.ConnectivityEventFactory(day=DAY)


@pytest.fixture
def registered(event, firm, maker_da) -> ConnectivityRegistration:
    return ConnectivityRegistration.objects.create(
        event=event, participant=firm, registered_by=maker_da, registered_at=event.created_at
    )


def session(event: ConnectivityEvent, position: int) -> ConnectivitySession:
    return event.sessions.get(position=position)


def otp_login(client, user, *, scope: str = "online"):
    """Both steps of an OTP login with the user's app; the answer to the code step."""
    response = password_step(client, user.login_id, scope=scope)
    assert response.status_code == 302, response.content.decode()[:1500]
    device = TOTPDevice.objects.get(user=user, confirmed=True)
    return otp_step(client, TOTP().code(device), scope=scope)


def checks() -> list[tuple[str, str, str, str]]:
    return sorted(
        (check.session.name, check.user.login_id, check.method, check.scope)
        for check in ConnectivityCheck.objects.select_related("session", "user")
    )


# Logins in a session ------------------------------------------------------------------------


def test_otp_login_in_session_1_shows_function_not_available_and_is_recorded_once(
    client, registered, user
):
    with time_machine.travel(SESSION_1, tick=False):
        response = otp_login(client, user)
        assert response["Location"] == reverse("authn:connectivity-test")
        page = client.get(response["Location"]).content.decode()
        assert "Function not available" in page
        assert "Session 1" in page and "Primary Data Centre" in page
        assert 'action="/logout/"' in page
        # Every function answers the same while the session runs.
        assert client.get(reverse("authn:online-home"))["Location"] == "/connectivity-test/"
        client.post(reverse("authn:logout"))
    # A second login (codes a few minutes apart, as a person's would be): still one check.
    for minutes, scope in ((3, "online"), (6, "reports")):
        with time_machine.travel(SESSION_1 + dt.timedelta(minutes=minutes), tick=False):
            assert otp_login(client, user, scope=scope)["Location"] == "/connectivity-test/"
            client.post(reverse("authn:logout"))
    assert checks() == [
        ("Session 1", user.login_id, "otp", "online"),
        ("Session 1", user.login_id, "otp", "reports"),
    ]
    assert AuditEvent.objects.filter(action=AuditAction.CONNECTIVITY_CHECKED).count() == 2


def test_smartcard_login_of_a_da_in_session_2_is_recorded_by_method_and_scope(
    client, registered, maker_da
):
    card = certs.make_card_cert(certs.make_ca(), holder=maker_da.name)
    register(card, maker_da)
    with time_machine.travel(SESSION_2, tick=False):
        response = card_login(client, through_proxy(card), maker_da.login_id, entry="dms")
        assert response["Location"] == reverse("authn:connectivity-test")
        assert "Secondary Data Centre" in client.get(response["Location"]).content.decode()
        assert client.get("/dms/")["Location"] == "/connectivity-test/"
    assert checks() == [("Session 2", maker_da.login_id, "smartcard", "dms")]


def test_an_unregistered_firm_is_told_so_with_the_hotline_and_not_logged_in(
    client, event, other_firm_user
):
    with time_machine.travel(SESSION_1, tick=False):
        response = password_step(client, other_firm_user.login_id)
        page = response.content.decode()
    assert response.status_code == 200
    assert "your firm is not registered" in page
    assert event.terminal.hotline in page
    assert "_auth_user_id" not in client.session
    assert checks() == []


def test_outside_a_session_nothing_of_the_test_shows(client, registered, user):
    with time_machine.travel(BETWEEN, tick=False):
        assert "Connectivity test in progress" not in client.get("/").content.decode()
        response = otp_login(client, user)
        assert response["Location"] == reverse("authn:online-home")
        assert client.get(reverse("authn:online-home")).status_code == 200
        assert client.get(reverse("authn:connectivity-test"))["Location"] == "/"
    with time_machine.travel(SESSION_1, tick=False):
        assert "Connectivity test in progress: Session 1" in client.get("/").content.decode()
    assert checks() == []


def test_an_unpublished_event_runs_no_session(client, firm, user, parallel_run):
    unpublished = factories.ConnectivityEventFactory(day=DAY, published_at=None)
    ConnectivityRegistration.objects.create(
        event=unpublished,
        participant=firm,
        registered_by=user,
        registered_at=unpublished.created_at,
    )
    with time_machine.travel(SESSION_1, tick=False):
        assert otp_login(client, user)["Location"] == reverse("authn:online-home")
    assert checks() == []


def test_a_test_login_ends_with_its_session(client, registered, user):
    with time_machine.travel(SESSION_2, tick=False):
        otp_login(client, user)
    with time_machine.travel(AFTER, tick=False):
        response = client.get(reverse("authn:connectivity-test"))
        assert response.status_code == 302
        assert "_auth_user_id" not in client.session


def test_session_2_does_not_open_2fa_initiation(registered, newcomer):
    from migration import phases

    factories.set_phase("CCASS", Phase.EMAIL_REGISTRATION)
    newcomer.refresh_from_db()
    with time_machine.travel(SESSION_1, tick=False):
        assert phases.setup_open_for(User.objects.get(pk=newcomer.pk))
    with time_machine.travel(SESSION_2, tick=False):
        assert not phases.setup_open_for(User.objects.get(pk=newcomer.pk))
    with time_machine.travel(BETWEEN, tick=False):
        assert not phases.setup_open_for(User.objects.get(pk=newcomer.pk))


def test_2fa_initiation_before_launch_only_for_registered_firms(event, registered, other_firm):
    from migration import phases

    factories.set_phase("CCASS", Phase.EMAIL_REGISTRATION)
    outsider = factories.UserFactory(participant=other_firm, login_id="B20000U77")
    with time_machine.travel(SESSION_1, tick=False):
        assert not phases.setup_open_for(User.objects.get(pk=outsider.pk))


# Carry-forward: Session 2's changes undone -----------------------------------------------


def change_password(user: User, password: str) -> None:
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        rehearsal.account_change_guard(user=locked)
        locked.set_password(password)
        locked.save(update_fields=["password"])


def change_app(user: User) -> TOTPDevice:
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        rehearsal.account_change_guard(user=locked)
        TOTPDevice.objects.filter(user=locked).delete()
        return TOTPDevice.objects.create(user=locked, name="New phone", confirmed=True)


def account(user: User) -> tuple[str, list[str], list[str]]:
    user = User.objects.get(pk=user.pk)
    return (
        user.password,
        sorted(TOTPDevice.objects.filter(user=user).values_list("key", flat=True)),
        sorted(BackupCode.objects.filter(device__user=user).values_list("code_hash", flat=True)),
    )


def test_session_2_changes_are_undone_at_its_end_and_the_old_credentials_work(
    client, registered, user, other_firm_user
):
    old_codes = backup_codes_issue(user=user)
    before = account(user)
    old_device = TOTPDevice.objects.get(user=user)
    with time_machine.travel(SESSION_2, tick=False):
        change_password(user, NEW_PASSWORD)
        new_device = change_app(user)
        new_codes = backup_codes_issue(user=user)
    # Outside the session, another account changes: that stays.
    with time_machine.travel(BETWEEN, tick=False):
        change_password(other_firm_user, NEW_PASSWORD)
    assert account(user) != before

    with time_machine.travel(AFTER, tick=False):
        counts = rehearsal.sessions_undo_due()
    assert counts == [{"accounts": 1, "devices": 2, "emails": 1}]
    assert account(user) == before
    restored = User.objects.get(pk=user.pk)
    assert restored.check_password(USER_PASSWORD) and not restored.check_password(NEW_PASSWORD)
    assert TOTPDevice.objects.filter(pk=old_device.pk).exists()
    assert not TOTPDevice.objects.filter(pk=new_device.pk).exists()
    backup = BackupCodeDevice.objects.get(user=user)
    assert backup.verify_token(old_codes[0]) and not backup.verify_token(new_codes[0])
    assert check_password(NEW_PASSWORD, User.objects.get(pk=other_firm_user.pk).password)

    # The user is told, the undo is audited with its counts, and a second run does nothing.
    (email,) = OutboxEmail.objects.filter(kind=rehearsal.CHANGES_UNDONE_EMAIL)
    assert email.to == user.email
    (undone,) = AuditEvent.objects.filter(action=AuditAction.SESSION_CHANGES_UNDONE)
    assert undone.detail["accounts"] == 1
    assert AuditEvent.objects.filter(action=AuditAction.ACCOUNT_RESTORED, user=user).count() == 1
    settled = account(user)
    with time_machine.travel(AFTER + dt.timedelta(minutes=5), tick=False):
        assert rehearsal.sessions_undo_due() == []
        assert rehearsal.session_undo(session_id=session(registered.event, 2).pk) is None
    assert account(user) == settled
    assert OutboxEmail.objects.filter(kind=rehearsal.CHANGES_UNDONE_EMAIL).count() == 1


def test_the_old_password_logs_in_again_after_session_2(client, registered, user):
    with time_machine.travel(SESSION_2, tick=False):
        change_password(user, NEW_PASSWORD)
        response = password_step(client, user.login_id)
        assert response.status_code == 200  # the old password no longer works in the session
    with time_machine.travel(AFTER, tick=False):
        rehearsal.sessions_undo_due()
    with time_machine.travel(NEXT_BUSINESS_DAY, tick=False):
        assert otp_login(client, user)["Location"] == reverse("authn:online-home")
        client.post(reverse("authn:logout"))
        assert password_step(client, user.login_id, password=NEW_PASSWORD).status_code == 200


def test_session_1_setup_is_carried_forward(registered, user):
    with time_machine.travel(SESSION_1, tick=False):
        change_password(user, NEW_PASSWORD)
    assert AccountSnapshot.objects.count() == 0
    with time_machine.travel(AFTER, tick=False):
        rehearsal.sessions_undo_due()
    assert User.objects.get(pk=user.pk).check_password(NEW_PASSWORD)


def test_a_change_after_the_session_before_the_undo_runs_goes_on_top(registered, user):
    with time_machine.travel(SESSION_2, tick=False):
        change_app(user)
    with time_machine.travel(AFTER, tick=False):
        change_password(user, NEW_PASSWORD)  # the undo has not run yet
        rehearsal.sessions_undo_due()
    restored = User.objects.get(pk=user.pk)
    assert restored.check_password(NEW_PASSWORD)
    assert TOTPDevice.objects.filter(user=user).get().name != "New phone"
    # Told and audited once, when the later change put the account back first.
    assert OutboxEmail.objects.filter(kind=rehearsal.CHANGES_UNDONE_EMAIL).count() == 1
    assert AuditEvent.objects.filter(action=AuditAction.ACCOUNT_RESTORED, user=user).count() == 1


def test_the_undo_waits_for_the_session_to_end(registered, user):
    second = session(registered.event, 2)
    with time_machine.travel(SESSION_2, tick=False):
        change_password(user, NEW_PASSWORD)
        assert rehearsal.session_undo(session_id=second.pk) is None
    assert User.objects.get(pk=user.pk).check_password(NEW_PASSWORD)


def test_the_undo_queries_do_not_grow_with_the_accounts(firm, parallel_run):
    counts = []
    for count, day in ((2, DAY + dt.timedelta(days=7)), (12, DAY + dt.timedelta(days=14))):
        event = factories.ConnectivityEventFactory(day=day)
        users = [factories.UserFactory(participant=firm) for _ in range(count)]
        for person in users:
            factories.TOTPDeviceFactory(user=person)
            backup_codes_issue(user=person)
        with time_machine.travel(hong_kong_at(day, dt.time(22, 30)), tick=False):
            for person in users:
                change_password(person, NEW_PASSWORD)
                change_app(person)
        second = event.sessions.get(position=2)
        with (
            time_machine.travel(hong_kong_at(day, dt.time(23, 30)), tick=False),
            CaptureQueriesContext(connection) as captured,
        ):
            assert rehearsal.session_undo(session_id=second.pk)["accounts"] == count
        counts.append(len(captured.captured_queries))
    assert counts[0] == counts[1]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_undo_runners_racing_apply_it_once(parallel_run, firm):
    event = factories.ConnectivityEventFactory(day=DAY)
    person = factories.UserFactory(participant=firm)
    factories.TOTPDeviceFactory(user=person)
    with time_machine.travel(SESSION_2, tick=False):
        change_password(person, NEW_PASSWORD)
    second = event.sessions.get(position=2)
    barrier = threading.Barrier(2)
    results: list[object] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(rehearsal.session_undo(session_id=second.pk, now=AFTER))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results, key=lambda r: r is None) == [
        {"accounts": 1, "devices": 1, "emails": 1},
        None,
    ]
    assert AuditEvent.objects.filter(action=AuditAction.SESSION_CHANGES_UNDONE).count() == 1
    assert User.objects.get(pk=person.pk).check_password(USER_PASSWORD)


def test_staff_command_undoes_once_and_says_so(registered, user):
    from io import StringIO

    from django.core.management import call_command
    from django.core.management.base import CommandError

    second = session(registered.event, 2)
    with time_machine.travel(SESSION_2, tick=False):
        change_password(user, NEW_PASSWORD)
        with pytest.raises(CommandError, match="not ended yet"):
            call_command("connectivity_undo", session=second.pk)
    with time_machine.travel(AFTER, tick=False):
        out = StringIO()
        call_command("connectivity_undo", session=second.pk, stdout=out)
        assert "1 accounts put back" in out.getvalue()
        again = StringIO()
        call_command("connectivity_undo", stdout=again)
        assert again.getvalue().strip() == "nothing is due"
    assert User.objects.get(pk=user.pk).check_password(USER_PASSWORD)


def test_beat_task_undoes_the_due_sessions(registered, user):
    from authn.tasks import connectivity_undo_task

    with time_machine.travel(SESSION_2, tick=False):
        change_password(user, NEW_PASSWORD)
    with time_machine.travel(AFTER, tick=False):
        assert connectivity_undo_task() == 1
        assert connectivity_undo_task() == 0


def test_2fa_initiated_in_session_1_before_launch_holds_in_session_2_and_after(
    client, event, firm, maker_da, newcomer, django_capture_on_commit_callbacks, mailoutbox
):
    """Footnotes 1 and 2: initiation in Session 1 is carried forward to Session 2 and the
    next business day, even when the launch has not come yet on the day of the test."""
    import re
    from base64 import b32decode

    from django_otp.oath import TOTP as TOTPClock

    from authn.activation import activation_send
    from tests.helpers import activation_link, begin_setup

    factories.set_phase("CCASS", Phase.EMAIL_REGISTRATION)
    ConnectivityRegistration.objects.create(
        event=event, participant=firm, registered_by=maker_da, registered_at=event.created_at
    )
    password = "initiated-in-session-one-2027"
    with time_machine.travel(SESSION_1, tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            activation_send(user=newcomer, acting_user=maker_da)
        begin_setup(client, activation_link(mailoutbox[-1].body))
        client.post(reverse("authn:setup-password"), {"password1": password, "password2": password})
        client.post(reverse("authn:setup-channel"), {"channel": "app"})
        page = client.get(reverse("authn:setup-verify")).content.decode()
        secret = re.search(r'data-testid="totp-secret">([A-Z2-7 ]+)<', page).group(1)
        clock = TOTPClock(b32decode(secret.replace(" ", "")), 30, 0, 6, 0)
        clock.time = SESSION_1.timestamp()
        response = client.post(reverse("authn:setup-verify"), {"code": f"{clock.token():06d}"})
        assert response["Location"] == reverse("authn:setup-done")
        client.post(reverse("authn:setup-backup-codes-kept"))
        client.post(reverse("authn:logout"))
        response = password_step(client, newcomer.login_id, password=password)
        device = TOTPDevice.objects.get(user=newcomer, confirmed=True)
        response = otp_step(client, TOTP().code(device))
        assert response["Location"] == "/connectivity-test/"
        client.post(reverse("authn:logout"))
    with time_machine.travel(SESSION_2, tick=False):
        password_step(client, newcomer.login_id, password=password)
        assert otp_step(client, TOTP().code(device))["Location"] == "/connectivity-test/"
        client.post(reverse("authn:logout"))
    with time_machine.travel(AFTER, tick=False):
        rehearsal.sessions_undo_due()
    factories.set_phase("CCASS", Phase.PARALLEL_RUN)  # the launch came
    with time_machine.travel(NEXT_BUSINESS_DAY, tick=False):
        password_step(client, newcomer.login_id, password=password)
        assert otp_step(client, TOTP().code(device))["Location"] == reverse("authn:online-home")
    assert checks() == [
        ("Session 1", newcomer.login_id, "otp", "online"),
        ("Session 2", newcomer.login_id, "otp", "online"),
    ]


def test_changes_through_the_account_pages_in_session_2_are_undone(client, registered, user):
    """The real path: a password, a new phone and new backup codes, each through its page
    and re-authenticated, in Session 2; after its end the old ones work and the new do not."""
    import re

    from tests.helpers import shown_totp_secret, totp_code_for_secret

    old_codes = backup_codes_issue(user=user)
    old_device = TOTPDevice.objects.get(user=user)
    minute = iter(range(15, 60, 2))

    def at_session_2():
        return time_machine.travel(hong_kong_at(DAY, dt.time(22, next(minute))), tick=False)

    def app_code() -> str:
        return TOTP().code(TOTPDevice.objects.get(user=user, confirmed=True))

    with at_session_2():
        assert otp_login(client, user)["Location"] == "/connectivity-test/"
    with at_session_2():
        response = client.post(
            reverse("authn:account-password"),
            {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "code": app_code()},
        )
        assert response["Location"] == reverse("authn:account")
    with at_session_2():
        response = client.post(reverse("authn:account-backup-codes"), {"code": app_code()})
        assert response.status_code == 302
        page = client.get(reverse("authn:account-backup-codes-done")).content.decode()
        new_codes = re.findall(r"<code>([A-Z0-9]{5}-[A-Z0-9]{5})</code>", page)
        assert len(new_codes) == 10
    with at_session_2():
        response = client.post(
            reverse("authn:account-channel"), {"channel": "app", "code": app_code()}
        )
        assert response.status_code == 302
        secret = shown_totp_secret(
            client.get(reverse("authn:account-channel-verify")).content.decode()
        )
        response = client.post(
            reverse("authn:account-channel-verify"), {"code": totp_code_for_secret(secret)}
        )
        assert response.status_code == 302
    new_device = TOTPDevice.objects.get(user=user, confirmed=True)
    assert new_device.pk != old_device.pk
    assert User.objects.get(pk=user.pk).check_password(NEW_PASSWORD)

    with time_machine.travel(AFTER, tick=False):
        assert rehearsal.sessions_undo_due()[0]["accounts"] == 1
    restored = User.objects.get(pk=user.pk)
    assert restored.check_password(USER_PASSWORD) and not restored.check_password(NEW_PASSWORD)
    assert list(TOTPDevice.objects.filter(user=user).values_list("pk", flat=True)) == [
        old_device.pk
    ]
    backup = BackupCodeDevice.objects.get(user=user)
    # The old code first: a wrong one makes the next attempt wait (the device's throttle).
    assert backup.verify_token(old_codes[0])
    assert not backup.verify_token(new_codes[0])
    with time_machine.travel(NEXT_BUSINESS_DAY, tick=False):
        client.post(reverse("authn:logout"))
        assert otp_login(client, user)["Location"] == reverse("authn:online-home")


def test_a_das_reset_of_a_users_device_in_session_2_is_undone(registered, user):
    from authn.devices import otp_devices_remove

    with time_machine.travel(SESSION_2, tick=False), transaction.atomic():
        otp_devices_remove(user=User.objects.select_for_update().get(pk=user.pk))
    assert not TOTPDevice.objects.filter(user=user).exists()
    with time_machine.travel(AFTER, tick=False):
        rehearsal.sessions_undo_due()
    assert TOTPDevice.objects.filter(user=user, confirmed=True).exists()


@pytest.mark.parametrize("position", [1, 2])
def test_each_method_in_each_session_is_recorded_once(client, registered, user, position):
    card = certs.make_card_cert(certs.make_ca(), holder=user.name)
    register(card, user)
    when = SESSION_1 if position == 1 else SESSION_2
    name = f"Session {position}"
    for minutes in (0, 3):
        with time_machine.travel(when + dt.timedelta(minutes=minutes), tick=False):
            response = card_login(client, through_proxy(card), user.login_id)
            assert response["Location"] == "/connectivity-test/"
            client.post(reverse("authn:logout"))
            assert otp_login(client, user)["Location"] == "/connectivity-test/"
            client.post(reverse("authn:logout"))
    assert checks() == [
        (name, user.login_id, "otp", "online"),
        (name, user.login_id, "smartcard", "online"),
        (name, user.login_id, "smartcard", "reports"),
    ]


def test_an_unregistered_firm_is_refused_at_the_card_login_too(client, event, other_firm_user):
    card = certs.make_card_cert(certs.make_ca(), holder=other_firm_user.name)
    register(card, other_firm_user)
    with time_machine.travel(SESSION_2, tick=False):
        response = card_login(client, through_proxy(card), other_firm_user.login_id)
    assert response.status_code == 200
    assert "your firm is not registered" in response.content.decode()
    assert checks() == []
