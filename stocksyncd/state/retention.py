"""Run history retention: by count, by age and by the space it takes.

A run count alone does not bound the database: a shop where 5% of 100k
variants change every minute writes 5000 change rows a minute, so 20000 runs
of it are about 13 GB. The size bound here is an estimate of what the rows
take (their text plus a fixed per-row cost for the tuple and its index
entries), summed from the newest run back; older runs beyond the budget go,
whichever integration they belong to. The newest run of each integration and
runs still in flight are never deleted. Deletes go in batches, each its own
transaction, so the first prune of a large history neither holds one huge
transaction nor blocks the store's other writers for long.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from stocksyncd.state import schema as t

# What a row costs beyond its text, with its index entries, measured on PostgreSQL
# (3000 runs of 300 integrations, one in ten with 20 changes, after VACUUM: 620
# bytes a run, 233 a change of 32 text bytes; the estimate came within 3% of
# pg_total_relation_size). SQLite takes less, so the bound errs on the safe side.
CHANGE_ROW_BYTES = 200
# A run row without its changes (ids, times, counts, a short message), with its indexes.
RUN_ROW_BYTES = 650
# Text bytes of a change when there is nothing to sample yet.
DEFAULT_CHANGE_TEXT = 40
SAMPLE_CHANGES = 2000
DELETE_BATCH = 500


@dataclass(frozen=True)
class Retention:
    """What to keep; a zero or None bound is not applied."""

    keep_per_integration: int = 0
    older_than: datetime | None = None  # runs that started before this go
    max_bytes: int | None = None

    @property
    def bounded(self) -> bool:
        """Whether any bound applies."""
        return bool(self.keep_per_integration or self.older_than is not None
                    or self.max_bytes)


def change_text_bytes() -> sa.Select[float | None]:
    """The mean text length of the newest change rows (the size estimate's sample)."""
    c = t.run_changes.c
    text = (sa.func.length(c.ref) + sa.func.length(c.key) + sa.func.length(c.field)
            + sa.func.coalesce(sa.func.length(c.old), 0)
            + sa.func.coalesce(sa.func.length(c.new), 0))
    sample = sa.select(text.label("n")).order_by(c.id.desc()).limit(SAMPLE_CHANGES).subquery()
    return sa.select(sa.func.avg(sample.c.n))


def per_change_bytes(mean_text: float | None) -> int:
    """Estimated bytes of one change row given the sampled mean text length."""
    text = DEFAULT_CHANGE_TEXT if mean_text is None else float(mean_text)
    return CHANGE_ROW_BYTES + round(text)


def doomed_runs(keep: Retention, change_bytes: int) -> sa.Select[str]:
    """The run ids ``keep`` lets go, oldest first."""
    r = t.runs.c
    newest_first = (r.started_at.desc(), r.run_id.desc())
    ranked = sa.select(
        r.run_id, r.started_at, r.status,
        sa.func.row_number().over(partition_by=r.integration,
                                  order_by=newest_first).label("rank"),
        sa.func.sum(RUN_ROW_BYTES + r.changes_total * change_bytes).over(
            order_by=newest_first, rows=(None, 0)).label("upto"),
    ).subquery()
    reasons = []
    if keep.keep_per_integration:
        reasons.append(ranked.c.rank > keep.keep_per_integration)
    if keep.older_than is not None:
        reasons.append(ranked.c.started_at < keep.older_than)
    if keep.max_bytes:
        reasons.append(ranked.c.upto > keep.max_bytes)
    return (sa.select(ranked.c.run_id)
            .where(ranked.c.rank > 1, ranked.c.status != "running", sa.or_(*reasons))
            .order_by(ranked.c.started_at))


def history_bytes(change_bytes: int) -> sa.Select[int | None]:
    """The estimated size of the whole run history."""
    r = t.runs.c
    return sa.select(sa.func.sum(RUN_ROW_BYTES + r.changes_total * change_bytes))


def delete_runs(run_ids: list[str]) -> list[sa.Delete]:
    """Statements deleting ``run_ids`` and their changes."""
    # Explicit, not only ON DELETE CASCADE: cheaper than row-by-row triggers and
    # independent of SQLite's foreign_keys pragma.
    return [t.run_changes.delete().where(t.run_changes.c.run_id.in_(run_ids)),
            t.runs.delete().where(t.runs.c.run_id.in_(run_ids))]
