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
    PLAIN,
    PLAIN_LIMIT,
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
UNMATCHED_NOT_IN_SOURCE = "not_in_source"  # a variant whose key the source does not have
UNMATCHED_TARGET_NO_KEY = "target_no_key"  # a variant with no key at all
# Each reason lists at most this many keys (the counts hold the totals): a shop
# with 90,000 variants and a source of 10,000 items must not store 80,000 rows a run.
MAX_LISTED = 1000


class Skip(NamedTuple):
    """One key left alone, and what we know of it, for the owner to fix or link."""

    key: str
    reason: str  # a skip reason (null, duplicate_target...) or an unmatched one
    source_ref: str = ""  # the source's id(s) of the item(s)
    variant_id: int | None = None
    product_id: int | None = None
    detail: str = ""  # e.g. the value the source sent, or the variants sharing the key
    source_name: str = ""  # the source's name for the item


class TargetVariant(NamedTuple):
    """An InSales variant as the planner sees it: normalised key and current figure."""

    id: int
    key: str | None
    current: float | None  # None: stock not tracked, or unreadable
    product_id: int | None = None  # for reports (a link to the product)


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
    skips: list[Skip] = field(default_factory=list)  # the keys behind the counts, capped


@dataclass
class SourceStock:
    """The source reduced to one figure per key."""

    values: dict[str, int] = field(default_factory=dict)
    ambiguous: set[str] = field(default_factory=set)
    counts: RunCounts = field(default_factory=RunCounts)
    duplicates: int = 0  # repeated keys that agreed
    clamped: int = 0
    firsts: dict[str, SourceItem] = field(default_factory=dict)  # key -> its first item
    invalid: set[str] = field(default_factory=set)  # keys present with no usable value
    skips: list[Skip] = field(default_factory=list)


class _Listed:
    """Appends a ``Skip`` unless its reason already has ``MAX_LISTED`` entries."""

    def __init__(self, out: list[Skip]) -> None:
        self.out = out
        self.seen: dict[str, int] = {}

    def __call__(self, skip: Skip) -> None:
        n = self.seen.get(skip.reason, 0)
        if n < MAX_LISTED:
            self.out.append(skip)
        self.seen[skip.reason] = n + 1


class SourceReducer:
    """``reduce_source`` a part at a time, so a caller can let other work in between."""

    def __init__(self, negative: NegativePolicy) -> None:
        self.negative = negative
        self.out = SourceStock()
        # Most keys occur once: keep the first judgement per key and build a list
        # only for keys that repeat (the rules in ``result`` are the same either way).
        self._first: dict[str, Quantity] = {}
        self._repeats: dict[str, list[Quantity]] = {}
        self._repeat_refs: dict[str, list[str]] = {}
        self._raw: dict[str, list[object]] = {}  # the unusable values as sent, by key
        self._list = _Listed(self.out.skips)

    def add(self, items: Iterable[SourceItem]) -> None:
        """Judge ``items``; their keys are compared with every item added before."""
        counts, negative = self.out.counts, self.negative
        first, repeats, firsts = self._first, self._repeats, self.out.firsts
        source = clamped = 0
        for item in items:
            source += 1
            # The everyday key and figure (text, a small whole number) are judged
            # inline: a call per item is a third of a quiet minute's CPU at 100k.
            key = item.key
            key = (key.strip() or None) if type(key) is str else normalize_key(key)
            if key is None:
                counts.skip(SKIP_NO_KEY)
                self._list(Skip("", SKIP_NO_KEY, source_ref=item.ref, source_name=item.name))
                continue
            raw = item.quantity
            if type(raw) is int and 0 <= raw < PLAIN_LIMIT:
                judged = PLAIN[raw]
            else:
                judged = judge_quantity(raw, negative)
                if judged.clamped:
                    clamped += 1
                if judged.value is None:
                    self._raw.setdefault(key, []).append(raw)
            seen = first.get(key)
            if seen is None:
                first[key] = judged
                firsts[key] = item
            elif key in repeats:
                repeats[key].append(judged)
                self._repeat_refs[key].append(item.ref)
            else:
                repeats[key] = [seen, judged]
                self._repeat_refs[key] = [firsts[key].ref, item.ref]
        counts.source += source
        self.out.clamped += clamped

    def result(self) -> SourceStock:
        """One value per key: repeats that agree are fine; any disagreement makes the
        key ambiguous, including a repeat whose value is unusable (we cannot tell which
        is right)."""
        out, repeats = self.out, self._repeats
        counts, values, listed = out.counts, out.values, self._list
        for key, judged in self._first.items():
            judged_all = repeats.get(key)
            if judged_all is None:
                if judged.value is None:
                    reason = judged.skip or "invalid"
                    counts.skip(reason)
                    out.invalid.add(key)
                    listed(Skip(key, reason, out.firsts[key].ref, detail=self._sent(key),
                                source_name=out.firsts[key].name))
                else:
                    values[key] = judged.value
                continue
            valid = {q.value for q in judged_all if q.value is not None}
            invalid = [q for q in judged_all if q.value is None]
            if not valid:
                for q in invalid:
                    counts.skip(q.skip or "invalid")
                out.invalid.add(key)
                listed(Skip(key, invalid[0].skip or "invalid", self._refs_of(key),
                            detail=self._sent(key), source_name=out.firsts[key].name))
            elif len(valid) > 1 or invalid:
                out.ambiguous.add(key)
                counts.skip(SKIP_AMBIGUOUS_SOURCE, len(judged_all))
                shown = sorted(valid)
                sent = [*map(str, shown), *(["unusable: " + self._sent(key)] if invalid else [])]
                listed(Skip(key, SKIP_AMBIGUOUS_SOURCE, self._refs_of(key),
                            detail=f"{len(judged_all)} items disagree: " + ", ".join(sent),
                            source_name=out.firsts[key].name))
            else:
                values[key] = valid.pop()
                out.duplicates += len(judged_all) - 1
        return out

    def _refs_of(self, key: str) -> str:
        return ", ".join(self._repeat_refs.get(key) or [self.out.firsts[key].ref])

    def _sent(self, key: str) -> str:
        """The unusable values the source sent for ``key``, as text."""
        return ", ".join("null" if v is None else repr(v) for v in self._raw.get(key, []))


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
    plan = Plan(counts=reduced.counts, skips=list(reduced.skips))
    counts = plan.counts
    listed = _Listed(plan.skips)
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
            listed(Skip("", UNMATCHED_TARGET_NO_KEY, variant_id=variant.id,
                        product_id=variant.product_id))
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
    firsts = reduced.firsts
    none = SourceItem(None, None, "")
    for key, value in reduced.values.items():
        found = by_key.get(key)
        if found is None:
            not_in_target += 1
            item = firsts.get(key, none)
            listed(Skip(key, SKIP_NOT_IN_TARGET, item.ref, source_name=item.name))
            continue
        if key in shared:
            conflicts.add(key)
            duplicate_target += 1
            sharing = shared[key]
            item = firsts.get(key, none)
            listed(Skip(key, SKIP_DUPLICATE_TARGET, item.ref,
                        variant_id=sharing[0].id, product_id=sharing[0].product_id,
                        detail="variants " + ", ".join(str(v.id) for v in sharing),
                        source_name=item.name))
            continue
        matched += 1
        current = found.current
        if current is None or current != value:
            writes.append(PlannedWrite(found.id, key, current, value))
    counts.matched += matched
    # Variants whose key the source does not have at all (a key it has with a
    # bad value, or disagreeing, is a skip of its own above).
    not_in_source = 0
    values, ambiguous, invalid = reduced.values, reduced.ambiguous, reduced.invalid
    for key, variant in by_key.items():
        if key in values or key in ambiguous or key in invalid:
            continue
        holders: list[TargetVariant] = shared.get(key) or [variant]
        for held_by in holders:
            not_in_source += 1
            listed(Skip(key, UNMATCHED_NOT_IN_SOURCE, variant_id=held_by.id,
                        product_id=held_by.product_id))
    counts.unmatch(SKIP_NOT_IN_TARGET, not_in_target)
    counts.unmatch(UNMATCHED_NOT_IN_SOURCE, not_in_source)
    counts.unmatch(UNMATCHED_TARGET_NO_KEY, without_key)
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
