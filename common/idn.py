"""Email addresses as a reviewer should see them: internationalised domains in punycode too,
and a flag on domains that mix scripts (`exаmple` with a Cyrillic а looks like `example`)."""

from __future__ import annotations

import dataclasses
import unicodedata


@dataclasses.dataclass(frozen=True)
class ReviewedEmail:
    address: str
    # The domain in ASCII (punycode), as mail servers see it; equal to `address` when ASCII.
    ascii: str
    # The domain is not plain ASCII: show `ascii` beside the address.
    internationalised: bool
    # The domain's letters come from more than one script: a look-alike of another domain.
    mixed_scripts: bool
    scripts: tuple[str, ...]


# Scripts that are written together in one word (Chinese and Japanese): one script here.
_WRITTEN_TOGETHER = {"CJK": "CJK", "HIRAGANA": "CJK", "KATAKANA": "CJK", "IDEOGRAPHIC": "CJK"}


def _script(char: str) -> str:
    # Unicode character names start with the script ("LATIN SMALL LETTER A",
    # "CYRILLIC SMALL LETTER A", "GREEK SMALL LETTER ALPHA", "CJK UNIFIED IDEOGRAPH-…").
    name = unicodedata.name(char, "")
    script = name.split(" ", 1)[0] if name else "UNKNOWN"
    return _WRITTEN_TOGETHER.get(script, script)


def review_email(address: str) -> ReviewedEmail:
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    # A label (the part between dots) whose letters come from two scripts is a look-alike;
    # a Chinese name under .hk is not.
    per_label = [{_script(char) for char in label if char.isalpha()} for label in domain.split(".")]
    scripts = tuple(sorted(set().union(*per_label))) if per_label else ()
    internationalised = not domain.isascii()
    ascii_domain = domain
    if internationalised:
        try:
            ascii_domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            ascii_domain = domain.encode("ascii", "backslashreplace").decode("ascii")
    return ReviewedEmail(
        address=address,
        ascii=f"{local}@{ascii_domain}" if at else address,
        internationalised=internationalised,
        mixed_scripts=any(len(label) > 1 for label in per_label),
        scripts=scripts,
    )
