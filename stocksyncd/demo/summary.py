"""The live console summary: one line per finished run, then its first few changes.

It reads the daemon's state store, the same record the status page shows, so
what the console says is what an operator would find in the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO

from stocksyncd.state.api import ChangeRecord, RunRecord, StateStore

RECENT = 50
MAX_CHANGES = 5
MAX_TEXT = 60
MAX_ERROR = 240
FINISHED = ("ok", "aborted", "failed", "interrupted")


def _short(value: str | None, limit: int = MAX_TEXT) -> str:
    if value is None or value == "":
        return "(none)"
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value: object) -> object:
    """``12.0`` shows as ``12``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _figure(text: str | None) -> str:
    """Stock figures stored as ``12.0`` show as ``12``; everything else is shortened."""
    if text is not None:
        try:
            number = float(text)
        except ValueError:
            return _short(text)
        if number.is_integer():
            return str(int(number))
    return _short(text)


def format_counts(counts: dict[str, object]) -> str:
    """``source 175  matched 160  changed 3  written 3  skipped 15 (not_in_target 12 …)``."""
    parts = [f"{name} {_number(counts.get(name, 0))}"
             for name in ("source", "target", "matched", "changed", "written", "skipped")]
    reasons = counts.get("skipped_by_reason")
    text = "  ".join(parts)
    if isinstance(reasons, dict) and reasons:
        text += " (" + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) + ")"
    return text


def format_change(change: ChangeRecord) -> str:
    """``SKU-000012  quantity: 12 -> 9``."""
    mark = "" if change.applied else "  (not applied)"
    return f"{change.key}  {change.field}: {_figure(change.old)} -> {_figure(change.new)}{mark}"


def format_run(record: RunRecord, max_changes: int = MAX_CHANGES) -> list[str]:
    """The lines printed for one finished run."""
    when = (record.finished_at or record.started_at).astimezone().strftime("%H:%M:%S")
    dry = " (dry run)" if record.dry_run else ""
    clamped = record.details.get("negative_clamped")
    extra = f"  negative clamped to 0: {clamped}" if isinstance(clamped, int) and clamped else ""
    lines = [f"{when}  {record.integration:<17} {record.status:<7} {record.duration_s:5.1f}s"
             f"{dry}  {format_counts(record.counts)}{extra}"]
    if record.message:
        lines.append(f"    {_short(record.message, MAX_ERROR)}")
    if record.conflicts:
        shown = ", ".join(record.conflicts[:max_changes])
        more = f" and {len(record.conflicts) - max_changes} more" \
            if len(record.conflicts) > max_changes else ""
        lines.append(f"    conflicts (not written): {shown}{more}")
    for error in record.errors[:3]:
        lines.append(f"    error: {_short(error, MAX_ERROR)}")
    for change in record.changes[:max_changes]:
        lines.append(f"    {format_change(change)}")
    total = max(record.changes_total, len(record.changes))
    if total > max_changes:
        lines.append(f"    … and {total - max_changes} more change(s): see the status page")
    return lines


@dataclass
class Summary:
    """Prints each run once, oldest first, and counts runs per integration."""

    out: TextIO
    since: datetime  # runs that started earlier (a reused state store) are not ours
    max_changes: int = MAX_CHANGES
    finished: dict[str, int] = field(default_factory=dict)
    ok: dict[str, int] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)

    async def poll(self, state: StateStore) -> list[RunRecord]:
        """Print the runs that finished since the last poll; returns them."""
        recent = await state.recent_runs(limit=RECENT)
        new = [r for r in reversed(recent) if r.status in FINISHED
               and r.run_id not in self._seen and r.started_at >= self.since]
        shown: list[RunRecord] = []
        for brief in new:
            self._seen.add(brief.run_id)
            full = await state.get_run(brief.run_id) if brief.changes_total else None
            record = full or brief
            self.finished[record.integration] = self.finished.get(record.integration, 0) + 1
            if record.status == "ok":
                self.ok[record.integration] = self.ok.get(record.integration, 0) + 1
            self.emit(format_run(record, self.max_changes))
            shown.append(record)
        return shown

    def emit(self, lines: list[str]) -> None:
        """Write lines and flush (the console is often a pipe)."""
        for line in lines:
            self.out.write(line + "\n")
        self.out.flush()

    def all_done(self, names: list[str], runs: int) -> bool:
        """Every integration in ``names`` has finished at least ``runs`` runs."""
        return all(self.finished.get(name, 0) >= runs for name in names)

    def all_ok(self, names: list[str]) -> bool:
        """Every integration in ``names`` has at least one ok run."""
        return all(self.ok.get(name, 0) >= 1 for name in names)

