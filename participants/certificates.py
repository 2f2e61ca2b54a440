"""Read a smartcard's certificate the way the portal registers it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding


@dataclasses.dataclass(frozen=True)
class CertificateFacts:
    """What a card registration needs from a certificate."""

    fingerprint_sha256: str
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime


def certificate_facts(pem: bytes) -> CertificateFacts:
    """Return the fingerprint, serial and validity of a PEM certificate; ValueError if none."""
    cert = x509.load_pem_x509_certificate(pem)
    return CertificateFacts(
        # The fingerprint the front proxy's certificate will match: SHA-256 of the DER.
        fingerprint_sha256=hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest(),
        serial=format(cert.serial_number, "X"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )
