"""Login with Smartcard through the real nginx, configured by deploy/nginx.conf.

Debian's nginx runs in front of pytest-django's live server, terminating TLS and asking for
a client certificate; the test is the browser: it presents a card certificate (or none, or
forged headers) and logs in through nginx, with the portal configured as in production
(HTTPS seen through X-Forwarded-Proto, secure cookies, CSRF checking Origin and Referer).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from http.cookiejar import CookieJar
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

from audit.models import AuditEvent
from participants.models import Smartcard
from tests import certs, factories
from tests.factories import CARD_PASSWORD
from tests.helpers import PROXY_SECRET

pytestmark = pytest.mark.nginx

NGINX = Path("/usr/sbin/nginx")
DEPLOY_CONF = Path(django_settings.BASE_DIR) / "deploy" / "nginx.conf"
START_TIMEOUT = 10.0
REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class Pki:
    ca: certs.Issued
    ca_path: Path
    card: certs.Issued  # registered for the test's user
    card_paths: tuple[Path, Path]
    stranger: certs.Issued  # issued by the CA, never registered
    stranger_paths: tuple[Path, Path]
    expired: certs.Issued  # registered and valid in the register, but its certificate expired
    expired_paths: tuple[Path, Path]
    server_paths: tuple[Path, Path]


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    ca = certs.make_ca()
    ca_path, _key = ca.write(folder, "ca")
    card = certs.make_card_cert(ca, holder="Card Holder")
    stranger = certs.make_card_cert(ca, holder="Stranger")
    now = dt.datetime.now(dt.UTC)
    expired = certs.make_card_cert(
        ca,
        holder="Old Card",
        not_before=now - dt.timedelta(days=400),
        not_after=now - dt.timedelta(days=1),
    )
    return Pki(
        ca=ca,
        ca_path=ca_path,
        card=card,
        card_paths=card.write(folder, "card"),
        stranger=stranger,
        stranger_paths=stranger.write(folder, "stranger"),
        expired=expired,
        expired_paths=expired.write(folder, "expired"),
        server_paths=certs.make_server_cert(ca).write(folder, "server"),
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def render_config(prefix: Path, *, pki: Pki, port: int, upstream: str) -> Path:
    """Write nginx.conf for `prefix`: a small main config around the rendered deploy file."""
    server_cert, server_key = pki.server_paths
    static_root = prefix / "static"
    static_root.mkdir()
    substitutions = {
        "__SERVER_NAME__": "127.0.0.1 localhost",
        "__LISTEN_PORT__": str(port),
        "__SERVER_CERT__": str(server_cert),
        "__SERVER_KEY__": str(server_key),
        "__CLIENT_CA__": str(pki.ca_path),
        "__UPSTREAM__": upstream,
        "__STATIC_ROOT__": str(static_root),
        "__PROXY_SECRET__": PROXY_SECRET,
        "__ACCESS_LOG__": str(prefix / "access.log"),
    }
    text = DEPLOY_CONF.read_text()
    for placeholder, value in substitutions.items():
        assert placeholder in text, f"{placeholder} missing from deploy/nginx.conf"
        text = text.replace(placeholder, value)
    left = re.findall(r"__[A-Z_]+__", text)
    assert not left, f"placeholders left unsubstituted: {left}"
    (prefix / "portal.conf").write_text(text)

    for folder in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / folder).mkdir()
    main = f"""
{"user root;" if os.geteuid() == 0 else ""}
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    include {prefix}/portal.conf;
}}
"""
    path = prefix / "nginx.conf"
    path.write_text(main)
    return path


@pytest.fixture(scope="module")
def nginx(live_server, pki, tmp_path_factory) -> Iterator[int]:
    """nginx on a free port in front of the live server; yields the port."""
    if not NGINX.exists():
        pytest.skip("nginx not installed (apt-get install nginx)")
    prefix = tmp_path_factory.mktemp("nginx")
    upstream = urllib.parse.urlsplit(live_server.url)
    port = _free_port()
    config = render_config(prefix, pki=pki, port=port, upstream=f"127.0.0.1:{upstream.port}")
    error_log = prefix / "error.log"

    def log() -> str:
        return error_log.read_text() if error_log.exists() else "(no error log)"

    process = subprocess.Popen(
        [str(NGINX), "-p", str(prefix), "-c", str(config), "-e", str(error_log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"nginx exited with {process.returncode}:\n{output}\n{log()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"nginx did not listen on {port} within {START_TIMEOUT}s:\n{log()}")
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()


@pytest.fixture
def portal(nginx, settings, transactional_db, django_db_serialized_rollback) -> int:
    """The live portal behind nginx, configured as in production; returns nginx's port.

    The live server needs committed data, hence the transactional database; the serialized
    rollback restores the terminals and programmes its flush deletes.
    """
    settings.SMARTCARD_TRUSTED_PROXIES = ["127.0.0.1"]  # nginx connects from loopback
    settings.PROXY_SECRET = PROXY_SECRET  # what nginx sends in X-Proxy-Secret
    # As with DEBUG off (the test run imported the settings with DEBUG on, so set them):
    # the request is HTTPS when nginx says so in X-Forwarded-Proto, and cookies are
    # secure-only. CSRF then wants Origin (or, without it, Referer) to be https:// plus the
    # Host nginx forwards, port included; no trusted origins are needed for that.
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SESSION_COOKIE_SECURE = True
    settings.CSRF_COOKIE_SECURE = True
    # SecurityMiddleware and CsrfViewMiddleware read these once, when the session-wide live
    # server builds its handler; they are set for clarity, not as per-test switches.
    settings.SECURE_SSL_REDIRECT = False
    settings.CSRF_TRUSTED_ORIGINS = []
    return nginx


@pytest.fixture
def card_user(portal, parallel_run, firm, pki):
    person = factories.UserFactory(participant=firm, login_id="B10000U01")
    factories.TOTPDeviceFactory(user=person)
    for issued in (pki.card, pki.expired):
        factories.SmartcardFactory(
            user=person, serial=issued.serial, fingerprint_sha256=issued.fingerprint_sha256
        )
    return person


@dataclass(frozen=True)
class Response:
    status: int
    headers: Message
    body: str


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Browser:
    """A client with a cookie jar that speaks HTTPS to nginx, with or without a card."""

    def __init__(self, port: int, ca_path: Path, card: tuple[Path, Path] | None = None) -> None:
        self.origin = f"https://127.0.0.1:{port}"
        context = ssl.create_default_context(cafile=str(ca_path))
        if card is not None:
            context.load_cert_chain(*map(str, card))
        self.cookies = CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context),
            urllib.request.HTTPCookieProcessor(self.cookies),
            _NoRedirects(),
        )

    def request(
        self,
        path: str,
        *,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        request = urllib.request.Request(self.origin + path, data=data, headers=headers or {})
        try:
            with self.opener.open(request, timeout=REQUEST_TIMEOUT) as reply:
                return Response(reply.status, reply.headers, reply.read().decode())
        except urllib.error.HTTPError as error:
            with error:
                return Response(error.code, error.headers, error.read().decode())

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.cookies if c.name == name), None)


def smartcard_path() -> str:
    return reverse("authn:smartcard-login", kwargs={"terminal": "ccass", "entry": "functions"})


def csrf_field(page: str) -> str:
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match, "no CSRF token in the form"
    return match.group(1)


def login_audit() -> list[tuple[str, str, str, str | None]]:
    return [
        (event.outcome, event.method, event.reason, event.ip)
        for event in AuditEvent.objects.filter(action="login").order_by("pk")
    ]


def test_card_login_through_nginx_reaches_online_functions(portal, pki, card_user):
    browser = Browser(portal, pki.ca_path, pki.card_paths)

    page = browser.request(smartcard_path())
    assert page.status == 200, page.body
    assert f"Card {pki.card.serial} read." in page.body
    assert browser.cookie("csrftoken"), "the secure CSRF cookie did not come back over HTTPS"

    form = {"csrfmiddlewaretoken": csrf_field(page.body), "login_id": card_user.login_id}
    # Without Origin, Django checks the Referer of an HTTPS request against the Host.
    referer_only = {"Referer": browser.origin + smartcard_path()}
    response = browser.request(
        smartcard_path(), form={**form, "password": "not-the-card-pin"}, headers=referer_only
    )
    assert response.status == 200, response.body
    assert "Login failed." in response.body

    # A browser's POST carries Origin too: https:// (X-Forwarded-Proto) and the Host with port.
    response = browser.request(
        smartcard_path(),
        form={**form, "password": CARD_PASSWORD},
        headers={**referer_only, "Origin": browser.origin},
    )
    assert response.status == 302, response.body
    assert response.headers["Location"] == reverse("authn:online-home")

    online = browser.request(reverse("authn:online-home"))
    assert online.status == 200
    assert f"You are logged in as {card_user.login_id}." in online.body
    assert "Logged in with: smartcard" in online.body
    # The portal saw nginx's address, which is why it believed the card headers.
    assert login_audit() == [
        ("failure", "smartcard", "bad_credentials", "127.0.0.1"),
        ("success", "smartcard", "", "127.0.0.1"),
    ]


def test_no_card_through_nginx_is_refused(portal, pki, card_user):
    browser = Browser(portal, pki.ca_path, card=None)
    page = browser.request(smartcard_path())
    assert page.status == 403
    assert "Smartcard refused" in page.body
    assert "No smartcard was presented." in page.body
    assert login_audit() == []  # opening the refusal page is no login attempt

    # Login with OTP works through the same host without a card.
    otp = browser.request(
        reverse("authn:otp-login", kwargs={"terminal": "ccass", "scope": "online"})
    )
    assert otp.status == 200
    assert "Login ID" in otp.body


def forged_headers(card: certs.Issued) -> dict[str, str]:
    return {"X-SSL-Client-Cert": card.escaped_pem, "X-SSL-Client-Verify": "SUCCESS"}


@pytest.mark.parametrize("secret", [None, "guessed-secret"])
def test_forged_headers_straight_from_loopback_are_refused_and_audited(
    portal, pki, card_user, live_server, secret
):
    """Another process on the web host calls the app server directly, past nginx, with a
    user's public certificate: without the secret nginx shares with the portal, refused."""
    headers = {**forged_headers(pki.card), "X-Forwarded-Proto": "https"}
    if secret is not None:
        headers["X-Proxy-Secret"] = secret
    request = urllib.request.Request(live_server.url + smartcard_path(), headers=headers)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT)
    assert refused.value.code == 403
    body = refused.value.read().decode()
    assert "Your smartcard could not be read through the secure connection." in body
    assert f"Card {pki.card.serial} read." not in body
    assert login_audit() == [("failure", "smartcard", "card_untrusted", "127.0.0.1")]


def test_forged_card_headers_without_a_card_are_refused(portal, pki, card_user):
    browser = Browser(portal, pki.ca_path, card=None)
    page = browser.request(smartcard_path(), headers=forged_headers(pki.card))
    assert page.status == 403
    assert "No smartcard was presented." in page.body
    assert pki.card.serial not in page.body
    assert login_audit() == []  # opening the refusal page is no login attempt


def test_forged_card_headers_beside_another_card_are_replaced_by_nginx(portal, pki, card_user):
    # The browser holds a genuine but unregistered card and claims the registered one.
    browser = Browser(portal, pki.ca_path, pki.stranger_paths)
    page = browser.request(smartcard_path(), headers=forged_headers(pki.card))
    assert page.status == 403
    assert "This smartcard is not registered for terminal access." in page.body
    assert login_audit() == []  # opening the refusal page is no login attempt


def test_card_nginx_cannot_verify_is_refused_but_otp_login_still_opens(portal, pki, card_user):
    assert Smartcard.objects.filter(fingerprint_sha256=pki.expired.fingerprint_sha256).exists()
    browser = Browser(portal, pki.ca_path, pki.expired_paths)

    page = browser.request(smartcard_path())
    assert page.status == 403
    assert "Smartcard refused" in page.body
    assert "Your smartcard certificate could not be verified." in page.body
    assert login_audit() == []  # opening the refusal page is no login attempt

    # With the expired card still offered by the browser, Login with OTP works: the login
    # ID and password get through to the portal, which asks for the code next.
    otp_path = reverse("authn:otp-login", kwargs={"terminal": "ccass", "scope": "online"})
    otp = browser.request(otp_path)
    assert otp.status == 200
    response = browser.request(
        otp_path,
        form={
            "csrfmiddlewaretoken": csrf_field(otp.body),
            "login_id": card_user.login_id,
            "password": factories.USER_PASSWORD,
        },
        headers={"Origin": browser.origin, "Referer": browser.origin + otp_path},
    )
    assert response.status == 302, response.body
    assert response.headers["Location"] == otp_path + "verify/"
