"""Keep the catalogues in step with the code: ``python -m stocksyncd.i18n.catalogue``.

    python -m stocksyncd.i18n.catalogue update   # new strings into every .po
    python -m stocksyncd.i18n.catalogue compile  # .po -> .mo (what runs)
    python -m stocksyncd.i18n.catalogue check    # exit 1 when either is out of date

Babel extracts the marked strings (``_``, ``N_``, ``ngettext``). On Python 3.11
an f-string is one token, so Babel cannot see a ``_("...")`` inside one; a
second pass finds those with a regular expression over the source text.
"""

from __future__ import annotations

import ast
import io
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from stocksyncd.i18n import DOMAIN, LANGUAGES, LOCALE_DIR

PACKAGE = Path(__file__).resolve().parent.parent
KEYWORDS = {"_": None, "N_": None, "ngettext": (1, 2)}
# A marked call with one plain string literal: _("...") or N_('...').
_CALL = re.compile(r"""\b(?:_|N_)\(\s*("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')\s*\)""")
_PLURAL = re.compile(r"""\bngettext\(\s*("(?:[^"\\\n]|\\.)*")\s*,\s*("(?:[^"\\\n]|\\.)*")""")

Message = str | tuple[str, str]
FIXED_DATE = datetime(2026, 1, 1, tzinfo=UTC)


def messages() -> Iterator[Message]:
    """Every marked string of the package (plural forms as a pair)."""
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(PACKAGE), method_map=[("**.py", "python")], keywords=KEYWORDS):
        yield message if isinstance(message, str) else (message[0], message[1])
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == Path(__file__).resolve():
            continue  # its docstring shows the pattern
        text = path.read_text(encoding="utf-8")
        for match in _CALL.finditer(text):
            yield ast.literal_eval(match.group(1))
        for match in _PLURAL.finditer(text):
            yield ast.literal_eval(match.group(1)), ast.literal_eval(match.group(2))


def template() -> Catalog:
    """The catalogue of every marked string, untranslated."""
    catalog = Catalog(project="stocksyncd", domain=DOMAIN)
    for message in messages():
        if message:
            catalog.add(message)
    return catalog


def po_path(language: str) -> Path:
    """Where the translations of ``language`` live."""
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


def read(language: str) -> Catalog:
    """The .po of ``language`` (empty when there is none yet)."""
    path = po_path(language)
    if not path.exists():
        return Catalog(locale=language, project="stocksyncd", domain=DOMAIN)
    with path.open("rb") as f:
        return read_po(f, locale=language, domain=DOMAIN)


def po_bytes(catalog: Catalog) -> bytes:
    """``catalog`` as .po text (no dates or locations, so diffs stay small)."""
    out = io.BytesIO()
    write_po(out, catalog, omit_header=False, no_location=True, sort_output=True,
             ignore_obsolete=True, width=100)
    return out.getvalue()


def mo_bytes(catalog: Catalog) -> bytes:
    """``catalog`` compiled (fuzzy entries left out, as gettext does)."""
    out = io.BytesIO()
    write_mo(out, catalog, use_fuzzy=False)
    return out.getvalue()


def updated(language: str) -> Catalog:
    """The .po of ``language`` with the code's current strings."""
    catalog = read(language)
    catalog.update(template(), no_fuzzy_matching=True)
    catalog.fuzzy = False
    catalog.msgid_bugs_address = ""
    catalog.last_translator = "stocksyncd"
    catalog.language_team = language
    # Fixed dates: the file changes only when its strings do.
    catalog.revision_date = catalog.creation_date = FIXED_DATE
    return catalog


def untranslated(catalog: Catalog) -> list[str]:
    """The ids without a translation."""
    out = []
    for message in catalog:
        if not message.id:
            continue
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if not all(strings):
            out.append(message.id if isinstance(message.id, str) else message.id[0])
    return out


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    stale = []
    for language in LANGUAGES[1:]:
        catalog = updated(language)
        po, mo = po_path(language), po_path(language).with_suffix(".mo")
        if command == "update":
            po.parent.mkdir(parents=True, exist_ok=True)
            po.write_bytes(po_bytes(catalog))
        elif command == "compile":
            mo.write_bytes(mo_bytes(read(language)))
        else:
            if not po.exists() or po.read_bytes() != po_bytes(catalog):
                stale.append(f"{po} is not up to date with the code: run update")
            if not mo.exists() or mo.read_bytes() != mo_bytes(read(language)):
                stale.append(f"{mo} is not compiled from the .po: run compile")
            missing = untranslated(catalog)
            if missing:
                stale.append(f"{po}: {len(missing)} untranslated, e.g. {missing[0]!r}")
    for line in stale:
        print(line, file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
