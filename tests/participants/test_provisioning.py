"""Staff provision participants, users and smartcards from CSV files, and set card passwords."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.contrib.auth.hashers import is_password_usable
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from participants.models import DaDuty, Participant, Role, Smartcard, User
from tests import certs, factories
from tests.helpers import TOTP

pytestmark = pytest.mark.django_db

CARD_PASSWORD = "card-pass-2026"


def run(command, path, *args):
    """Run an import command; return its exit status and what it printed."""
    out = io.StringIO()
    try:
        call_command(command, str(path), *args, stdout=out)
    except CommandError as error:
        return 1, f"{out.getvalue()}{error}"
    return 0, out.getvalue()


def csv_file(tmp_path, text, name="rows.csv", bom=False):
    path = tmp_path / name
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return path


# Participants ----------------------------------------------------------------------------


def test_participants_file_creates_what_it_says(tmp_path):
    path = csv_file(
        tmp_path,
        "participant_id,name,kind,terminal,single_da_allowed\n"
        "B01234,Harbour Securities Limited,CP,CCASS,\n"
        "C05678,Peak Bank Limited,db,ccms,yes\n",
        bom=True,
    )
    status, out = run("import_participants", path)
    assert status == 0, out
    assert "line 2: B01234: created" in out
    assert "line 3: C05678: created" in out
    assert "2 created, 0 updated, 0 unchanged" in out
    bank = Participant.objects.select_related("terminal").get(participant_id="C05678")
    assert (bank.name, bank.kind, bank.terminal.code, bank.single_da_allowed) == (
        "Peak Bank Limited",
        "DB",
        "CCMS",
        True,
    )
    assert Participant.objects.get(participant_id="B01234").single_da_allowed is False


def test_participants_file_updates_and_leaves_unchanged_rows_alone(tmp_path, firm, other_firm):
    path = csv_file(
        tmp_path,
        # Columns in any order; an empty single_da_allowed keeps the current value.
        "terminal,kind,name,participant_id,single_da_allowed\n"
        f"CCASS,CP,{firm.name},{firm.participant_id},\n"
        f"CCASS,DB,Lantau Peak Bank Limited,{other_firm.participant_id},yes\n"
        "CCASS,CP,New Firm Limited,B07777,no\n",
    )
    status, out = run("import_participants", path)
    assert status == 0, out
    assert f"line 2: {firm.participant_id}: unchanged" in out
    assert f"line 3: {other_firm.participant_id}: updated (" in out
    assert "name Lantau Peak Brokers Limited -> Lantau Peak Bank Limited" in out
    assert "1 created, 1 updated, 1 unchanged" in out
    other_firm.refresh_from_db()
    assert (other_firm.name, other_firm.kind, other_firm.single_da_allowed) == (
        "Lantau Peak Bank Limited",
        "DB",
        True,
    )


def test_moving_a_participant_to_another_terminal_is_refused_and_nothing_is_written(tmp_path, firm):
    path = csv_file(
        tmp_path,
        "participant_id,name,kind,terminal\n"
        "B07777,New Firm Limited,CP,CCASS\n"
        f"{firm.participant_id},{firm.name},CP,CCMS\n",
    )
    status, out = run("import_participants", path)
    assert status == 1
    assert (
        f"line 3: {firm.participant_id}: refused: participant {firm.participant_id} uses the "
        "CCASS terminal" in out
    )
    assert "line 2: B07777: would be created" in out
    assert "1 of 2 rows refused; no participants were written." in out
    assert not Participant.objects.filter(participant_id="B07777").exists()


def test_a_header_without_a_required_column_is_refused_by_name(tmp_path):
    path = csv_file(tmp_path, "participant_id,name,terminal\nB07777,New Firm Limited,CCASS\n")
    with pytest.raises(CommandError, match="missing column kind"):
        call_command("import_participants", str(path), stdout=io.StringIO())


def test_a_file_without_a_header_row_is_refused(tmp_path):
    path = csv_file(tmp_path, "B07777,New Firm Limited,CP,CCASS\n")
    with pytest.raises(CommandError, match="unknown column b07777"):
        call_command("import_participants", str(path), stdout=io.StringIO())


# Users -----------------------------------------------------------------------------------


def users_csv(tmp_path, *rows):
    header = "login_id,participant_id,name,role,da_duty,email,scope_online,scope_reports\n"
    return csv_file(tmp_path, header + "".join(f"{row}\n" for row in rows), name="users.csv")


def test_users_file_creates_users_and_das_without_a_usable_password(tmp_path, firm):
    pid = firm.participant_id
    path = users_csv(
        tmp_path,
        f"{pid}U01,{pid},Chan Tai Man,user,,Tai.Man@FIRM.Example,,no",
        f"{pid}DA1,{pid},Wong Siu Ming,da,checker,da1@firm.example,,",
    )
    status, out = run("import_users", path)
    assert status == 0, out
    assert "2 created, 0 updated, 0 unchanged" in out
    user = User.objects.get(login_id=f"{pid}U01")
    assert user.participant == firm
    assert user.email == "Tai.Man@firm.example"
    assert user.email_registered_at is not None
    assert (user.scope_online, user.scope_reports, user.scope_dms) == (True, False, False)
    assert not is_password_usable(user.password)
    da = User.objects.get(login_id=f"{pid}DA1")
    assert (da.role, da.da_duty, da.scope_dms) == (Role.DA, DaDuty.CHECKER, True)
    assert da.is_checker and not da.is_maker


def test_one_bad_row_writes_nothing_and_the_report_names_line_and_reason(tmp_path, firm):
    pid = firm.participant_id
    path = users_csv(
        tmp_path,
        f"{pid}U01,{pid},Chan Tai Man,user,,,,",
        f"{pid}DA1,{pid},Wong Siu Ming,da,,,,",
        f"{pid}U02,{pid},Lee Ka Yan,user,,not-an-email,,",
        f"{pid}U03,{pid},Ho Wing,user,,,,",
        f"{pid}U04,{pid},Ng Ka Ho,user,,,,",
        f"{pid}U05,B09999,Lam Mei,user,,,,",
    )
    status, out = run("import_users", path)
    assert status == 1
    assert f"line 2: {pid}U01: would be created" in out
    assert f"line 3: {pid}DA1: refused: a DA needs a da_duty: maker, checker or both" in out
    assert f"line 4: {pid}U02: refused: email not-an-email is not a valid email address" in out
    assert f"line 7: {pid}U05: refused: participant B09999 does not exist" in out
    assert "3 of 6 rows refused; no users were written." in out
    assert not User.objects.filter(participant=firm).exists()


def test_dry_run_reports_and_writes_nothing(tmp_path, firm):
    pid = firm.participant_id
    path = users_csv(tmp_path, f"{pid}U01,{pid},Chan Tai Man,user,,,,")
    status, out = run("import_users", path, "--dry-run")
    assert status == 0
    assert f"line 2: {pid}U01: would be created" in out
    assert "Dry run, nothing was written." in out
    assert not User.objects.filter(login_id=f"{pid}U01").exists()


def test_an_existing_login_id_of_the_firm_is_updated_whatever_its_case(tmp_path, firm):
    pid = firm.participant_id
    existing = factories.UserFactory(
        participant=firm, login_id=f"{pid}U01", name="Chan T M", email="old@firm.example"
    )
    path = users_csv(tmp_path, f"{pid.lower()}u01,{pid},Chan Tai Man,da,maker,,,")
    status, out = run("import_users", path)
    assert status == 0, out
    assert (
        f"line 2: {pid.lower()}u01: updated (name Chan T M -> Chan Tai Man; role user -> da" in out
    )
    assert User.objects.filter(login_id__iexact=f"{pid}U01").count() == 1
    existing.refresh_from_db()
    assert (existing.login_id, existing.name, existing.role) == (f"{pid}U01", "Chan Tai Man", "da")
    # An empty email keeps the registered one; becoming a DA grants the DMS scope.
    assert existing.email == "old@firm.example"
    assert existing.scope_dms is True
    assert existing.version == 1


def test_a_login_id_of_another_participant_is_refused_case_insensitively(
    tmp_path, firm, other_firm
):
    factories.UserFactory(participant=other_firm, login_id="B20000U01")
    path = users_csv(tmp_path, f"b20000u01,{firm.participant_id},Chan Tai Man,user,,,,")
    status, out = run("import_users", path)
    assert status == 1
    assert (
        f"line 2: b20000u01: refused: login ID B20000U01 belongs to participant "
        f"{other_firm.participant_id}" in out
    )
    assert not User.objects.filter(participant=firm).exists()


def test_the_same_login_id_twice_in_a_file_is_refused_on_both_lines(tmp_path, firm):
    pid = firm.participant_id
    path = users_csv(
        tmp_path, f"{pid}U01,{pid},Chan Tai Man,user,,,,", f"{pid}u01,{pid},Chan T M,user,,,,"
    )
    status, out = run("import_users", path)
    assert status == 1
    assert f"line 2: {pid}U01: refused: {pid}U01 is on lines 2, 3" in out
    assert f"line 3: {pid}u01: refused: {pid}u01 is on lines 2, 3" in out


def test_the_queries_of_an_import_do_not_grow_with_its_rows(tmp_path, firm):
    pid = firm.participant_id

    def queries(login_ids, name):
        path = users_csv(tmp_path, *[f"{login_id},{pid},{name},user,,,," for login_id in login_ids])
        with CaptureQueriesContext(connection) as captured:
            status, out = run("import_users", path)
        assert status == 0, out
        return len(captured)

    few = [f"{pid}A{n:02d}" for n in range(2)]
    many = [f"{pid}B{n:02d}" for n in range(20)]
    assert queries(few, "Created") == queries(many, "Created")
    assert queries(few, "Renamed") == queries(many, "Renamed")


# Smartcards ------------------------------------------------------------------------------


@pytest.fixture
def card_holder(firm):
    return factories.UserFactory(participant=firm, login_id="B10000U01")


@pytest.fixture
def ca():
    return certs.make_ca()


def test_a_card_certificate_gives_its_fingerprint_serial_and_validity(tmp_path, card_holder, ca):
    not_after = dt.datetime(2031, 6, 30, 16, 0, tzinfo=dt.UTC)
    issued = certs.make_card_cert(ca, serial_number=0x1A2B3C4D, not_after=not_after)
    (tmp_path / "cards").mkdir()
    issued.write(tmp_path / "cards", "u01")
    path = csv_file(
        tmp_path,
        f"login_id,certificate,card_password\nb10000u01,cards/u01.crt,{CARD_PASSWORD}\n",
    )
    status, out = run("import_smartcards", path)
    assert status == 0, out
    assert "line 2: b10000u01 card 1A2B3C4D: created (valid " in out
    card = Smartcard.objects.get(user=card_holder)
    assert card.serial == "1A2B3C4D"
    assert card.fingerprint_sha256 == issued.fingerprint_sha256
    assert card.valid_from == issued.cert.not_valid_before_utc
    assert card.valid_to == not_after
    assert card.check_password(CARD_PASSWORD)
    assert not card.check_password("another-password")


def test_a_card_by_fingerprint_and_an_unreadable_certificate(tmp_path, card_holder, ca):
    (tmp_path / "broken.crt").write_text("not a certificate")
    fingerprint = "ab" * 32
    path = csv_file(
        tmp_path,
        "login_id,serial,fingerprint_sha256,certificate,valid_from,valid_to,card_password\n"
        f"B10000U01,C0FFEE,{fingerprint},,2026-01-01T09:00,2027-01-01T09:00+08:00,"
        f"{CARD_PASSWORD}\n"
        f"B10000U01,,,broken.crt,,,{CARD_PASSWORD}\n",
    )
    status, out = run("import_smartcards", path)
    assert status == 1
    assert "line 2: B10000U01 card C0FFEE: would be created" in out
    assert f"line 3: B10000U01: refused: certificate {tmp_path}/broken.crt is not a PEM" in out
    assert not Smartcard.objects.exists()

    good_line_only = "\n".join(path.read_text().splitlines()[:2])
    status, out = run("import_smartcards", csv_file(tmp_path, good_line_only, name="good.csv"))
    assert status == 0, out
    card = Smartcard.objects.get(fingerprint_sha256=fingerprint)
    # Without an offset the time is Hong Kong's.
    assert card.valid_from == dt.datetime(2026, 1, 1, 1, 0, tzinfo=dt.UTC)
    assert card.check_password(CARD_PASSWORD)


def test_a_fingerprint_registered_to_another_card_is_refused(tmp_path, card_holder, firm):
    other = factories.SmartcardFactory(user=factories.UserFactory(participant=firm))
    path = csv_file(
        tmp_path,
        "login_id,serial,fingerprint_sha256,valid_from,valid_to,card_password\n"
        f"B10000U01,NEW1,{other.fingerprint_sha256},2026-01-01,2027-01-01,{CARD_PASSWORD}\n",
    )
    status, out = run("import_smartcards", path)
    assert status == 1
    assert (
        f"refused: fingerprint {other.fingerprint_sha256} is already registered to card "
        f"{other.serial} of {other.user.login_id}" in out
    )
    assert Smartcard.objects.count() == 1


def test_reimporting_a_card_with_a_new_password_changes_only_the_password(
    tmp_path, card_holder, ca
):
    issued = certs.make_card_cert(ca)
    issued.write(tmp_path, "u01")
    path = csv_file(
        tmp_path, f"login_id,certificate,card_password\nB10000U01,u01.crt,{CARD_PASSWORD}\n"
    )
    assert run("import_smartcards", path)[0] == 0
    status, out = run("import_smartcards", path)
    assert "line 2: B10000U01 card" in out and ": unchanged" in out
    path.write_text("login_id,certificate,card_password\nB10000U01,u01.crt,a-new-card-pass\n")
    status, out = run("import_smartcards", path)
    assert status == 0, out
    assert "updated (card password changed)" in out
    assert "a-new-card-pass" not in out
    card = Smartcard.objects.get()
    assert card.check_password("a-new-card-pass")


# smartcard_password ----------------------------------------------------------------------


def test_smartcard_password_from_stdin_sets_the_password(card_holder):
    card = factories.SmartcardFactory(user=card_holder, serial="1A2B3C")
    out = io.StringIO()
    call_command(
        "smartcard_password",
        "1a2b3c",
        "--password-stdin",
        stdin=io.StringIO("fresh-card-pass\n"),
        stdout=out,
    )
    card.refresh_from_db()
    assert card.check_password("fresh-card-pass")
    assert "Smartcard password set for card 1A2B3C of B10000U01" in out.getvalue()
    assert "fresh-card-pass" not in out.getvalue()


def test_smartcard_password_refuses_an_empty_password_and_an_unknown_card(card_holder):
    card = factories.SmartcardFactory(user=card_holder)
    with pytest.raises(CommandError, match="empty"):
        call_command(
            "smartcard_password",
            card.fingerprint_sha256,
            "--password-stdin",
            stdin=io.StringIO("\n"),
            stdout=io.StringIO(),
        )
    card.refresh_from_db()
    assert card.check_password(factories.CARD_PASSWORD)
    with pytest.raises(CommandError, match="no smartcard"):
        call_command("smartcard_password", "NOSUCHCARD", "--password-stdin")


def test_smartcard_password_asks_twice_and_refuses_two_different_passwords(
    card_holder, monkeypatch
):
    card = factories.SmartcardFactory(user=card_holder)
    answers = iter(["one-card-pass", "another-card-pass"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    with pytest.raises(CommandError, match="differ"):
        call_command("smartcard_password", card.serial, stdout=io.StringIO())
    card.refresh_from_db()
    assert card.check_password(factories.CARD_PASSWORD)


# The admin -------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, staff):
    client.post(
        reverse("authn:staff-login"),
        {"login_id": staff.login_id, "password": factories.USER_PASSWORD},
    )
    client.post(
        reverse("authn:staff-login-verify"),
        {"code": TOTP().code(TOTPDevice.objects.get(user=staff))},
    )
    assert client.get(reverse("admin:index")).status_code == 200
    return client


def card_form(user, **extra):
    return {
        "user": user.pk,
        "serial": "ADMIN01",
        "fingerprint_sha256": "cd" * 32,
        "valid_from_0": "2026-01-01",
        "valid_from_1": "09:00:00",
        "valid_to_0": "2027-01-01",
        "valid_to_1": "09:00:00",
        "revoked_at_0": "",
        "revoked_at_1": "",
        **extra,
    }


def test_admin_refuses_a_new_card_without_a_password(admin_client, card_holder):
    response = admin_client.post(
        reverse("admin:participants_smartcard_add"), card_form(card_holder)
    )
    assert response.status_code == 200
    assert "A new card needs a smartcard password." in response.content.decode()
    assert not Smartcard.objects.exists()


def test_admin_stores_a_new_cards_password_hashed_and_never_shows_it(admin_client, card_holder):
    response = admin_client.post(
        reverse("admin:participants_smartcard_add"),
        card_form(card_holder, card_password=CARD_PASSWORD),
    )
    assert response.status_code == 302
    card = Smartcard.objects.get()
    assert card.password_hash != CARD_PASSWORD
    assert card.check_password(CARD_PASSWORD)

    page = admin_client.get(reverse("admin:participants_smartcard_change", args=[card.pk]))
    html = page.content.decode()
    assert 'name="card_password"' in html
    assert card.password_hash not in html and CARD_PASSWORD not in html

    # A change with the password left blank keeps it.
    response = admin_client.post(
        reverse("admin:participants_smartcard_change", args=[card.pk]),
        card_form(card_holder, serial="ADMIN02"),
    )
    assert response.status_code == 302
    card.refresh_from_db()
    assert card.serial == "ADMIN02"
    assert card.check_password(CARD_PASSWORD)


def test_admin_user_page_adds_a_card_only_with_a_password(admin_client, card_holder):
    url = reverse("admin:participants_user_change", args=[card_holder.pk])
    page = admin_client.get(url)
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {
        name: value
        for name, value in form.initial.items()
        if value is not None and not isinstance(value, list)
    }
    data.update(
        {
            "participant": card_holder.participant_id,
            "date_joined_0": "2026-01-01",
            "date_joined_1": "09:00:00",
            "smartcards-TOTAL_FORMS": "1",
            "smartcards-INITIAL_FORMS": "0",
            "smartcards-MIN_NUM_FORMS": "0",
            "smartcards-MAX_NUM_FORMS": "1000",
            "smartcards-0-serial": "INLINE1",
            "smartcards-0-fingerprint_sha256": "ef" * 32,
            "smartcards-0-valid_from_0": "2026-01-01",
            "smartcards-0-valid_from_1": "09:00:00",
            "smartcards-0-valid_to_0": "2027-01-01",
            "smartcards-0-valid_to_1": "09:00:00",
        }
    )
    refused = admin_client.post(url, data)
    assert refused.status_code == 200
    assert "A new card needs a smartcard password." in refused.content.decode()
    assert not Smartcard.objects.exists()

    data["smartcards-0-card_password"] = CARD_PASSWORD
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["errors"]
    card = Smartcard.objects.get()
    assert card.fingerprint_sha256 == "ef" * 32
    assert card.check_password(CARD_PASSWORD)

    # The registered card's row: blank keeps the password, the fingerprint cannot change.
    data.update(
        {
            "smartcards-INITIAL_FORMS": "1",
            "smartcards-0-id": card.pk,
            "smartcards-0-user": card_holder.pk,
            "smartcards-0-serial": "INLINE2",
            "smartcards-0-fingerprint_sha256": "00" * 32,
            "smartcards-0-card_password": "",
        }
    )
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["errors"]
    card.refresh_from_db()
    assert (card.serial, card.fingerprint_sha256) == ("INLINE2", "ef" * 32)
    assert card.check_password(CARD_PASSWORD)
