"""A run's outcome in one line, in the current language, from its stored numbers.

The message a run stores is English text made while it ran; the pages and the
notifications show this summary in the reader's language instead, and keep the
stored message (which may quote an upstream's answer) beneath it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stocksyncd.i18n import _, ngettext


def _int(counts: Mapping[str, Any], key: str) -> int:
    value = counts.get(key, 0)
    return value if isinstance(value, int) else 0


def run_summary(status: str, dry_run: bool, counts: Mapping[str, Any],
                details: Mapping[str, Any]) -> str | None:
    """'9 of 10 written; 1 refused', 'nothing to change'...; None when the numbers
    do not tell (a run that is not a stock run, or one still running)."""
    if "mouser_quota_left" in details:
        return _mouser_summary(status, dry_run, counts, details)
    if "index_mode" not in details:
        return None  # not a run whose numbers tell: its own message says it best
    changed, written = _int(counts, "changed"), _int(counts, "written")
    if status == "aborted":
        zeroing = details.get("zeroing")
        matched = _int(counts, "matched")
        if isinstance(zeroing, int) and matched:
            return _("Stopped by the zero guard: {n} of {matched} matched variants would drop "
                     "to 0; nothing written").format(n=zeroing, matched=matched)
        return _("Stopped; nothing written")
    if status == "failed":
        if written >= changed > 0:  # everything went out, something after it failed
            return _("{written} of {changed} written").format(written=written, changed=changed)
        if written:
            return _("{written} of {changed} written; {refused} refused").format(
                written=written, changed=changed, refused=changed - written)
        return _("Failed; nothing written")
    if status != "ok":
        return None
    if dry_run:
        return ngettext("Dry run: {n} change planned, nothing written",
                        "Dry run: {n} changes planned, nothing written", changed).format(n=changed)
    if not changed:
        return _("Nothing to change")
    return ngettext("{n} change written", "{n} changes written", written).format(n=written)


def _mouser_summary(status: str, dry_run: bool, counts: Mapping[str, Any],
                    details: Mapping[str, Any]) -> str | None:
    """A Mouser -> InvenTree run: parts checked, changes written, calls left today."""
    parts, written = _int(counts, "source"), _int(counts, "written")
    left = details.get("mouser_quota_left")
    quota = (" · " + _("{n} Mouser calls left today").format(n=left)
             if isinstance(left, int) else "")
    if status == "aborted":
        if "quota_resets_at" in details:
            return _("Mouser call quota used up; waiting for the reset") + quota
        return _("Stopped; nothing written") + quota
    if status == "failed":
        if written:
            return ngettext("Failed after {n} change was written",
                            "Failed after {n} changes were written", written).format(n=written)
        return _("Failed; nothing written")
    if status != "ok":
        return None
    checked = ngettext("{n} part checked", "{n} parts checked", parts).format(n=parts)
    if dry_run:
        return checked + "; " + _("dry run, nothing written") + quota
    changes = ngettext("{n} change written", "{n} changes written", written).format(n=written)
    return checked + "; " + changes + quota
