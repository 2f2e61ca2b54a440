"""Login with Smartcard: the card the front proxy verified, the smartcard password, refusals.

The requests carry what nginx forwards (tests/certs.py makes real certificates): the card
certificate as URL-encoded PEM in X-SSL-Client-Cert and nginx's verdict in
X-SSL-Client-Verify, from the proxy's address. The same flow through a real nginx is in
test_nginx_smartcard.py.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from migration.models import Phase
from participants.models import Smartcard
from tests import certs, factories
from tests.factories import CARD_PASSWORD
from tests.helpers import PROXY_SECRET

pytestmark = pytest.mark.django_db

# The front proxy's address. The test client's own default (127.0.0.1) is then NOT trusted,
# so every request below states where it comes from.
PROXY = "10.20.0.5"
GENERIC_ERROR = "Login failed. Check your login ID and password."


@pytest.fixture(autouse=True)
def _trusted_proxy(settings):
    settings.SMARTCARD_TRUSTED_PROXIES = [PROXY]


@pytest.fixture(scope="module")
def ca() -> certs.Issued:
    return certs.make_ca()


def register(issued: certs.Issued, user, **fields) -> Smartcard:
    """Register the card certificate in the portal's card register, for `user`."""
    return factories.SmartcardFactory(
        user=user, serial=issued.serial, fingerprint_sha256=issued.fingerprint_sha256, **fields
    )


@pytest.fixture
def card(ca, user) -> certs.Issued:
    """`user`'s registered card, valid in the register and in its certificate."""
    issued = certs.make_card_cert(ca, holder=user.name)
    register(issued, user)
    return issued


def through_proxy(
    card: certs.Issued | None, *, verify: str = "SUCCESS", remote: str = PROXY
) -> dict[str, str]:
    """The request as the proxy forwards it: its address, its verdict, the card certificate."""
    meta = {
        "REMOTE_ADDR": remote,
        "HTTP_X_PROXY_SECRET": PROXY_SECRET,
        "HTTP_X_SSL_CLIENT_VERIFY": verify,
    }
    if card is not None:
        meta["HTTP_X_SSL_CLIENT_CERT"] = card.escaped_pem
    return meta


def smartcard_url(entry: str = "functions", *, demo: bool = False) -> str:
    name = "authn:smartcard-demo-login" if demo else "authn:smartcard-login"
    return reverse(name, kwargs={"terminal": "ccass", "entry": entry})


def card_login(
    client,
    meta: dict[str, str],
    login_id: str,
    *,
    password: str = CARD_PASSWORD,
    entry: str = "functions",
):
    return client.post(smartcard_url(entry), {"login_id": login_id, "password": password}, **meta)


def login_audit() -> list[tuple[str, str, str, str]]:
    """The login rows of the audit trail: (outcome, method, reason, login ID), oldest first."""
    return [
        (event.outcome, event.method, event.reason, event.login_id)
        for event in AuditEvent.objects.filter(action="login").order_by("pk")
    ]


def reaches(client, url_name: str) -> bool:
    return client.get(reverse(url_name)).status_code == 200


# Success ---------------------------------------------------------------------------------


def test_card_and_smartcard_password_reach_online_functions_and_reports(client, user, card):
    page = client.get(smartcard_url(), **through_proxy(card))
    assert page.status_code == 200
    assert f"Card {card.serial} read." in page.content.decode()
    assert "Smartcard password" in page.content.decode()

    response = card_login(client, through_proxy(card), user.login_id)
    assert response.status_code == 302
    assert response["Location"] == reverse("authn:online-home")

    online = client.get(reverse("authn:online-home"))
    assert online.status_code == 200
    assert f"You are logged in as {user.login_id}." in online.content.decode()
    assert "Logged in with: smartcard" in online.content.decode()
    reports = client.get(reverse("authn:report-list"))
    assert reports.status_code == 200
    assert "Overnight Report Download" in reports.content.decode()

    event = AuditEvent.objects.get(action="login")
    assert (event.outcome, event.method, event.user, event.scope, event.ip) == (
        "success",
        "smartcard",
        user,
        "online,reports",
        PROXY,
    )


def test_dms_entry_logs_a_da_in_for_security_management_only(client, maker_da, ca):
    issued = certs.make_card_cert(ca, holder=maker_da.name)
    register(issued, maker_da)
    response = card_login(client, through_proxy(issued), maker_da.login_id, entry="dms")
    assert response.status_code == 302
    assert response["Location"] == reverse("dms:home")
    assert reaches(client, "dms:home")
    assert not reaches(client, "authn:online-home")
    assert AuditEvent.objects.get(action="login", outcome="success").scope == "dms"


def test_dms_entry_refuses_a_user_without_security_management(client, user, card):
    response = card_login(client, through_proxy(card), user.login_id, entry="dms")
    assert response.status_code == 200
    assert GENERIC_ERROR in response.content.decode()
    assert not reaches(client, "dms:home")


# Cards the portal refuses -------------------------------------------------------------------

DAY = dt.timedelta(days=1)


def _expired_in_register(ca, user):
    issued = certs.make_card_cert(ca)
    register(issued, user, valid_from=timezone.now() - 400 * DAY, valid_to=timezone.now() - DAY)
    return through_proxy(issued)


def _expired_certificate(ca, user):
    # Still valid in the register: only the certificate's own dates say it has expired.
    now = dt.datetime.now(dt.UTC)
    issued = certs.make_card_cert(ca, not_before=now - 400 * DAY, not_after=now - DAY)
    register(issued, user)
    return through_proxy(issued)


def _revoked(ca, user):
    issued = certs.make_card_cert(ca)
    register(issued, user, revoked_at=timezone.now() - dt.timedelta(hours=1))
    return through_proxy(issued)


def _unknown(ca, user):
    return through_proxy(certs.make_card_cert(ca))


def _untrusted_address(ca, user):
    # A valid, registered card, but the headers come from a client, not from the proxy.
    issued = certs.make_card_cert(ca)
    register(issued, user)
    return through_proxy(issued, remote="203.0.113.9")


def _not_verified_by_proxy(ca, user):
    issued = certs.make_card_cert(ca)
    register(issued, user)
    return through_proxy(issued, verify="FAILED:certificate has expired")


def _no_card(ca, user):
    # What nginx forwards when the browser presented no certificate.
    return through_proxy(None, verify="NONE")


def _unreadable(ca, user):
    meta = through_proxy(None)
    meta["HTTP_X_SSL_CLIENT_CERT"] = "-----BEGIN%20CERTIFICATE-----%0Anonsense%0A"
    return meta


def _registered_card(ca, user):
    issued = certs.make_card_cert(ca)
    register(issued, user)
    return issued


def _no_proxy_secret(ca, user):
    # The proxy's address, a valid card, but not the secret the real proxy sends: any
    # process on the web host could do this much by calling the app server directly.
    meta = through_proxy(_registered_card(ca, user))
    del meta["HTTP_X_PROXY_SECRET"]
    return meta


def _wrong_proxy_secret(ca, user):
    return {**through_proxy(_registered_card(ca, user)), "HTTP_X_PROXY_SECRET": "guessed"}


REFUSALS = [
    (
        _no_proxy_secret,
        "card_untrusted",
        "Your smartcard could not be read through the secure connection.",
    ),
    (
        _wrong_proxy_secret,
        "card_untrusted",
        "Your smartcard could not be read through the secure connection.",
    ),
    (_expired_in_register, "card_expired", "This smartcard has expired."),
    (_expired_certificate, "card_expired", "This smartcard has expired."),
    (_revoked, "card_revoked", "This smartcard has been revoked."),
    (_unknown, "card_unknown", "This smartcard is not registered for terminal access."),
    (
        _untrusted_address,
        "card_untrusted",
        "Your smartcard could not be read through the secure connection.",
    ),
    (
        _not_verified_by_proxy,
        "card_not_verified",
        "Your smartcard certificate could not be verified.",
    ),
    (_no_card, "card_missing", "No smartcard was presented. Insert your card and try again."),
    (_unreadable, "card_unreadable", "Your smartcard certificate could not be read."),
]


@pytest.mark.parametrize(
    ("presented", "reason", "message"),
    REFUSALS,
    ids=[reason[0].__name__[1:] for reason in REFUSALS],
)
def test_card_is_refused(client, user, ca, presented, reason, message):
    meta = presented(ca, user)

    page = client.get(smartcard_url(), **meta)
    assert page.status_code == 403
    assert "Smartcard refused" in page.content.decode()
    assert message in page.content.decode()
    assert "Smartcard password" not in page.content.decode()

    # Posting the right login ID and card password does not get past the card either.
    response = card_login(client, meta, user.login_id)
    assert response.status_code == 403
    assert message in response.content.decode()
    assert not reaches(client, "authn:online-home")
    # The attempt is recorded, with the login ID typed; opening the page is not an attempt,
    # unless the card headers came from somebody other than the front proxy (a forgery).
    forged = [("failure", "smartcard", reason, "")] if reason == "card_untrusted" else []
    assert login_audit() == [*forged, ("failure", "smartcard", reason, user.login_id)]


def test_viewing_the_refusal_page_records_nothing_even_switching_language(client, user, ca):
    meta = _expired_in_register(ca, user)
    client.get(smartcard_url(), **meta)
    response = client.post(
        reverse("set_language"), {"language": "zh-hant", "next": smartcard_url()}, **meta
    )
    client.get(response["Location"], **meta)
    assert login_audit() == []


def test_wrong_smartcard_password_gets_the_generic_message(client, user, card):
    response = card_login(client, through_proxy(card), user.login_id, password="not-the-card-pin")
    assert response.status_code == 200
    assert GENERIC_ERROR in response.content.decode()
    assert not reaches(client, "authn:online-home")
    assert login_audit() == [("failure", "smartcard", "bad_credentials", user.login_id)]
    assert AuditEvent.objects.get(action="login").user == user


def test_regular_password_is_not_the_smartcard_password(client, user, card):
    response = card_login(
        client, through_proxy(card), user.login_id, password=factories.USER_PASSWORD
    )
    assert GENERIC_ERROR in response.content.decode()
    assert not reaches(client, "authn:online-home")


def test_card_of_another_user_is_refused_with_the_generic_message(client, user, firm, ca):
    colleague = factories.UserFactory(participant=firm, login_id="B10000U09")
    colleagues_card = certs.make_card_cert(ca, holder=colleague.name)
    # Same card password as any card of `user` would have: only the owner check refuses it.
    register(colleagues_card, colleague)

    response = card_login(client, through_proxy(colleagues_card), user.login_id)
    assert response.status_code == 200
    assert GENERIC_ERROR in response.content.decode()
    assert not reaches(client, "authn:online-home")
    event = AuditEvent.objects.get(action="login")
    assert (event.outcome, event.method, event.user) == ("failure", "smartcard", user)
    assert event.reason == "card_foreign"
    assert event.detail["card_owner"] == colleague.login_id


# Phase -------------------------------------------------------------------------------------


def test_a_card_session_ends_when_the_terminal_moves_to_2fa_only(client, user, card):
    card_login(client, through_proxy(card), user.login_id)
    assert reaches(client, "authn:online-home")
    factories.set_phase("CCASS", Phase.TWO_FA_ONLY)
    assert not reaches(client, "authn:online-home")
    assert not reaches(client, "authn:report-list")


def test_audit_takes_the_client_address_from_the_trusted_proxy_only(client, user, card, settings):
    settings.TRUSTED_PROXIES = [PROXY]
    card_login(client, {**through_proxy(card), "HTTP_X_REAL_IP": "203.0.113.7"}, user.login_id)
    client.post(reverse("authn:logout"), REMOTE_ADDR="198.51.100.9", HTTP_X_REAL_IP="203.0.113.99")
    login, logout = AuditEvent.objects.order_by("pk").values_list("ip", flat=True)
    assert login == "203.0.113.7"
    assert logout == "198.51.100.9"


def test_the_client_address_header_needs_the_proxy_secret(client, user, card, settings):
    settings.TRUSTED_PROXIES = [PROXY]
    forged = {**through_proxy(card), "HTTP_X_REAL_IP": "203.0.113.7"}
    del forged["HTTP_X_PROXY_SECRET"]
    client.post(reverse("authn:logout"), **forged)
    client.get(smartcard_url(), **forged)
    assert set(AuditEvent.objects.values_list("ip", flat=True)) == {PROXY}


def test_no_header_is_believed_without_a_configured_secret(client, user, card, settings):
    settings.PROXY_SECRET = ""
    response = card_login(client, {**through_proxy(card), "HTTP_X_PROXY_SECRET": ""}, user.login_id)
    assert response.status_code == 403
    assert login_audit() == [("failure", "smartcard", "card_untrusted", user.login_id)]


def test_smartcard_login_is_refused_in_the_2fa_only_phase(client, user, card):
    factories.set_phase("CCASS", Phase.TWO_FA_ONLY)

    page = client.get(smartcard_url(), **through_proxy(card))
    body = page.content.decode()
    assert page.status_code == 403
    assert "Login with smartcard is no longer available" in body
    assert "now accepts two-factor authentication only" in body
    assert "Use Login with OTP with your login ID, your password and a one-time password." in body

    response = card_login(client, through_proxy(card), user.login_id)
    assert response.status_code == 403
    assert not reaches(client, "authn:online-home")
    assert login_audit() == [("failure", "smartcard", "phase_closed", user.login_id)]


# Demo card reader ----------------------------------------------------------------------------


@pytest.fixture
def demo_card(user) -> Smartcard:
    return factories.SmartcardFactory(user=user, serial="DEMO-0001")


def test_demo_reader_does_not_exist_without_debug(client, user, demo_card, settings):
    settings.SMARTCARD_DEMO = True  # DEBUG alone must close it (pytest-django runs DEBUG off)
    assert settings.DEBUG is False
    url = smartcard_url(demo=True)
    assert client.get(url).status_code == 404
    response = client.post(
        url, {"card": demo_card.pk, "login_id": user.login_id, "password": CARD_PASSWORD}
    )
    assert response.status_code == 404
    assert not reaches(client, "authn:online-home")
    assert login_audit() == []


def test_demo_reader_logs_in_with_a_demo_card_under_debug(client, user, demo_card, settings):
    settings.DEBUG = True
    settings.SMARTCARD_DEMO = True
    factories.SmartcardFactory(user=user, serial="CARD-REAL-1")
    url = smartcard_url(demo=True)

    page = client.get(url)
    assert page.status_code == 200
    assert "DEMO ONLY" in page.content.decode()
    assert f"DEMO-0001 ({user.login_id})" in page.content.decode()
    assert "CARD-REAL-1" not in page.content.decode()

    response = client.post(
        url, {"card": demo_card.pk, "login_id": user.login_id, "password": CARD_PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("authn:online-home")
    assert reaches(client, "authn:online-home")
    assert reaches(client, "authn:report-list")
    assert login_audit() == [("success", "smartcard_demo", "", user.login_id)]


def test_the_end_of_parallel_run_ends_open_card_sessions_and_refuses_new_ones(client, user, card):
    import datetime as dt

    from django.utils import timezone

    from migration.models import Milestone, MilestoneKind
    from migration.services import milestones_carry_out

    card_login(client, through_proxy(card), user.login_id)
    assert reaches(client, "authn:online-home")
    past = timezone.now() - dt.timedelta(minutes=1)
    milestones = Milestone.objects.filter(programme__terminal__code="CCASS")
    milestones.filter(position__lte=4).update(planned_at=past, carried_out_at=past)
    milestones.filter(kind=MilestoneKind.PARALLEL_RUN_ENDS).update(planned_at=past)
    assert [m.kind for m in milestones_carry_out()] == [MilestoneKind.PARALLEL_RUN_ENDS]
    # The card session open before the milestone ends at its next request.
    assert not reaches(client, "authn:online-home")
    page = client.get(smartcard_url(), **through_proxy(card))
    assert page.status_code == 403
    assert "Login with smartcard is no longer available" in page.content.decode()
    assert "Enquiries: CCASS Hotline" in page.content.decode()
