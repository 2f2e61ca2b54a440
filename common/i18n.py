"""Compile the translation catalogues with polib, and check they are complete and compiled.

GNU gettext is not needed to run the portal: `python -m common.i18n compile`
writes the .mo files, `python -m common.i18n check` fails on an untranslated or
fuzzy entry in a shipped catalogue, or a .mo older than its .po.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polib

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"


def catalogues() -> list[Path]:
    return sorted(LOCALE_DIR.glob("*/LC_MESSAGES/*.po"))


def compile_all() -> None:
    for po_path in catalogues():
        polib.pofile(str(po_path)).save_as_mofile(str(po_path.with_suffix(".mo")))


def problems() -> list[str]:
    found = []
    for po_path in catalogues():
        po = polib.pofile(str(po_path))
        for entry in po.untranslated_entries():
            found.append(f"{po_path}: untranslated: {entry.msgid!r}")
        for entry in po.fuzzy_entries():
            found.append(f"{po_path}: fuzzy: {entry.msgid!r}")
        mo_path = po_path.with_suffix(".mo")
        if not mo_path.exists():
            found.append(f"{mo_path}: missing (run make messages)")
            continue
        mo = {(e.msgctxt, e.msgid): e.msgstr for e in polib.mofile(str(mo_path))}
        for entry in po.translated_entries():
            if mo.get((entry.msgctxt, entry.msgid)) != entry.msgstr and not entry.msgid_plural:
                found.append(f"{mo_path}: stale for {entry.msgid!r} (run make messages)")
                break
    return found


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "check"
    if command == "compile":
        compile_all()
        return 0
    issues = problems()
    for line in issues:
        print(line, file=sys.stderr)
    return 1 if issues else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
