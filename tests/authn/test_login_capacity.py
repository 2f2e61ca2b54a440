"""Launch morning: the login path costs the same at 30 users as at 20,000, and its hash is
the configured Argon2id, upgraded from older parameters at the next login."""

from __future__ import annotations

import pytest
from django.contrib.auth.hashers import Argon2PasswordHasher, get_hasher, make_password
from django.contrib.sessions.models import Session
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from authn.models import EmailOTPDevice
from migration import phases
from migration.models import Phase
from participants.models import Participant, User
from tests import factories
from tests.helpers import TOTP, otp_login_url

pytestmark = pytest.mark.django_db

LOGIN = otp_login_url("online")
VERIFY = otp_login_url("online", step="verify")
STEPS = ("login form", "password", "code form", "code")
# The bound: a full login (all four requests) in at most 16 queries.
MOST_QUERIES = 16


def _crowd(prefix: str, size: int) -> None:
    """`size` more users over fifty firms, each with an app, made in bulk."""
    terminal = factories.terminal("CCASS")
    Participant.objects.bulk_create(
        Participant(participant_id=f"{prefix}{n:05d}", name=f"Crowd {n}", terminal=terminal)
        for n in range(50)
    )
    firm_ids = list(
        Participant.objects.filter(participant_id__startswith=prefix).values_list("pk", flat=True)
    )
    now = timezone.now()
    User.objects.bulk_create(
        User(
            login_id=f"{prefix}{n % 50:05d}U{n:05d}",
            participant_id=firm_ids[n % 50],
            password="!",
            email=f"{prefix.lower()}{n}@crowd.example",
            two_factor_ready_at=now,
        )
        for n in range(size)
    )
    ids = User.objects.filter(participant_id__in=firm_ids).values_list("pk", flat=True)
    TOTPDevice.objects.bulk_create(
        TOTPDevice(user_id=pk, name="Authenticator app", confirmed=True) for pk in ids
    )


def _queries_per_step(client, person, device) -> dict[str, int]:
    """Log `person` in through the four requests; the queries each one sent, with the
    terminal's phase read afresh (as in a process that has not read it for a while)."""
    phases.entry_terminals_forget()
    counts = {}

    def step(name, request):
        with CaptureQueriesContext(connection) as captured:
            response = request()
        counts[name] = len(captured.captured_queries)
        return response

    assert step("login form", lambda: client.get(LOGIN)).status_code == 200
    response = step(
        "password",
        lambda: client.post(
            LOGIN, {"login_id": person.login_id.lower(), "password": factories.USER_PASSWORD}
        ),
    )
    assert response.status_code == 302 and response["Location"] == VERIFY
    assert step("code form", lambda: client.get(VERIFY)).status_code == 200
    code = TOTP().code(device)
    response = step("code", lambda: client.post(VERIFY, {"code": code}))
    assert response.status_code == 302 and "/login/" not in response["Location"]
    return counts


# Outside a test's transaction, so that the statements are those production sends:
# BEGIN and COMMIT rather than savepoints, and the session written in autocommit.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_full_login_costs_the_same_queries_at_30_and_at_20000_users(client):
    factories.set_phase("CCASS", Phase.PARALLEL_RUN)
    firm = factories.ParticipantFactory(participant_id="B10000")
    people = []
    for n in range(2):
        person = factories.UserFactory(participant=firm, login_id=f"B10000U{n + 1:02d}")
        people.append((person, factories.TOTPDeviceFactory(user=person)))
    _crowd("Q", 28)
    assert User.objects.count() == 30
    small = _queries_per_step(client, *people[0])
    _crowd("R", 20_000 - 30)
    assert User.objects.count() == 20_000
    client.cookies.clear()
    large = _queries_per_step(client, *people[1])
    assert small == large
    assert sum(large.values()) <= MOST_QUERIES, large


def test_the_code_step_reads_the_user_with_the_device_in_one_query(client, user):
    device = TOTPDevice.objects.get(user=user)
    client.post(LOGIN, {"login_id": user.login_id, "password": factories.USER_PASSWORD})
    code = TOTP().code(device)
    with CaptureQueriesContext(connection) as captured:
        response = client.post(VERIFY, {"code": code})
    assert response.status_code == 302
    selects = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("SELECT")]
    user_reads = [sql for sql in selects if 'FROM "participants_user"' in sql]
    device_reads = [sql for sql in selects if '"otp_totp_totpdevice"' in sql]
    # One statement reads the device (locked) with its user; nothing reads the user apart.
    assert len(device_reads) == 1 and '"participants_user"' in device_reads[0]
    assert user_reads == []


def test_login_ids_are_unique_whatever_their_case(firm):
    factories.UserFactory(participant=firm, login_id="B10000U05")
    with pytest.raises(IntegrityError), transaction.atomic():
        factories.UserFactory(participant=firm, login_id="b10000u05")


def test_the_login_lookup_uses_the_case_insensitive_index(firm):
    factories.UserFactory(participant=firm, login_id="B10000U05")
    queryset = User.objects.by_login_id("b10000U05")
    assert [u.login_id for u in queryset] == ["B10000U05"]
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET enable_seqscan = off")
            cursor.execute("EXPLAIN " + sql, params)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        plan = " ".join(str(row) for row in cursor.fetchall())
    assert "user_login_id_ci_unique" in plan, plan


def test_a_value_that_cannot_be_a_login_id_matches_nobody(firm):
    factories.UserFactory(participant=firm, login_id="B10000U05")
    assert not User.objects.by_login_id("B10000U05' OR '1'='1").exists()
    assert not User.objects.by_login_id("").exists()


def test_login_moves_the_session_to_a_new_key_and_the_old_one_is_gone(client, user):
    client.post(LOGIN, {"login_id": user.login_id, "password": factories.USER_PASSWORD})
    before = client.session.session_key
    assert Session.objects.filter(session_key=before).exists()
    client.post(VERIFY, {"code": TOTP().code(TOTPDevice.objects.get(user=user))})
    after = client.session.session_key
    assert after != before
    assert not Session.objects.filter(session_key=before).exists()
    assert Session.objects.filter(session_key=after).exists()
    # The old cookie opens nothing: a fixed session key is useless after login.
    client.cookies["sessionid"] = before
    assert client.get(reverse("authn:online-home")).status_code == 302


def test_an_email_channel_login_reads_its_device_once(client, email_user, mailoutbox):
    response = client.post(
        LOGIN, {"login_id": email_user.login_id, "password": factories.USER_PASSWORD}
    )
    assert response.status_code == 302
    device = EmailOTPDevice.objects.get(user=email_user)
    with CaptureQueriesContext(connection) as captured:
        page = client.get(VERIFY)
    assert page.status_code == 200
    assert "emailed a 6-digit code" in page.content.decode()
    reads = [q["sql"] for q in captured.captured_queries if '"authn_emailotpdevice"' in q["sql"]]
    # The page reads the device once, for its resend countdown: the one the password step chose.
    assert len(reads) == 1 and str(device.pk) in reads[0]


@pytest.fixture
def argon2(settings):
    """The configured hasher first, with small parameters so the test runs fast."""
    settings.PASSWORD_HASHERS = ["common.hashers.ConfiguredArgon2PasswordHasher"]
    settings.ARGON2_MEMORY_KIB = 1024
    settings.ARGON2_TIME_COST = 3
    settings.ARGON2_PARALLELISM = 1
    return settings


def test_the_hasher_takes_its_parameters_from_settings(argon2):
    encoded = make_password("a-long-enough-passphrase-1")
    decoded = get_hasher("argon2").decode(encoded)
    assert decoded["variety"] == "argon2id"
    assert (decoded["memory_cost"], decoded["time_cost"], decoded["parallelism"]) == (1024, 3, 1)


def test_a_hash_with_other_parameters_is_upgraded_at_the_next_login(argon2, client, user):
    old = Argon2PasswordHasher()  # Django's own: 100 MiB, 2 passes, 8 lanes
    old.memory_cost = 2048
    old.parallelism = 2
    assert old.time_cost == 2
    User.objects.filter(pk=user.pk).update(password=old.encode(factories.USER_PASSWORD, old.salt()))
    response = client.post(LOGIN, {"login_id": user.login_id, "password": factories.USER_PASSWORD})
    assert response.status_code == 302
    decoded = get_hasher("argon2").decode(User.objects.get(pk=user.pk).password)
    assert (decoded["memory_cost"], decoded["time_cost"], decoded["parallelism"]) == (1024, 3, 1)


def test_a_resend_after_the_email_device_was_removed_sends_nothing(client, email_user, mailoutbox):
    response = client.post(
        LOGIN, {"login_id": email_user.login_id, "password": factories.USER_PASSWORD}
    )
    assert response.status_code == 302
    EmailOTPDevice.objects.filter(user=email_user).delete()  # a DA reset the user's OTP
    resend = otp_login_url("online", step="resend")
    response = client.post(resend)
    assert response.status_code == 302
    page = client.get(VERIFY)
    assert page.status_code == 200
    assert "A new code is on its way" not in page.content.decode()


def _writes_and_commits(captured: CaptureQueriesContext) -> list[str]:
    """The step's statements reduced to what matters here: its session writes and COMMITs."""
    kinds = []
    for query in captured.captured_queries:
        sql = query["sql"] or ""
        if sql == "COMMIT":
            kinds.append("COMMIT")
        elif '"django_session"' in sql and not sql.startswith("SELECT"):
            kinds.append("session write")
    return kinds


# Outside a test's transaction, so that the COMMITs are those production sends.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_each_login_step_writes_its_session_before_its_one_commit(client):
    factories.set_phase("CCASS", Phase.PARALLEL_RUN)
    person = factories.UserFactory(participant=factories.ParticipantFactory())
    device = factories.TOTPDeviceFactory(user=person)
    client.get(LOGIN)
    with CaptureQueriesContext(connection) as password:
        response = client.post(
            LOGIN, {"login_id": person.login_id, "password": factories.USER_PASSWORD}
        )
    assert response.status_code == 302 and response["Location"] == VERIFY
    with CaptureQueriesContext(connection) as code:
        response = client.post(VERIFY, {"code": TOTP().code(device)})
    assert response.status_code == 302 and "/login/" not in response["Location"]
    # One durable commit a step, the session written inside it: not a second in autocommit.
    assert _writes_and_commits(password) == ["session write", "COMMIT"]
    assert _writes_and_commits(code) == ["session write", "COMMIT"]
    # And the browser holds a session that works: the new key, logged in.
    assert client.get(reverse("authn:online-home")).status_code == 200


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_session_write_undone_by_a_rollback_is_written_again(user):
    from authn.session_store import SessionStore

    store = SessionStore()
    store["pending"] = 1
    store.save()
    with pytest.raises(RuntimeError), transaction.atomic():
        store["pending"] = 2
        store.save()
        raise RuntimeError("the step failed after writing its session")
    # The row still holds 1: the response's save() must write 2, not take it as written.
    store.save()
    assert SessionStore(store.session_key).load()["pending"] == 2
    # Saved and unchanged since: a further save() sends nothing.
    with CaptureQueriesContext(connection) as captured:
        store.save()
    assert captured.captured_queries == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_login_statements_are_prepared_on_the_server(client):
    factories.set_phase("CCASS", Phase.PARALLEL_RUN)
    person = factories.UserFactory(participant=factories.ParticipantFactory())
    device = factories.TOTPDeviceFactory(user=person)
    client.post(LOGIN, {"login_id": person.login_id, "password": factories.USER_PASSWORD})
    assert client.post(VERIFY, {"code": TOTP().code(device)}).status_code == 302
    # An ORM query, run more often than psycopg's own threshold for preparing.
    for _ in range(6):
        assert User.objects.filter(login_id=person.login_id).exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    # The user by login ID, the device with its user, the session, the audit row: each
    # parsed once per connection, with its values bound on the server.
    assert any('LOWER(u."login_id") = $' in sql for sql in prepared), prepared
    assert any('FROM "otp_totp_totpdevice" d' in sql for sql in prepared), prepared
    assert any(sql.startswith('UPDATE "django_session"') for sql in prepared), prepared
    assert any(sql.startswith('INSERT INTO "audit_auditevent"') for sql in prepared), prepared
    # Everything else keeps Django's client-side binding, planned for its own values.
    assert not any('"participants_user"."login_id" =' in sql for sql in prepared), prepared


def test_session_keys_are_django_s_alphabet_and_length_and_never_repeat():
    from django.contrib.sessions.backends.base import VALID_KEY_CHARS

    from authn.session_store import new_session_key

    keys = {new_session_key() for _ in range(10_000)}
    assert len(keys) == 10_000
    assert all(len(key) == 32 and set(key) <= set(VALID_KEY_CHARS) for key in keys)
    # Every character turns up as often as another: ~8,889 times each, give or take 94.
    # Bytes taken modulo 36 would make four of them ~10,000.
    text = "".join(keys)
    counts = [text.count(char) for char in VALID_KEY_CHARS]
    assert min(counts) > 8_420 and max(counts) < 9_360, counts


@pytest.mark.postgres
@pytest.mark.django_db
def test_prepared_statements_can_be_turned_off_for_a_pooler():
    from common.postgresql.base import PreparingCursor

    plain = connection.copy()
    plain.settings_dict["OPTIONS"]["prepared_statements"] = False
    try:
        with plain.prepared_cursor() as cursor:
            assert not isinstance(cursor.cursor, PreparingCursor)
            cursor.execute("SELECT 1 WHERE 1 = %s", [1])
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            assert cursor.fetchone()[0] == 0
        with connection.prepared_cursor() as cursor:
            assert isinstance(cursor.cursor, PreparingCursor)
    finally:
        plain.close()
