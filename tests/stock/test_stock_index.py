"""The InSales index: watermark arithmetic, when to scan fully, persistence."""

from __future__ import annotations

import pytest

from stocksyncd.clients.insales import Product, Variant
from stocksyncd.integrations.stock.index import (
    IndexJournal,
    InSalesIndex,
    JournalEntry,
    ScanResult,
    latest,
    needs_full,
    window_start,
)


def test_latest_compares_instants_across_offsets() -> None:
    a = "2026-01-01T12:00:00.000+03:00"  # 09:00 UTC
    b = "2026-01-01T10:00:00.000+00:00"  # 10:00 UTC
    assert latest([a, b]) == b
    assert latest(["garbage", a]) == a
    assert latest([], start=a) == a
    assert latest(["2026-01-01T08:00:00.000+00:00"], start=a) == a


def test_window_start_subtracts_overlap_keeping_offset() -> None:
    assert window_start("2026-01-01T12:00:00.000+03:00", 120) == "2026-01-01T11:58:00.000+03:00"
    assert window_start("not a time", 120) is None
    assert window_start("2026-01-01T12:00:00", 120) is None  # no offset: unusable


@pytest.mark.parametrize(("index", "now", "reason"), [
    (None, 100.0, "no index yet"),
    (InSalesIndex(watermark="w", full_at=100.0, stale=True), 110.0, "index marked stale"),
    (InSalesIndex(watermark=None, full_at=100.0), 110.0, "index incomplete"),
    (InSalesIndex(watermark="w", full_at=100.0), 50.0, "wall clock moved back"),
    (InSalesIndex(watermark="w", full_at=100.0), 3700.0, "full refresh due"),
    (InSalesIndex(watermark="w", full_at=100.0), 3699.0, None),
])
def test_needs_full(index: InSalesIndex | None, now: float, reason: str | None) -> None:
    assert needs_full(index, now, 3600.0) == reason


def test_an_index_made_for_another_stock_field_is_rebuilt() -> None:
    index = InSalesIndex(watermark="w", full_at=100.0, field="quantity_at_warehouse1")
    assert needs_full(index, 110.0, 3600.0, "quantity_at_warehouse1") is None
    assert needs_full(index, 110.0, 3600.0, "quantity") == "index made for another stock field"
    assert needs_full(InSalesIndex(watermark="w", full_at=100.0), 110.0, 3600.0,
                      "quantity") == "index made for another stock field"


def product(pid: int, updated: str, *variants: Variant) -> Product:
    return Product(id=pid, updated_at=updated, variants=variants)


def test_merge_replaces_products_and_moves_watermark() -> None:
    index = InSalesIndex()
    v1 = Variant(1, 10, "A", "111", 5.0, {0: 5.0})
    v2 = Variant(2, 10, "B", "222", 1.0)
    index.merge(ScanResult({10: product(10, "2026-01-01T00:00:00.000+00:00", v1, v2)}, 1, [],
                           server_time="2026-01-01T00:05:00.000+00:00"))
    assert index.watermark == "2026-01-01T00:05:00.000+00:00"
    # The product now has one variant with a new barcode: the old variant disappears.
    v1b = Variant(1, 10, "A", "999", 5.0)
    index.merge(ScanResult({10: product(10, "2026-01-01T00:06:00.000+00:00", v1b)}, 1, []))
    assert [(v.id, v.barcode) for v in index.variants()] == [(1, "999")]
    assert index.watermark == "2026-01-01T00:06:00.000+00:00"


def test_record_writes_and_round_trip() -> None:
    index = InSalesIndex(watermark="2026-01-01T00:00:00.000+00:00", full_at=5.0)
    index.merge(ScanResult({10: product(10, "2026-01-01T00:00:00.000+00:00",
                                        Variant(1, 10, "A", "111", 5.0, {0: 2.0, 1: 3.0}),
                                        Variant(2, 10, None, None, None))}, 1, []))
    index.record_writes([(1, 7)], "quantity")
    index.record_writes([(1, 9)], "quantity_at_warehouse1")
    (v1, _) = index.variants()
    assert v1.quantity == 7.0 and v1.warehouses == {0: 2.0, 1: 9.0}
    restored = InSalesIndex.from_json(index.to_json())
    assert restored is not None
    assert restored.products == index.products
    assert (restored.watermark, restored.full_at, restored.stale) == (
        index.watermark, 5.0, False)


@pytest.mark.parametrize("stored", [
    None, [], {"version": 0}, {"version": 1}, {"version": 1, "products": [[1, "x"]]},
    {"version": 1, "products": [["a", "x", []]]},
])
def test_damaged_stored_index_means_full_scan(stored: object) -> None:
    assert InSalesIndex.from_json(stored) is None


def test_watermark_is_the_scan_start_not_the_newest_updated_at() -> None:
    index = InSalesIndex()
    index.merge(ScanResult({10: product(10, "2026-01-01T00:09:00.000+00:00")}, 1, [],
                           server_time="2026-01-01T00:05:00.000+00:00"))
    # A product stamped after the scan began (changed during the scan) does not move it.
    assert index.watermark == "2026-01-01T00:05:00.000+00:00"
    assert index.since(60) == "2026-01-01T00:04:00.000+00:00"


def test_writes_move_the_next_window_past_them() -> None:
    index = InSalesIndex(watermark="2026-01-01T00:05:00.000+00:00")
    index.mark_written(None)  # no Date on the answers: our writes are read back
    assert index.since(60) == "2026-01-01T00:04:00.000+00:00"
    index.mark_written("2026-01-01T00:05:07.000+00:00")
    index.mark_written("2026-01-01T00:05:03.000+00:00")  # an earlier answer never moves it back
    assert index.written_until == "2026-01-01T00:05:08.000+00:00"
    assert index.since(60) == "2026-01-01T00:05:08.000+00:00"
    # Much later, the overlap before a newer scan decides again.
    index.merge(ScanResult({}, 1, [], server_time="2026-01-01T00:10:00.000+00:00"))
    assert index.since(60) == "2026-01-01T00:09:00.000+00:00"
    restored = InSalesIndex.from_json(index.to_json())
    assert restored is not None and restored.written_until == index.written_until


def _stored_with_one_variant(snapshot: str) -> InSalesIndex:
    index = InSalesIndex(watermark="2026-01-01T00:00:00.000+00:00", full_at=5.0,
                         snapshot=snapshot)
    index.products[10] = Product(10, "2026-01-01T00:00:00.000+00:00",
                                 (Variant(1, 10, "A", None, 5.0, {2: 1.0}),))
    return index


def _journal(snapshot: str, *entries: JournalEntry) -> dict[str, object]:
    return IndexJournal(snapshot, list(entries)).to_json()


def test_a_journal_redoes_its_runs_on_its_own_copy() -> None:
    stored = _stored_with_one_variant("s1").to_json()
    read = Product(11, "2026-01-01T00:02:00.000+00:00", (Variant(2, 11, "B", None, 3.0),))
    journal = _journal(
        "s1",
        JournalEntry([], [(1, 7)], "quantity_at_warehouse2",
                     watermark="2026-01-01T00:01:00.000+00:00",
                     written_until="2026-01-01T00:01:05.000+00:00"),
        # The next run read product 11 and wrote it; then nothing for a minute.
        JournalEntry([read], [(2, 4)], "quantity", watermark="2026-01-01T00:02:00.000+00:00",
                     written_until="2026-01-01T00:02:09.000+00:00"),
        JournalEntry([], [], "quantity", watermark="2026-01-01T00:03:00.000+00:00",
                     written_until="2026-01-01T00:02:09.000+00:00", stale=True),
    )
    index = InSalesIndex.load(stored, journal)
    assert index is not None
    assert {v.id: (v.quantity, v.warehouses) for v in index.variants()} == {
        1: (5.0, {2: 7.0}), 2: (4.0, {})}
    assert index.watermark == "2026-01-01T00:03:00.000+00:00"
    assert index.written_until == "2026-01-01T00:02:09.000+00:00" and index.stale
    assert len(index.journal) == 3


def test_an_entry_ends_where_its_run_ended() -> None:
    index = _stored_with_one_variant("s1")
    index.mark_written("2026-01-01T00:00:30.000+00:00")
    entry = index.entry([], [(1, 9)], "quantity")
    again = _stored_with_one_variant("s1")
    again.apply(JournalEntry.from_json(entry.to_json()))
    assert (again.watermark, again.written_until, again.stale) == (
        index.watermark, index.written_until, index.stale)
    assert next(again.variants()).quantity == 9.0


@pytest.mark.parametrize("journal", [
    None, [], {"version": 1}, {"version": 0, "snapshot": "s1", "entries": []},
    {"version": 1, "snapshot": "s1", "entries": [{"products": [], "writes": [[1, 7]],
                                                  "field": "price"}]},
    {"version": 1, "snapshot": "s1", "entries": [{"products": [], "writes": [[1]],
                                                  "field": "quantity"}]},
    {"version": 1, "snapshot": "s1", "entries": [{"products": [["x"]], "writes": [],
                                                  "field": "quantity"}]},
    {"version": 1, "snapshot": "s1", "entries": ["nonsense"]},
    {"version": 1, "snapshot": 5, "entries": []},
    # Written against another copy (an older one, or a save that never landed).
    {"version": 1, "snapshot": "s0", "entries": [{"products": [], "writes": [[1, 7]],
                                                  "field": "quantity", "stale": True}]},
])
def test_a_damaged_or_foreign_journal_is_ignored(journal: object) -> None:
    index = InSalesIndex.load(_stored_with_one_variant("s1").to_json(), journal)
    assert index is not None
    (variant,) = index.variants()
    assert variant.quantity == 5.0 and not index.stale and index.journal == []


def test_a_copy_without_a_name_takes_no_journal() -> None:
    # Stored before journals existed: no journal can belong to it.
    stored = _stored_with_one_variant("s1").to_json()
    del stored["snapshot"]
    index = InSalesIndex.load(stored, _journal("", JournalEntry([], [(1, 7)], "quantity")))
    assert index is not None and next(index.variants()).quantity == 5.0
