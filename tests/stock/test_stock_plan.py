"""Pure planning rules: keys, values, duplicates, ambiguity, changes, the zero guard."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal

import pytest

from stocksyncd.integrations.stock.apply import batches
from stocksyncd.integrations.stock.keys import (
    Unusable,
    judge_quantity,
    normalize_key,
    show_quantity,
)
from stocksyncd.integrations.stock.model import SourceItem
from stocksyncd.integrations.stock.plan import (
    PlannedWrite,
    TargetVariant,
    plan_stock,
    reduce_source,
    zero_guard_message,
)


@pytest.mark.parametrize(("raw", "expected"), [
    ("ABC-1", "ABC-1"),
    ("  ABC-1\t", "ABC-1"),
    ("abc-1", "abc-1"),  # case as-is
    ("0046000123", "0046000123"),  # leading zeros kept
    (4.6e12, "4600000000000"),
    (4600000000000, "4600000000000"),
    (Decimal("4600000000000"), "4600000000000"),
    (12.5, "12.5"),
    ("4.6e12", "4.6e12"),  # text stays text
    ("", None),
    ("   ", None),
    (None, None),
    (True, None),
    (float("nan"), None),
])
def test_normalize_key(raw: object, expected: str | None) -> None:
    assert normalize_key(raw) == expected


@pytest.mark.parametrize(("raw", "policy", "value", "skip"), [
    (5, "clamp", 5, None),
    (0, "clamp", 0, None),
    (5.0, "clamp", 5, None),
    (2.7, "clamp", 2, None),  # floored
    ("3", "clamp", 3, None),
    (" 3.9 ", "clamp", 3, None),
    (Decimal("4.5"), "clamp", 4, None),
    (-3, "clamp", 0, None),
    (-0.5, "clamp", 0, None),
    (-3, "skip", None, "negative"),
    (None, "clamp", None, "null"),
    ("abc", "clamp", None, "non_numeric"),
    ("1,5", "clamp", None, "non_numeric"),
    ("", "clamp", None, "non_numeric"),
    (True, "clamp", None, "non_numeric"),
    (float("nan"), "clamp", None, "non_numeric"),
    (float("inf"), "clamp", None, "non_numeric"),
    ("Infinity", "clamp", None, "non_numeric"),
    ([1], "clamp", None, "non_numeric"),
    # Forms Decimal() reads that are not the number the sender meant (issue: "1_000" -> 1000).
    ("1_000", "clamp", None, "non_numeric"),
    ("\u0661\u0662", "clamp", None, "non_numeric"),  # Arabic-Indic "12"
    ("\uff17", "clamp", None, "non_numeric"),  # a full-width 7
    ("1e3", "clamp", None, "non_numeric"),
    ("0x10", "clamp", None, "non_numeric"),
    (".5", "clamp", None, "non_numeric"),
    ("5.", "clamp", None, "non_numeric"),
    ("+7", "clamp", 7, None),
    ("-2.50", "skip", None, "negative"),
    # Bounded: stock is below 10^9 (1e300 once failed every run with an encoder error).
    (1e300, "clamp", None, "out_of_range"),
    (-1e300, "clamp", None, "out_of_range"),
    (10**9, "clamp", None, "out_of_range"),
    (10**9 - 1, "clamp", 10**9 - 1, None),
    (999_999_999.9, "clamp", 999_999_999, None),
    (2**64, "clamp", None, "out_of_range"),
    ("1" * 5000, "clamp", None, "out_of_range"),
    (Decimal("1e300"), "clamp", None, "out_of_range"),
    (Unusable("unattributed"), "clamp", None, "unattributed"),
])
def test_judge_quantity(raw: object, policy: str, value: int | None, skip: str | None) -> None:
    judged = judge_quantity(raw, policy)  # type: ignore[arg-type]
    assert (judged.value, judged.skip) == (value, skip)


def test_show_quantity() -> None:
    assert show_quantity(None) is None
    assert show_quantity(7.0) == "7"
    assert show_quantity(7.5) == "7.5"


def item(key: object, qty: object, ref: str = "") -> SourceItem:
    return SourceItem(key=key, quantity=qty, ref=ref or f"src-{key}")  # type: ignore[arg-type]


def test_reduce_source_duplicates_and_ambiguity() -> None:
    reduced = reduce_source([
        item("A", 5), item("A", 5.0),           # agreeing repeat: fine
        item("B", 1), item("B", 2),             # disagreeing: ambiguous
        item("C", 1), item("C", None),          # repeat with unusable value: ambiguous
        item("D", -1), item("D", 0),            # both mean 0 after clamping: fine
        item("E", None), item("E", "x"),        # only bad values: skipped by reason
        item(None, 3), item(" ", 3),            # no key
    ], "clamp")
    assert reduced.values == {"A": 5, "D": 0}
    assert reduced.ambiguous == {"B", "C"}
    assert reduced.counts.source == 12
    assert reduced.counts.skipped_by_reason == {
        "ambiguous_source": 4, "null": 1, "non_numeric": 1, "no_key": 2}
    assert reduced.duplicates == 2
    assert reduced.clamped == 1


def test_plan_writes_only_changed_matched_unique() -> None:
    targets = [
        TargetVariant(1, "A", 5.0),    # unchanged
        TargetVariant(2, "B", 1.0),    # changes to 9
        TargetVariant(3, "C", None),   # untracked: gets a figure
        TargetVariant(4, "D", 2.0),    # duplicate on target
        TargetVariant(5, "D", 2.0),
        TargetVariant(6, None, 4.0),   # no key: never takes part
        TargetVariant(7, "F", 3.5),    # fractional on target: differs from 3
    ]
    plan = plan_stock([item("A", 5), item("B", 9), item("C", 0), item("D", 7), item("E", 1),
                       item("F", 3)], targets, zero_guard=1.0)
    assert plan.writes == [PlannedWrite(2, "B", 1.0, 9), PlannedWrite(3, "C", None, 0),
                           PlannedWrite(7, "F", 3.5, 3)]
    c = plan.counts
    assert (c.source, c.target, c.matched, c.changed, c.written) == (6, 7, 4, 3, 0)
    assert c.skipped_by_reason == {"duplicate_target": 1}
    assert c.skipped == 1
    # Keys on one side only are not "skipped": nothing is wrong with them.
    assert c.unmatched_by_reason == {"not_in_target": 1, "target_no_key": 1}
    assert c.unmatched == 2
    assert plan.conflicts == ["D"]
    assert plan.abort is None
    assert plan.details["target_without_key"] == 1
    assert plan.details["target_duplicate_keys"] == 1


def test_ambiguous_source_is_a_conflict_and_not_written() -> None:
    plan = plan_stock([item("A", 1), item("A", 2)], [TargetVariant(1, "A", 0.0)])
    assert plan.writes == [] and plan.conflicts == ["A"]


def test_negative_skip_policy() -> None:
    plan = plan_stock([item("A", -2)], [TargetVariant(1, "A", 3.0)], negative="skip")
    assert plan.writes == [] and plan.counts.skipped_by_reason == {"negative": 1}
    plan = plan_stock([item("A", -2)], [TargetVariant(1, "A", 3.0)], negative="clamp",
                      zero_guard=1.0)
    assert plan.writes == [PlannedWrite(1, "A", 3.0, 0)]


@pytest.mark.parametrize(("zeroing", "matched", "share", "trips"), [
    (0, 0, 0.5, False),
    (5, 10, 0.5, False),   # exactly the share: allowed
    (6, 10, 0.5, True),
    (1, 1, 0.5, True),
    (1, 100, 0.0, True),
    (100, 100, 1.0, False),
])
def test_zero_guard_threshold(zeroing: int, matched: int, share: float, trips: bool) -> None:
    assert (zero_guard_message(zeroing, matched, share) is not None) is trips


def test_zero_guard_counts_only_variants_that_were_not_zero() -> None:
    targets = [TargetVariant(i, f"K{i}", 0.0 if i < 6 else 5.0) for i in range(10)]
    # All ten go to 0, but six already were: 4 of 10 drop, under 50%.
    plan = plan_stock([item(f"K{i}", 0) for i in range(10)], targets)
    assert plan.abort is None and len(plan.writes) == 4
    targets = [TargetVariant(i, f"K{i}", 5.0) for i in range(10)]
    plan = plan_stock([item(f"K{i}", 0) for i in range(10)], targets)
    assert plan.abort is not None and "10 of 10" in plan.abort
    assert plan.details["zeroing"] == 10


def test_keys_match_after_normalisation() -> None:
    plan = plan_stock([item(4.6e12, 3), item(" X ", 1)],
                      [TargetVariant(1, "4600000000000", 1.0), TargetVariant(2, "X", 0.0)])
    assert {w.variant_id for w in plan.writes} == {1, 2}


def test_batches_of_at_most_100() -> None:
    writes = [PlannedWrite(i, str(i), 0.0, 1) for i in range(250)]
    sizes = [len(b) for b in batches(writes)]
    assert sizes == [100, 100, 50]
    assert batches([]) == []


def test_fast_paths_agree_with_the_decimal_rules() -> None:
    import random

    rng = random.Random(3)
    floats = [rng.uniform(-1e6, 1e6) for _ in range(2000)]
    floats += [0.0, -0.0, 2.9999999999999996, 1e300, -1e-300, 4.6e12, 0.1 + 0.2, 2.0**53 + 2]
    for x in floats:
        # Text is plain decimal only: compare with the positional form of the float.
        text = format(Decimal(repr(x)), "f")
        for policy in ("clamp", "skip"):
            assert judge_quantity(x, policy) == judge_quantity(text, policy), x
    for n in [*range(-5, 1030), 10**20, -(10**20)]:
        for policy in ("clamp", "skip"):
            assert judge_quantity(n, policy) == judge_quantity(str(n), policy), n
    assert judge_quantity(True).skip == judge_quantity(False).skip == "non_numeric"
    for key in ["  A ", "A", "", "   ", "\tB\n"]:
        assert normalize_key(key) == (key.strip() or None)


def test_target_view_normalises_keys_as_the_planner_does() -> None:
    from stocksyncd.clients.insales import Product, Variant
    from stocksyncd.integrations.stock.index import InSalesIndex
    from stocksyncd.integrations.stock.pipeline import target_variants

    variants = (Variant(1, 9, " A ", "111", 3.0, {0: 1.0}), Variant(2, 9, "", None, None),
                Variant(3, 9, "B", " ", 2.0))
    index = InSalesIndex(products={9: Product(9, "", variants)})
    assert [(t.id, t.key, t.current) for t in target_variants(index, "sku", None)] == [
        (1, "A", 3.0), (2, None, None), (3, "B", 2.0)]
    assert [(t.id, t.key, t.current) for t in target_variants(index, "barcode", 0)] == [
        (1, "111", 1.0), (2, None, None), (3, None, None)]


def test_target_rows_are_kept_per_product_and_follow_the_index() -> None:
    from stocksyncd.clients.insales import Product, Variant
    from stocksyncd.integrations.stock.index import InSalesIndex
    from stocksyncd.integrations.stock.pending import Pending
    from stocksyncd.integrations.stock.pipeline import TargetRows

    first = Product(1, "", (Variant(10, 1, "A", None, 3.0),))
    second = Product(2, "", (Variant(20, 2, "B", None, 4.0),))
    rows = TargetRows("sku", None)
    index = InSalesIndex(products={1: first, 2: second})
    assert [(t.id, t.key, t.current) for t in rows.of(index)] == [(10, "A", 3.0), (20, "B", 4.0)]
    # A product read again (another copy) and a new one are made afresh; a
    # written figure InSales has not shown yet stands for the shop's.
    index.products[1] = first._replace(variants=(Variant(10, 1, "A2", None, 5.0),))
    index.products[3] = Product(3, "", (Variant(30, 3, "C", None, None),))
    index.pending[20] = Pending(20, 2, "B", 9, 0.0, "")
    assert [(t.id, t.key, t.current) for t in rows.of(index)] == [
        (10, "A2", 5.0), (20, "B", 9.0), (30, "C", None)]


def test_reducing_the_source_in_parts_gives_the_same_stock() -> None:
    from stocksyncd.integrations.stock.plan import SourceReducer

    rng = random.Random(5)
    items = [SourceItem(rng.choice(["A", "B", " C", "", None, f"K{i}"]),
                        rng.choice([1, 2, -3, None, "x", 2.5]), f"r{i}") for i in range(400)]
    whole = reduce_source(items, "clamp")
    for cuts in ([0, 400], [0, 1, 2, 399, 400], sorted({0, 400, *rng.sample(range(400), 7)})):
        reducer = SourceReducer("clamp")
        for a, b in itertools.pairwise(cuts):
            reducer.add(items[a:b])
        assert reducer.result() == whole


def test_the_reducers_inline_judgement_agrees_with_the_functions() -> None:
    # The reducer judges text keys and small whole numbers inline; every other
    # value goes through normalize_key and judge_quantity. Each item alone must
    # come out as the functions say, at the edges of the inline path too.
    keys: list[object] = ["A", " A ", "", "  ", None, True, 7, 4.6e12, Decimal("12")]
    figures: list[object] = [-1, 0, 1, 1023, 1024, 10**9, True, False, 1.0, 2.7, -0.5,
                             None, "5", Decimal("3")]
    for key, figure in itertools.product(keys, figures):
        for policy in ("clamp", "skip"):
            stock = reduce_source([SourceItem(key, figure, "r")], policy)  # type: ignore[arg-type]
            norm, judged = normalize_key(key), judge_quantity(figure, policy)
            if norm is None or judged.value is None:
                assert stock.values == {}, (key, figure)
            else:
                assert stock.values == {norm: judged.value}, (key, figure)
            assert stock.clamped == int(judged.clamped and norm is not None), (key, figure)
            assert (norm in stock.invalid) == (norm is not None and judged.value is None)
