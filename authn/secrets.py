"""Generate one-time secrets and the keyed hashes under which they are stored."""

from __future__ import annotations

import secrets

from django.utils.crypto import constant_time_compare, salted_hmac

# Without 0/O and 1/I/L so that a code read off paper is typed back right.
BACKUP_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def secret_hash(purpose: str, value: str) -> str:
    """Return the keyed hash a secret is stored under; a database dump alone does not reveal it."""
    return salted_hmac(f"authn.{purpose}", value, algorithm="sha256").hexdigest()


def secret_matches(purpose: str, value: str, stored_hash: str) -> bool:
    return bool(stored_hash) and constant_time_compare(secret_hash(purpose, value), stored_hash)


def numeric_code(digits: int = 6) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(digits))


def backup_code() -> str:
    raw = "".join(secrets.choice(BACKUP_CODE_ALPHABET) for _ in range(10))
    return f"{raw[:5]}-{raw[5:]}"


def normalize_backup_code(value: str) -> str:
    cleaned = "".join(ch for ch in value.upper() if ch.isalnum())
    return f"{cleaned[:5]}-{cleaned[5:]}" if len(cleaned) == 10 else cleaned


def url_token() -> str:
    return secrets.token_urlsafe(32)
