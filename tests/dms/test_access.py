"""Who reaches Security Management Functions, and what each DMS URL does for them.

One table (Zulip's check_has_permission_policies): every DMS URL x every method x every kind
of visitor. Visitors log in through the real login views. Whatever is refused changes nothing;
another firm's user or request answers 404, exactly as an id that does not exist.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import URLPattern, reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditAction, AuditEvent
from authn import sessions
from authn.models import ActivationToken, EmailOTPDevice
from dms import bulk, services
from dms import urls as dms_urls
from dms.models import ChangeRequest, RequestKind, RequestStatus
from migration import connectivity
from migration.models import CheckMethod, ConnectivityEvent, ConnectivityRegistration, Programme
from participants.models import User, UserStatus
from tests import certs, factories
from tests.factories import CARD_PASSWORD, USER_PASSWORD
from tests.helpers import PROXY_SECRET, TOTP, log_in_with_app, password_step

pytestmark = pytest.mark.django_db

PROXY = "10.20.0.5"
NEW_EMAIL = "fresh.address@firm.example"
PENDING_EMAIL = "pending.address@firm.example"

# Outcomes ---------------------------------------------------------------------------------
OK = "200 page"
CSV = "200 csv"
MADE = "302, request made"
APPROVED = "302, approved"
REJECTED = "302, rejected"
FORBIDDEN = "403, nothing changed"
NOT_ALLOWED = "405, nothing changed"
NOT_FOUND = "404, nothing changed"
LOGIN = "302 to a login page, nothing changed"
REGISTERED = "302, the DA's firm registered"
WITHDRAWN = "302, the DA's firm withdrawn"
NOTHING_TO_WITHDRAW = "302, not registered, nothing changed"

GET, POST, PUT, DELETE = "GET", "POST", "PUT", "DELETE"
METHODS = (GET, POST, PUT, DELETE)
_405 = (NOT_ALLOWED, NOT_ALLOWED, NOT_ALLOWED)

# The DAs who logged in for Security Management Functions: the firm's maker, the firm's checker,
# and a DA (a maker) of another firm. Every object in the URLs belongs to the first firm.
#                                          maker        checker      other firm's DA
MATRIX: dict[tuple[str, str], tuple[str, str, str]] = {
    ("home", GET):                         (OK,          OK,          OK),
    ("home", POST):                        _405,
    ("home", PUT):                         _405,
    ("home", DELETE):                      _405,
    ("user-list", GET):                    (OK,          OK,          OK),
    ("user-list", POST):                   _405,
    ("user-list", PUT):                    _405,
    ("user-list", DELETE):                 _405,
    ("user-create", GET):                  (OK,          FORBIDDEN,   OK),
    # The new login ID is in the first firm's namespace: another firm's DA may not take it.
    ("user-create", POST):                 (MADE,        FORBIDDEN,   OK),
    ("user-create", PUT):                  _405,
    ("user-create", DELETE):               _405,
    ("user-detail", GET):                  (OK,          OK,          NOT_FOUND),
    ("user-detail", POST):                 (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("user-detail", PUT):                  (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("user-detail", DELETE):               (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("email_register", GET):               (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("email_register", POST):              (MADE,        FORBIDDEN,   NOT_FOUND),
    ("email_register", PUT):               (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("email_register", DELETE):            (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("user_suspend", GET):                 (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("user_suspend", POST):                (MADE,        FORBIDDEN,   NOT_FOUND),
    ("user_suspend", PUT):                 (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("user_suspend", DELETE):              (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("user_restore", GET):                 (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("user_restore", POST):                (MADE,        FORBIDDEN,   NOT_FOUND),
    ("user_restore", PUT):                 (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("user_restore", DELETE):              (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("otp_reset", GET):                    (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("otp_reset", POST):                   (MADE,        FORBIDDEN,   NOT_FOUND),
    ("otp_reset", PUT):                    (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("otp_reset", DELETE):                 (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("activation_resend", GET):            (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("activation_resend", POST):           (MADE,        FORBIDDEN,   NOT_FOUND),
    ("activation_resend", PUT):            (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("activation_resend", DELETE):         (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("user-request, unknown kind", GET):   (NOT_FOUND,   NOT_FOUND,   NOT_FOUND),
    ("user-request, unknown kind", POST):  (NOT_FOUND,   NOT_FOUND,   NOT_FOUND),
    ("user-request, unknown kind", PUT):   (NOT_FOUND,   NOT_FOUND,   NOT_FOUND),
    ("user-request, unknown kind", DELETE):(NOT_FOUND,   NOT_FOUND,   NOT_FOUND),
    ("request-list", GET):                 (OK,          OK,          OK),
    ("request-list", POST):                _405,
    ("request-list", PUT):                 _405,
    ("request-list", DELETE):              _405,
    ("request-detail", GET):               (OK,          OK,          NOT_FOUND),
    ("request-detail", POST):              (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("request-detail", PUT):               (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("request-detail", DELETE):            (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("approve", GET):                      (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("approve", POST):                     (FORBIDDEN,   APPROVED,    NOT_FOUND),
    ("approve", PUT):                      (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("approve", DELETE):                   (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("reject", GET):                       (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("reject", POST):                      (FORBIDDEN,   REJECTED,    NOT_FOUND),
    ("reject", PUT):                       (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("reject", DELETE):                    (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    # A bulk file with a row for the checker: the checker may no more approve (or reject) it
    # than a single request about themselves; another checker, a third DA, may.
    ("approve bulk, checker's row", GET):  (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("approve bulk, checker's row", POST): (FORBIDDEN,   FORBIDDEN,   NOT_FOUND),
    ("approve bulk, checker's row", PUT):  (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("approve bulk, checker's row", DELETE):(NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("reject bulk, checker's row", GET):   (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("reject bulk, checker's row", POST):  (FORBIDDEN,   FORBIDDEN,   NOT_FOUND),
    ("reject bulk, checker's row", PUT):   (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("reject bulk, checker's row", DELETE):(NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("approve bulk, third DA's row", GET): (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("approve bulk, third DA's row", POST):(FORBIDDEN,   APPROVED,    NOT_FOUND),
    ("approve bulk, third DA's row", PUT): (NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("approve bulk, third DA's row", DELETE):(NOT_ALLOWED, NOT_ALLOWED, NOT_FOUND),
    ("request-decide, unknown", GET):      (NOT_FOUND,   NOT_FOUND,   NOT_FOUND),
    ("request-decide, unknown", POST):     (NOT_FOUND,   NOT_FOUND,   NOT_FOUND),
    ("request-decide, unknown", PUT):      (NOT_FOUND,   NOT_FOUND,   NOT_FOUND),
    ("request-decide, unknown", DELETE):   (NOT_FOUND,   NOT_FOUND,   NOT_FOUND),
    ("audit-list", GET):                   (OK,          OK,          OK),
    ("audit-list", POST):                  _405,
    ("audit-list", PUT):                   _405,
    ("audit-list", DELETE):                _405,
    ("audit-csv", GET):                    (CSV,         CSV,         CSV),
    ("audit-csv", POST):                   _405,
    ("audit-csv", PUT):                    _405,
    ("audit-csv", DELETE):                 _405,
    # The events of the DA's terminal; both firms are on CCASS, so the other firm's DA sees the
    # event too, with its own firm's registration and results, and registers its own firm. Any
    # DA may: registering is no request and needs no checker.
    ("events", GET):                       (OK,          OK,          OK),
    ("events", POST):                      _405,
    ("events", PUT):                       _405,
    ("events", DELETE):                    _405,
    ("event-detail", GET):                 (OK,          OK,          OK),
    ("event-detail", POST):                _405,
    ("event-detail", PUT):                 _405,
    ("event-detail", DELETE):              _405,
    ("event-register", GET):               _405,
    ("event-register", POST):              (REGISTERED,  REGISTERED,  REGISTERED),
    ("event-register", PUT):               _405,
    ("event-register", DELETE):            _405,
    ("event-withdraw", GET):               _405,
    ("event-withdraw", POST):              (WITHDRAWN,   WITHDRAWN,   NOTHING_TO_WITHDRAW),
    ("event-withdraw", PUT):               _405,
    ("event-withdraw", DELETE):            _405,
}  # fmt: skip

DMS_ACTORS = ("maker", "checker", "other_firm_da")
# A maker who logged in with the smartcard through the Security Management Functions entry
# may do exactly what the maker who logged in with OTP may.
SAME_AS = {"maker_card": "maker"}
# Everybody else is sent to log in, whatever the URL and the method.
REFUSED_ACTORS = (
    "anonymous",
    "da_password_only",  # a DA who did the password step for DMS but not the OTP step
    "da_unverified",  # a session bound to DMS whose login never proved an OTP device
    "da_online",  # a DA logged in with OTP for Online Functions
    "da_card_functions",  # a DA logged in with the smartcard for Online Functions and Reports
    "user_online",  # a plain user logged in for Online Functions
    "staff",  # exchange staff logged in for the admin
)
ACTORS = (*DMS_ACTORS, *SAME_AS, *REFUSED_ACTORS)
# Bulk email registration's URLs are tested with bulk registration (test_bulk.py), the audit
# trail's background exports with them (test_audit_pages.py).
BULK_PREFIX = "bulk-"
EXPORT_PREFIX = "audit-export"


def expected(url: str, method: str, actor: str) -> str:
    if actor in REFUSED_ACTORS:
        return LOGIN
    return MATRIX[url, method][DMS_ACTORS.index(SAME_AS.get(actor, actor))]


# The world the URLs point into --------------------------------------------------------------


@dataclasses.dataclass
class World:
    maker: User
    checker: User
    user: User
    suspended: User
    other_firm_da: User
    other_firm_user: User
    staff: User
    pending: ChangeRequest
    other_firm_pending: ChangeRequest
    bulk_checkers_row: ChangeRequest
    bulk_third_das_row: ChangeRequest
    # A published CCASS event the first firm registered for (by its checker), with a check of
    # its user; another nobody registered for; and a CCMS event no CCASS firm may see.
    event: ConnectivityEvent
    fresh_event: ConnectivityEvent
    ccms_event: ConnectivityEvent


@pytest.fixture
def world(
    firm, maker_da, checker_da, user, email_user, other_firm_da, other_firm_user, staff
) -> World:
    suspended = factories.UserFactory(
        participant=firm, login_id="B10000U03", status=UserStatus.SUSPENDED
    )
    pending = services.request_make(
        kind=RequestKind.EMAIL_REGISTER,
        acting_user=maker_da,
        target=email_user,
        payload={"email": PENDING_EMAIL, "previous_email": email_user.email},
    )
    other_firm_pending = services.request_make(
        kind=RequestKind.USER_SUSPEND, acting_user=other_firm_da, target=other_firm_user
    )
    Programme.objects.filter(terminal=firm.terminal).update(da_email_registration_open=True)
    third_da = factories.DAFactory(participant=firm, login_id="B10000DA3")

    def bulk_request(content: bytes) -> ChangeRequest:
        batch = bulk.bulk_check(
            batch_id=bulk.bulk_upload(acting_user=maker_da, filename="f.csv", raw=content).pk
        )
        return bulk.bulk_submit(batch=batch, acting_user=maker_da)

    event = factories.ConnectivityEventFactory(terminal=firm.terminal)
    connectivity.registration_register(event_id=event.pk, participant=firm, acting_user=checker_da)
    connectivity.check_record(
        session=event.sessions.get(position=1), user=user, method=CheckMethod.OTP, scope="online"
    )

    return World(
        maker=maker_da,
        checker=checker_da,
        user=user,
        suspended=suspended,
        other_firm_da=other_firm_da,
        other_firm_user=other_firm_user,
        staff=staff,
        pending=pending,
        other_firm_pending=other_firm_pending,
        bulk_checkers_row=bulk_request(
            f"{user.login_id},u01.new@firm.example\n"
            f"{checker_da.login_id},checker.new@firm.example\n".encode()
        ),
        bulk_third_das_row=bulk_request(f"{third_da.login_id},da3.new@firm.example\n".encode()),
        event=event,
        fresh_event=factories.ConnectivityEventFactory(terminal=firm.terminal),
        ccms_event=factories.ConnectivityEventFactory(terminal=factories.terminal("CCMS")),
    )


@dataclasses.dataclass(frozen=True)
class Url:
    """A DMS URL: its name in dms_urls.py, how to build it, what a form on it would post."""

    url_name: str
    build: Callable[[World], str]
    data: dict[str, str] | Callable[[World], dict[str, str]] = dataclasses.field(
        default_factory=dict
    )
    target: Callable[[World], User | None] = lambda world: None
    kind: str = ""
    # For a decision: the request decided, and whether its change has taken effect.
    decided: Callable[[World], ChangeRequest] = lambda world: world.pending
    took_effect: Callable[[World], bool] = lambda world: (
        User.objects.get(pk=world.pending.target_id).email == PENDING_EMAIL
    )


def _user_request(kind: str, target: Callable[[World], User], **data: str) -> Url:
    return Url(
        "user-request",
        lambda w: reverse("dms:user-request", args=[target(w).pk, kind]),
        data,
        target,
        kind,
    )


URLS: dict[str, Url] = {
    "home": Url("home", lambda w: reverse("dms:home")),
    "user-list": Url("user-list", lambda w: reverse("dms:user-list")),
    "user-create": Url(
        "user-create",
        lambda w: reverse("dms:user-create"),
        lambda w: {
            "login_id": f"{w.maker.participant.participant_id}U77",
            "name": "Wong Ka Ming",
            "role": "user",
            "email": "wong.ka.ming@firm.example",
            "scope_online": "on",
            "scope_reports": "on",
        },
        kind=RequestKind.USER_CREATE,
    ),
    "user-detail": Url("user-detail", lambda w: reverse("dms:user-detail", args=[w.user.pk])),
    "email_register": _user_request(RequestKind.EMAIL_REGISTER, lambda w: w.user, email=NEW_EMAIL),
    "user_suspend": _user_request(RequestKind.USER_SUSPEND, lambda w: w.user),
    "user_restore": _user_request(RequestKind.USER_RESTORE, lambda w: w.suspended),
    "otp_reset": _user_request(RequestKind.OTP_RESET, lambda w: w.user),
    "activation_resend": _user_request(RequestKind.ACTIVATION_RESEND, lambda w: w.user),
    # Only the kinds a user's page files go through this URL; the others are no URL at all.
    "user-request, unknown kind": _user_request(RequestKind.USER_CREATE, lambda w: w.user),
    "request-list": Url("request-list", lambda w: reverse("dms:request-list")),
    "request-detail": Url(
        "request-detail", lambda w: reverse("dms:request-detail", args=[w.pending.pk])
    ),
    "approve": Url(
        "request-decide", lambda w: reverse("dms:request-decide", args=[w.pending.pk, "approve"])
    ),
    "reject": Url(
        "request-decide",
        lambda w: reverse("dms:request-decide", args=[w.pending.pk, "reject"]),
        {"reason": "That is not the user's address."},
    ),
    "approve bulk, checker's row": Url(
        "request-decide",
        lambda w: reverse("dms:request-decide", args=[w.bulk_checkers_row.pk, "approve"]),
    ),
    "reject bulk, checker's row": Url(
        "request-decide",
        lambda w: reverse("dms:request-decide", args=[w.bulk_checkers_row.pk, "reject"]),
        {"reason": "Not these addresses."},
    ),
    "approve bulk, third DA's row": Url(
        "request-decide",
        lambda w: reverse("dms:request-decide", args=[w.bulk_third_das_row.pk, "approve"]),
        decided=lambda w: w.bulk_third_das_row,
        took_effect=lambda w: (
            User.objects.get(login_id="B10000DA3").email == "da3.new@firm.example"
        ),
    ),
    "request-decide, unknown": Url(
        "request-decide", lambda w: reverse("dms:request-decide", args=[w.pending.pk, "delete"])
    ),
    "audit-list": Url("audit-list", lambda w: reverse("dms:audit-list")),
    "audit-csv": Url("audit-csv", lambda w: reverse("dms:audit-csv")),
    "events": Url("events", lambda w: reverse("dms:events")),
    "event-detail": Url("event-detail", lambda w: reverse("dms:event-detail", args=[w.event.pk])),
    "event-register": Url(
        "event-register", lambda w: reverse("dms:event-register", args=[w.fresh_event.pk])
    ),
    "event-withdraw": Url(
        "event-withdraw", lambda w: reverse("dms:event-withdraw", args=[w.event.pk])
    ),
}


# Logging in, the real way ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def card_ca() -> certs.Issued:
    return certs.make_ca()


def _card_login(client: Client, user: User, ca: certs.Issued, entry: str, settings: Any) -> None:
    settings.SMARTCARD_TRUSTED_PROXIES = [PROXY]
    issued = certs.make_card_cert(ca, holder=user.name)
    factories.SmartcardFactory(
        user=user, serial=issued.serial, fingerprint_sha256=issued.fingerprint_sha256
    )
    response = client.post(
        reverse("authn:smartcard-login", kwargs={"terminal": "ccass", "entry": entry}),
        {"login_id": user.login_id, "password": CARD_PASSWORD},
        REMOTE_ADDR=PROXY,
        HTTP_X_PROXY_SECRET=PROXY_SECRET,
        HTTP_X_SSL_CLIENT_VERIFY="SUCCESS",
        HTTP_X_SSL_CLIENT_CERT=issued.escaped_pem,
    )
    assert response.status_code == 302, response.content.decode()[:2000]


def _staff_login(client: Client, staff: User) -> None:
    client.post(
        reverse("authn:staff-login"), {"login_id": staff.login_id, "password": USER_PASSWORD}
    )
    code = TOTP().code(TOTPDevice.objects.get(user=staff))
    response = client.post(reverse("authn:staff-login-verify"), {"code": code})
    assert response.status_code == 302


def log_in_as(client: Client, actor: str, world: World, ca: certs.Issued, settings: Any) -> None:
    if actor == "maker":
        log_in_with_app(client, world.maker, scope="dms")
    elif actor == "checker":
        log_in_with_app(client, world.checker, scope="dms")
    elif actor == "other_firm_da":
        log_in_with_app(client, world.other_firm_da, scope="dms")
    elif actor == "maker_card":
        _card_login(client, world.maker, ca, "dms", settings)
    elif actor == "da_password_only":
        assert password_step(client, world.maker.login_id, scope="dms").status_code == 302
    elif actor == "da_unverified":
        client.force_login(world.maker)
        session = client.session
        now = int(time.time())
        session[sessions.SCOPES_KEY] = ["dms"]
        session[sessions.METHOD_KEY] = sessions.Method.OTP
        session[sessions.TERMINAL_KEY] = "ccass"
        session[sessions.AUTH_AT_KEY] = session[sessions.SEEN_AT_KEY] = now
        session.save()
    elif actor == "da_online":
        assert world.maker.scope_online
        log_in_with_app(client, world.maker, scope="online")
    elif actor == "da_card_functions":
        _card_login(client, world.maker, ca, "functions", settings)
    elif actor == "user_online":
        log_in_with_app(client, world.user, scope="online")
    elif actor == "staff":
        _staff_login(client, world.staff)
    else:
        assert actor == "anonymous"


def actor_user(actor: str, world: World) -> User | None:
    return {
        "maker": world.maker,
        "maker_card": world.maker,
        "checker": world.checker,
        "other_firm_da": world.other_firm_da,
    }.get(actor)


# What "nothing changed" means ----------------------------------------------------------------


def snapshot() -> dict[str, Any]:
    """Every row a DMS URL could change."""
    return {
        "requests": list(
            ChangeRequest.objects.order_by("pk").values_list(
                "pk", "status", "checker_id", "reason", "target_id", "kind"
            )
        ),
        "users": list(
            User.objects.order_by("pk").values_list(
                "pk",
                "login_id",
                "email",
                "email_registered_by_id",
                "status",
                "version",
                "two_factor_ready_at",
                "role",
                "da_duty",
            )
        ),
        "audit": AuditEvent.objects.count(),
        "registrations": list(
            ConnectivityRegistration.objects.order_by("pk").values_list(
                "pk", "event_id", "participant_id", "registered_by_id"
            )
        ),
        "devices": (
            TOTPDevice.objects.count(),
            EmailOTPDevice.objects.count(),
            ActivationToken.objects.count(),
        ),
    }


def send(client: Client, method: str, url: str, data: dict[str, str]):
    if method == GET:
        return client.get(url)
    if method == POST:
        return client.post(url, data)
    # The body a form would send, as a form would send it.
    body = urlencode(data)
    content_type = "application/x-www-form-urlencoded"
    return getattr(client, method.lower())(url, body, content_type=content_type)


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


# The matrix ------------------------------------------------------------------------------


def test_the_matrix_names_every_dms_url():
    """A new DMS URL fails here until the matrix says who may use it, and how."""
    names = {
        p.name
        for p in dms_urls.urlpatterns
        if isinstance(p, URLPattern) and not p.name.startswith((BULK_PREFIX, EXPORT_PREFIX))
    }
    covered = {url.url_name for url in URLS.values()}
    assert names - covered == set(), "add the new DMS URLs to URLS and MATRIX"
    assert {url for url, _method in MATRIX} == set(URLS)
    assert {method for _url, method in MATRIX} == set(METHODS)
    assert len(MATRIX) == len(URLS) * len(METHODS)


@pytest.mark.parametrize("actor", ACTORS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("url_key", list(URLS))
def test_dms_access_matrix(client, world, card_ca, settings, url_key, method, actor):
    url = URLS[url_key]
    outcome = expected(url_key, method, actor)
    log_in_as(client, actor, world, card_ca, settings)
    path = url.build(world)
    before = snapshot()
    requests_before = set(ChangeRequest.objects.values_list("pk", flat=True))

    data = url.data(world) if callable(url.data) else url.data
    response = send(client, method, path, data)

    after = snapshot()
    status = response.status_code
    if outcome == LOGIN:
        assert status == 302, (status, response.content.decode()[:500])
        location = response["Location"]
        landing, otp_login = (
            reverse("authn:dms-landing"),
            reverse("authn:otp-login", kwargs={"terminal": "ccass", "scope": "dms"}),
        )
        assert location.split("?")[0] in (landing, otp_login), location
        assert location.endswith("?next=" + path.replace("/", "%2F"))
    elif outcome in (OK, CSV):
        assert status == 200, (status, response.content.decode()[:500])
        if outcome == CSV:
            assert response["Content-Type"].startswith("text/csv")
            body = b"".join(response.streaming_content).decode("utf-8")
        else:
            assert response["Content-Type"].startswith("text/html")
            body = response.content.decode()
        if actor == "other_firm_da":
            # Firm-wide pages show the other DA their own firm, and nothing of ours.
            for login_id in (world.maker.login_id, world.user.login_id, world.checker.login_id):
                assert login_id not in body
    elif outcome == NOT_ALLOWED:
        assert status == 405
    elif outcome == FORBIDDEN:
        assert status == 403
        assert "Not allowed" in response.content.decode()
    elif outcome == NOT_FOUND:
        assert status == 404
    else:
        assert status == 302, (status, response.content.decode()[:500])
        acting = actor_user(actor, world)
        assert acting is not None
        if outcome == MADE:
            (made,) = ChangeRequest.objects.exclude(pk__in=requests_before)
            target = url.target(world)
            assert (made.kind, made.maker, made.status, made.target) == (
                url.kind,
                acting,
                RequestStatus.PENDING,
                target,
            )
            assert made.participant == acting.participant
            # Nothing takes effect before a checker approves it.
            assert after["users"] == before["users"]
            assert after["audit"] == before["audit"] + 1
            assert AuditEvent.objects.filter(action="request_made", actor=acting).exists()
            assert messages_of(response) == [
                "Request made. It takes effect when a checker approves it."
            ]
            if target is not None:
                assert response["Location"] == reverse("dms:user-detail", args=[target.pk])
            else:
                assert response["Location"] == reverse("dms:request-list")
            return
        if outcome in (REGISTERED, WITHDRAWN, NOTHING_TO_WITHDRAW):
            check_registration(world, url_key, outcome, acting, response, before, after)
            return
        decided = url.decided(world)
        decided.refresh_from_db()
        assert response["Location"] == reverse("dms:request-detail", args=[decided.pk])
        assert decided.checker == acting
        if outcome == APPROVED:
            assert decided.status == RequestStatus.APPROVED
            assert url.took_effect(world)
            assert messages_of(response) == ["Request approved; it has taken effect."]
        else:
            assert outcome == REJECTED
            assert decided.status == RequestStatus.REJECTED
            assert decided.reason == url.data["reason"]
            assert not url.took_effect(world)
            assert messages_of(response) == ["Request rejected."]
        return
    assert after == before


def check_registration(
    world: World,
    url_key: str,
    outcome: str,
    acting: User,
    response: Any,
    before: dict[str, Any],
    after: dict[str, Any],
) -> None:
    """A registration or withdrawal took effect at once, for the DA's own firm only."""
    event = world.fresh_event if url_key == "event-register" else world.event
    assert response["Location"] == reverse("dms:event-detail", args=[event.pk])
    mine = ConnectivityRegistration.objects.filter(event=event, participant=acting.participant)
    # No request is made, no user changes, and the other firm's registrations stay as they were.
    assert (after["requests"], after["users"]) == (before["requests"], before["users"])
    others = [row for row in after["registrations"] if row[2] != acting.participant_id]
    assert others == [row for row in before["registrations"] if row[2] != acting.participant_id]
    if outcome == REGISTERED:
        assert mine.get().registered_by == acting
        assert after["audit"] == before["audit"] + 1
        assert AuditEvent.objects.filter(
            action=AuditAction.EVENT_REGISTERED, actor=acting, participant=acting.participant
        ).exists()
        assert messages_of(response) == ["Your firm is registered for the connectivity test."]
    elif outcome == WITHDRAWN:
        assert not mine.exists()
        assert after["audit"] == before["audit"] + 1
        assert AuditEvent.objects.filter(
            action=AuditAction.EVENT_WITHDRAWN, actor=acting, participant=acting.participant
        ).exists()
        assert messages_of(response) == [
            "Your firm's registration for the connectivity test is withdrawn."
        ]
    else:
        assert outcome == NOTHING_TO_WITHDRAW
        assert after == before
        assert messages_of(response) == ["Your firm was not registered for the connectivity test."]


# Another firm's objects -----------------------------------------------------------------------

# Each object URL with another firm's object in it, and with an id that exists nowhere.
FOREIGN_URLS: dict[str, tuple[Callable[[World, int | None], str], dict[str, str]]] = {
    "user-detail": (
        lambda w, pk: reverse("dms:user-detail", args=[pk or w.other_firm_user.pk]),
        {},
    ),
    **{
        kind: (
            lambda w, pk, kind=kind: reverse(
                "dms:user-request", args=[pk or w.other_firm_user.pk, kind]
            ),
            {"email": NEW_EMAIL},
        )
        for kind in (
            RequestKind.EMAIL_REGISTER,
            RequestKind.USER_SUSPEND,
            RequestKind.USER_RESTORE,
            RequestKind.OTP_RESET,
            RequestKind.ACTIVATION_RESEND,
        )
    },
    "request-detail": (
        lambda w, pk: reverse("dms:request-detail", args=[pk or w.other_firm_pending.pk]),
        {},
    ),
    "approve": (
        lambda w, pk: reverse(
            "dms:request-decide", args=[pk or w.other_firm_pending.pk, "approve"]
        ),
        {},
    ),
    "reject": (
        lambda w, pk: reverse("dms:request-decide", args=[pk or w.other_firm_pending.pk, "reject"]),
        {"reason": "Not yours."},
    ),
    # Another terminal's event: a CCASS firm's DA may not see it, nor register for it.
    **{
        name: (
            lambda w, pk, name=name: reverse(f"dms:{name}", args=[pk or w.ccms_event.pk]),
            {},
        )
        for name in ("event-detail", "event-register", "event-withdraw")
    },
}


@pytest.mark.parametrize("actor", ["maker", "checker", "maker_card"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("url_key", list(FOREIGN_URLS))
def test_another_firms_object_is_404_like_a_missing_one(
    client, world, card_ca, settings, url_key, method, actor
):
    build, data = FOREIGN_URLS[url_key]
    log_in_as(client, actor, world, card_ca, settings)
    foreign_user = User.objects.get(pk=world.other_firm_user.pk)
    missing_id = (
        max(
            User.objects.latest("pk").pk,
            ChangeRequest.objects.latest("pk").pk,
            ConnectivityEvent.objects.latest("pk").pk,
        )
        + 1000
    )
    before = snapshot()

    foreign = send(client, method, build(world, None), data)
    missing = send(client, method, build(world, missing_id), data)

    assert foreign.status_code == 404
    assert missing.status_code == 404
    assert foreign.content == missing.content
    assert snapshot() == before
    world.other_firm_pending.refresh_from_db()
    assert world.other_firm_pending.status == RequestStatus.PENDING
    assert world.other_firm_pending.checker is None
    assert User.objects.get(pk=foreign_user.pk).version == foreign_user.version
