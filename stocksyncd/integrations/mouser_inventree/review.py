"""Review entries of the job: events accumulate, a part's current state replaces itself.

``lifecycle`` and ``updated`` are events (something changed upstream) and are
kept until the user deletes them. ``hits``, ``unknown_sku`` and ``error``
describe where a part stands now, so each pass over the part replaces the
previous ones, and a part that syncs cleanly loses them. Which entries
describe a part's state is kept in the state store (scope
``mouser-inventree-review``), so the catalogue wrapping around does not pile
up duplicates. In a dry run nothing is stored; entries are only collected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stocksyncd.state.api import ReviewEntry, StateStore

SCOPE = "mouser-inventree-review"
STATE_KINDS = frozenset({"hits", "unknown_sku", "error"})


@dataclass
class ReviewBook:
    """Writes one integration's review entries (or collects them in a dry run)."""

    state: StateStore
    integration: str
    run_id: str | None = None
    dry_run: bool = False
    collected: list[dict[str, Any]] = field(default_factory=list)

    def _entry(self, part_pk: int, part_name: str, kind: str, message: str,
               data: dict[str, Any]) -> ReviewEntry:
        return ReviewEntry(integration=self.integration, part_pk=part_pk, part_name=part_name,
                           kind=kind, message=message, data=data, run_id=self.run_id)

    def _collect(self, entry: ReviewEntry) -> None:
        self.collected.append({"part_pk": entry.part_pk, "part_name": entry.part_name,
                               "kind": entry.kind, "message": entry.message, "data": entry.data})

    async def event(self, part_pk: int, part_name: str, kind: str, message: str,
                    data: dict[str, Any]) -> int | None:
        """Store a ``lifecycle``/``updated`` entry; returns its id (None in a dry run)."""
        entry = self._entry(part_pk, part_name, kind, message, data)
        if self.dry_run:
            self._collect(entry)
            return None
        return await self.state.add_review(entry)

    async def set_state(self, part_pk: int, part_name: str,
                        entries: list[tuple[str, str, dict[str, Any]]]) -> list[int]:
        """Replace the part's state entries with ``entries`` (kind, message, data); [] clears."""
        made = [self._entry(part_pk, part_name, k, m, d) for k, m, d in entries]
        if self.dry_run:
            for entry in made:
                self._collect(entry)
            return []
        key = f"{self.integration}:{part_pk}"
        old = await self.state.get_value(SCOPE, key)
        for entry_id in old if isinstance(old, list) else []:
            if isinstance(entry_id, int):
                await self.state.delete_review(entry_id)  # False when the user deleted it
        ids = [await self.state.add_review(entry) for entry in made]
        if ids:
            await self.state.set_value(SCOPE, key, ids)
        elif old is not None:
            await self.state.delete_value(SCOPE, key)
        return ids

    async def forget_part(self, part_pk: int) -> int:
        """Delete every entry of the part (it is ignored from now on); how many went."""
        gone = 0
        for entry in await self.state.list_reviews(self.integration, limit=10_000):
            if entry.part_pk == part_pk and entry.id is not None:
                gone += await self.state.delete_review(entry.id)
        key = f"{self.integration}:{part_pk}"
        if await self.state.get_value(SCOPE, key) is not None:
            await self.state.delete_value(SCOPE, key)
        return gone
