"""Matching source stock to InSales variants and deciding what to write: pure, no I/O.

The rules of SPEC §2 live here: never write a key duplicated on the target
or ambiguous on the source, skip bad values by reason, write only changed
figures, and refuse a plan that would zero too many matched variants.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from stocksyncd.integrations.base import RunCounts
from stocksyncd.integrations.stock.keys import (
    NegativePolicy,
    Quantity,
    judge_quantity,
    normalize_key,
)
from stocksyncd.integrations.stock.model import SourceItem

SKIP_NO_KEY = "no_key"
SKIP_NOT_IN_TARGET = "not_in_target"
SKIP_DUPLICATE_TARGET = "duplicate_target"
SKIP_AMBIGUOUS_SOURCE = "ambiguous_source"


class TargetVariant(NamedTuple):
    """An InSales variant as the planner sees it: normalised key and current figure."""

    id: int
    key: str | None
    current: float | None  # None: stock not tracked, or unreadable


class PlannedWrite(NamedTuple):
    """One variant whose figure differs from the source."""

    variant_id: int
    key: str
    old: float | None
    new: int


@dataclass
class Plan:
    """What a run would write, and why the rest is left alone."""

    writes: list[PlannedWrite] = field(default_factory=list)
    counts: RunCounts = field(default_factory=RunCounts)
    conflicts: list[str] = field(default_factory=list)
    abort: str | None = None  # set when a safety rule refuses the whole plan
    details: dict[str, int] = field(default_factory=dict)


@dataclass
class SourceStock:
    """The source reduced to one figure per key."""

    values: dict[str, int] = field(default_factory=dict)
    ambiguous: set[str] = field(default_factory=set)
    counts: RunCounts = field(default_factory=RunCounts)
    duplicates: int = 0  # repeated keys that agreed
    clamped: int = 0


class SourceReducer:
    """``reduce_source`` a part at a time, so a caller can let other work in between."""

    def __init__(self, negative: NegativePolicy) -> None:
        self.negative = negative
        self.out = SourceStock()
        # Most keys occur once: keep the first judgement per key and build a list
        # only for keys that repeat (the rules in ``result`` are the same either way).
        self._first: dict[str, Quantity] = {}
        self._repeats: dict[str, list[Quantity]] = {}

    def add(self, items: Iterable[SourceItem]) -> None:
        """Judge ``items``; their keys are compared with every item added before."""
        counts, negative = self.out.counts, self.negative
        first, repeats = self._first, self._repeats
        source = clamped = 0
        for item in items:
            source += 1
            key = normalize_key(item.key)
            if key is None:
                counts.skip(SKIP_NO_KEY)
                continue
            judged = judge_quantity(item.quantity, negative)
            if judged.clamped:
                clamped += 1
            seen = first.get(key)
            if seen is None:
                first[key] = judged
            elif key in repeats:
                repeats[key].append(judged)
            else:
                repeats[key] = [seen, judged]
        counts.source += source
        self.out.clamped += clamped

    def result(self) -> SourceStock:
        """One value per key: repeats that agree are fine; any disagreement makes the
        key ambiguous, including a repeat whose value is unusable (we cannot tell which
        is right)."""
        out, repeats = self.out, self._repeats
        counts, values = out.counts, out.values
        for key, judged in self._first.items():
            judged_all = repeats.get(key)
            if judged_all is None:
                if judged.value is None:
                    counts.skip(judged.skip or "invalid")
                else:
                    values[key] = judged.value
                continue
            valid = {q.value for q in judged_all if q.value is not None}
            invalid = [q for q in judged_all if q.value is None]
            if not valid:
                for q in invalid:
                    counts.skip(q.skip or "invalid")
            elif len(valid) > 1 or invalid:
                out.ambiguous.add(key)
                counts.skip(SKIP_AMBIGUOUS_SOURCE, len(judged_all))
            else:
                values[key] = valid.pop()
                out.duplicates += len(judged_all) - 1
        return out


def reduce_source(items: Iterable[SourceItem], negative: NegativePolicy) -> SourceStock:
    """One value per key: repeats that agree are fine; any disagreement makes the key
    ambiguous, including a repeat whose value is unusable (we cannot tell which is right)."""
    reducer = SourceReducer(negative)
    reducer.add(items)
    return reducer.result()


def zero_guard_message(zeroing: int, matched: int, share: float) -> str | None:
    """Why a plan is refused by the mass-zeroing guard, or None when it may go ahead."""
    if matched == 0 or zeroing / matched <= share:
        return None
    return (
        f"zero guard: {zeroing} of {matched} matched variants ({zeroing / matched:.0%}) would "
        f"drop to 0, above the allowed {share:.0%}; nothing written (check the source, or "
        "raise zero_guard if this is real)"
    )


def plan_stock(
    source: Iterable[SourceItem],
    targets: Iterable[TargetVariant],
    *,
    negative: NegativePolicy = "clamp",
    zero_guard: float = 0.5,
) -> Plan:
    """Match by key and plan the writes (see module docstring for the rules)."""
    return plan_reduced(reduce_source(source, negative), targets, zero_guard=zero_guard)


def plan_reduced(
    reduced: SourceStock, targets: Iterable[TargetVariant], *, zero_guard: float = 0.5
) -> Plan:
    """``plan_stock`` for a source already reduced (``reduce_source``).

    Lets a run reduce the source while the target is still being read.
    """
    plan = Plan(counts=reduced.counts)
    counts = plan.counts
    # One variant per key; the (rare) keys held by several variants go to ``shared``.
    by_key: dict[str, TargetVariant] = {}
    shared: dict[str, list[TargetVariant]] = {}
    target = 0
    without_key = 0
    for variant in targets:
        target += 1
        key = variant.key
        if key is None:
            without_key += 1
            continue
        held = by_key.get(key)
        if held is None:
            by_key[key] = variant
        elif key in shared:
            shared[key].append(variant)
        else:
            shared[key] = [held, variant]
    counts.target += target
    conflicts = set(reduced.ambiguous)
    writes = plan.writes
    matched = 0
    not_in_target = 0
    duplicate_target = 0
    for key, value in reduced.values.items():
        found = by_key.get(key)
        if found is None:
            not_in_target += 1
            continue
        if key in shared:
            conflicts.add(key)
            duplicate_target += 1
            continue
        matched += 1
        current = found.current
        if current is None or current != value:
            writes.append(PlannedWrite(found.id, key, current, value))
    counts.matched += matched
    if not_in_target:
        counts.skip(SKIP_NOT_IN_TARGET, not_in_target)
    if duplicate_target:
        counts.skip(SKIP_DUPLICATE_TARGET, duplicate_target)
    plan.writes.sort(key=lambda w: w.variant_id)
    counts.changed = len(plan.writes)
    plan.conflicts = sorted(conflicts)
    zeroing = sum(1 for w in plan.writes if w.new == 0)  # every planned write differs from old
    plan.abort = zero_guard_message(zeroing, counts.matched, zero_guard)
    plan.details = {
        "zeroing": zeroing,
        "source_duplicates_agreeing": reduced.duplicates,
        "negative_clamped": reduced.clamped,
        "target_without_key": without_key,
        "target_duplicate_keys": len(shared),
    }
    return plan
