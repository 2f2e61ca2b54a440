"""Smartcard login: the client certificate the front proxy verified, matched to a user's card,
and the card's password."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from django.conf import settings
from django.http import HttpRequest

from authn.credentials import LoginResult, Refusal, Verdict, burn_hash_time, credentials_check
from common.proxy import from_front_proxy
from participants.models import Smartcard, Terminal, User


@dataclasses.dataclass(frozen=True)
class CardCertificate:
    fingerprint_sha256: str
    serial: str
    subject: str
    not_before: dt.datetime
    not_after: dt.datetime


class CertificateRefused(Exception):
    """The request carries no certificate the portal may believe."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def certificate_from_pem(pem: str) -> CardCertificate:
    """Parse a PEM certificate (as nginx's $ssl_client_escaped_cert sends it, URL-encoded)."""
    text = unquote(pem).strip()
    if "\n" not in text:
        # Some proxies (Apache's SSL_CLIENT_CERT through a header) fold the PEM's lines with tabs.
        text = text.replace("\t", "\n")
    try:
        cert = x509.load_pem_x509_certificate(text.encode("ascii"))
    except ValueError as exc:
        raise CertificateRefused("card_unreadable") from exc
    return CardCertificate(
        fingerprint_sha256=hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
        serial=format(cert.serial_number, "X"),
        subject=cert.subject.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


def certificate_from_request(request: HttpRequest) -> CardCertificate:
    """Return the card certificate the trusted front proxy verified for this request.

    The headers are believed only when the request comes straight from one of
    SMARTCARD_TRUSTED_PROXIES and carries the secret that proxy shares with the portal:
    anybody else, a process on the web host included, could simply set them.
    """
    if not from_front_proxy(request, proxies=settings.SMARTCARD_TRUSTED_PROXIES):
        raise CertificateRefused("card_untrusted")
    verify = request.META.get(settings.SMARTCARD_VERIFY_HEADER, "")
    if verify in ("", "NONE"):
        # nginx's $ssl_client_verify is NONE when the browser presented no certificate.
        raise CertificateRefused("card_missing")
    if verify != "SUCCESS":
        raise CertificateRefused("card_not_verified")
    pem = request.META.get(settings.SMARTCARD_CERT_HEADER, "")
    if not pem:
        raise CertificateRefused("card_missing")
    return certificate_from_pem(pem)


def card_for_certificate(cert: CardCertificate, *, now: dt.datetime) -> Smartcard:
    """Return the registered card for the certificate, refusing unknown, expired or revoked ones."""
    card = (
        Smartcard.objects.select_related("user__participant__terminal__programme")
        .filter(fingerprint_sha256=cert.fingerprint_sha256)
        .first()
    )
    if card is None:
        raise CertificateRefused("card_unknown")
    if card.revoked_at is not None:
        raise CertificateRefused("card_revoked")
    if now < card.valid_from or now < cert.not_before:
        raise CertificateRefused("card_not_yet_valid")
    if not card.is_usable(now) or not now < cert.not_after:
        raise CertificateRefused("card_expired")
    return card


def smartcard_password_check(
    *,
    request: HttpRequest,
    login_id: str,
    password: str,
    card: Smartcard,
    scopes: list[str],
    terminal: Terminal | None,
    method: str,
) -> LoginResult:
    """Check a login ID and the smartcard password of the card presented, under the throttle."""

    def verify(user: User | None) -> Verdict:
        if user is None:
            burn_hash_time(password)
            return Verdict(verified=False)
        if card.user_id != user.pk:
            # Another person's card with this login ID: recorded, then worded as any failure.
            burn_hash_time(password)
            return Verdict(
                verified=False,
                reason=Refusal.CARD_FOREIGN,
                detail={"card_serial": card.serial, "card_owner": card.user.login_id},
            )
        return Verdict(verified=card.check_password(password))

    return credentials_check(
        request=request,
        login_id=login_id,
        password=password,
        scopes=scopes,
        terminal=terminal,
        method=method,
        verify=verify,
    )
