"""The keys behind every skip and unmatched count, as the plan lists them."""

from __future__ import annotations

import pytest

from stocksyncd.integrations.stock import plan as plan_mod
from stocksyncd.integrations.stock.model import SourceItem
from stocksyncd.integrations.stock.plan import PlannedWrite, Skip, TargetVariant, plan_stock
from stocksyncd.integrations.stock.report import partial_message, skip_rows


def item(key: object, qty: object, ref: str, name: str = "") -> SourceItem:
    return SourceItem(key=key, quantity=qty, ref=ref, name=name)  # type: ignore[arg-type]


def test_every_reason_names_its_keys_with_what_is_known() -> None:
    source = [
        item("A", 1, "m1"), item("A", 2, "m2"),    # disagree: ambiguous
        item("B", "lots", "m3"),                   # non-numeric
        item(None, 4, "m4"),                       # no key
        item("C", 5, "m5", "Cable 2 m"),           # no variant has C
        item("D", 1, "m6"),                        # two variants have D
        item("E", 3, "m7"),                        # matched
    ]
    targets = [
        TargetVariant(1, "A", 0.0, 10), TargetVariant(2, "B", 0.0, 10),
        TargetVariant(3, "D", 0.0, 11), TargetVariant(4, "D", 0.0, 12),
        TargetVariant(5, "E", 3.0, 13), TargetVariant(6, "Z", 1.0, 14),
        TargetVariant(7, None, 1.0, 15),
    ]
    plan = plan_stock(source, targets, zero_guard=1.0)
    got = {(s.reason, s.key): s for s in plan.skips}
    assert got == {
        ("ambiguous_source", "A"): Skip("A", "ambiguous_source", "m1, m2",
                                        detail="2 items disagree: 1, 2"),
        ("non_numeric", "B"): Skip("B", "non_numeric", "m3", detail="'lots'"),
        ("no_key", ""): Skip("", "no_key", "m4"),
        ("not_in_target", "C"): Skip("C", "not_in_target", "m5", source_name="Cable 2 m"),
        ("duplicate_target", "D"): Skip("D", "duplicate_target", "m6", 3, 11,
                                        detail="variants 3, 4"),
        ("not_in_source", "Z"): Skip("Z", "not_in_source", variant_id=6, product_id=14),
        ("target_no_key", ""): Skip("", "target_no_key", variant_id=7, product_id=15),
    }
    c = plan.counts
    assert c.skipped_by_reason == {"ambiguous_source": 2, "non_numeric": 1, "no_key": 1,
                                   "duplicate_target": 1}
    assert c.unmatched_by_reason == {"not_in_target": 1, "not_in_source": 1, "target_no_key": 1}
    # A key the source has with a bad value is not also "not in source".
    assert ("not_in_source", "A") not in got and ("not_in_source", "B") not in got


def test_each_reason_lists_at_most_max_listed_but_counts_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(plan_mod, "MAX_LISTED", 3)
    plan = plan_stock([item(f"K{i}", 1, str(i)) for i in range(10)], [], zero_guard=1.0)
    assert [s.key for s in plan.skips] == ["K0", "K1", "K2"]
    assert plan.counts.unmatched == 10


def test_skip_rows_link_the_product_in_the_shop_admin() -> None:
    rows = skip_rows([Skip("D", "duplicate_target", "m6", 3, 11), Skip("C", "not_in_target")],
                     "https://shop.myinsales.ru/")
    assert rows[0]["admin_url"] == "https://shop.myinsales.ru/admin2/products/11"
    assert rows[1]["admin_url"] == "" and rows[1]["source_ref"] == ""


def test_partial_message_says_how_much_went_through_first() -> None:
    writes = [PlannedWrite(i, f"K{i}", 0.0, 1) for i in range(10)]
    assert partial_message(9, writes, {4: "variant not found"}) == (
        "9 of 10 written; 1 refused: K4 (variant 4): variant not found")
    many = partial_message(5, writes, {i: "no" for i in range(5)})
    assert many.startswith("5 of 10 written; 5 refused: K0 (variant 0): no;")
    assert many.endswith("; and 2 more")


def test_the_stored_index_keeps_product_titles_and_reads_older_copies() -> None:
    from stocksyncd.clients.insales import Product, Variant
    from stocksyncd.integrations.stock.stored import _products_from_json, _products_json

    product = Product(10, "t", (Variant(1, 10, "A", None, 5.0),), "Болт М6")
    stored = _products_json([product])
    restored = _products_from_json(stored)
    assert restored[10] == product and restored[10].title == "Болт М6"
    # A piece stored before titles were kept: three elements per product.
    older = _products_from_json([entry[:3] for entry in stored])
    assert older[10].title == ""
    assert older[10].variants == product.variants
