"""The Mouser lifecycle status, kept in the supplier part's short ``note``.

The note (at most 100 characters in InvenTree) may also hold the user's own
text, so the job owns only one marked segment, ``[Mouser: <status>]``, and
leaves everything else alone. New notes get the marker at the end:

    "keep 2 reels [Mouser: End of Life]"

An ordinary active part (Mouser sends no status) carries no marker. The
original plugin wrote the bare status as the whole note; a note that is
exactly one of Mouser's known statuses is read as such, so it is replaced
rather than kept as user text. The note is rewritten only when the status
changes; user text is shortened (with "…") only if text and marker do not
fit in the limit together.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NOTE_MAX = 100
_MARKER_RE = re.compile(r"\[Mouser:\s*([^\]]*)\]")
_SPACES_RE = re.compile(r"\s+")
KNOWN_STATUSES = frozenset(
    s.lower()
    for s in (
        "New Product",
        "New at Mouser",
        "Not Recommended for New Designs",
        "End of Life",
        "Obsolete",
        "Factory Special Order",
    )
)
# A bare note saying the part is ordinary (what other tools show for Mouser's null):
# the same as no status, and replaced by the marker when a real status arrives.
ORDINARY_NOTES = frozenset({"active"})


def clean_status(status: str | None) -> str | None:
    """One line, no brackets, None when empty (Mouser's null means an ordinary part)."""
    if status is None:
        return None
    text = _SPACES_RE.sub(" ", status.replace("[", "(").replace("]", ")")).strip()
    return text or None


def marker(status: str) -> str:
    """The segment the job owns."""
    return f"[Mouser: {status}]"


def split_note(note: str | None) -> tuple[str | None, str]:
    """(status the note records, the user's own text)."""
    text = note or ""
    found = _MARKER_RE.findall(text)
    if found:
        user = _SPACES_RE.sub(" ", _MARKER_RE.sub(" ", text)).strip()
        return clean_status(found[-1]), user
    if text.strip().lower() in KNOWN_STATUSES:
        return clean_status(text), ""
    if text.strip().lower() in ORDINARY_NOTES:
        return None, ""
    return None, text.strip()


def read_status(note: str | None) -> str | None:
    """The lifecycle status a note records, or None."""
    return split_note(note)[0]


@dataclass(frozen=True)
class NotePlan:
    """What to do with the note: ``changed`` means write ``note``."""

    old_status: str | None
    new_status: str | None
    old_note: str | None
    note: str | None

    @property
    def changed(self) -> bool:
        """The status differs, so the note is rewritten."""
        return self.old_status != self.new_status


def compose(user: str, status: str | None, limit: int = NOTE_MAX) -> str:
    """User text plus the marker, within ``limit`` characters."""
    if status is None:
        return user[:limit]
    mark = marker(status)
    if len(mark) > limit:
        mark = marker(status[: max(0, limit - len(marker("")) - 1)] + "…")
    if not user:
        return mark
    room = limit - len(mark) - 1
    if len(user) > room:
        user = user[: max(0, room - 1)].rstrip() + "…" if room > 1 else ""
    return f"{user} {mark}" if user else mark


def plan_note(note: str | None, status: str | None, limit: int = NOTE_MAX,
              note_format: str = "marked") -> NotePlan:
    """Compare the recorded status with Mouser's and compose the new note if it changed.

    ``note_format = "bare"`` writes the status alone, as the original plugin
    did (reports matching ``note == "Obsolete"`` keep working); the user's
    text is then not kept.
    """
    old_status, user = split_note(note)
    new_status = clean_status(status)
    if old_status == new_status:
        return NotePlan(old_status, new_status, note, note)
    if note_format == "bare":
        return NotePlan(old_status, new_status, note, (new_status or "")[:limit])
    return NotePlan(old_status, new_status, note, compose(user, new_status, limit))
