"""The InSales index: watermark arithmetic, when to scan fully, pending writes, the stored copy."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from stock_fakes import DictState

from stocksyncd.clients.insales import Product, Variant
from stocksyncd.integrations.stock.index import (
    InSalesIndex,
    ScanResult,
    latest,
    needs_full,
    window_start,
)
from stocksyncd.integrations.stock.pending import Pending, Verdicts
from stocksyncd.integrations.stock.stored import INDEX_SCOPE, StoredIndex


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


T0 = "2026-01-01T00:00:00.000+00:00"
T1 = "2026-01-01T00:01:00.000+00:00"


def test_merge_replaces_products_drops_deleted_ones_and_moves_watermark() -> None:
    index = InSalesIndex()
    v1 = Variant(1, 10, "A", "111", 5.0, {0: 5.0})
    v2 = Variant(2, 10, "B", "222", 1.0)
    index.merge(ScanResult({10: product(10, T0, v1, v2), 11: product(11, T0)}, 1, [],
                           server_time="2026-01-01T00:05:00.000+00:00"), Verdicts())
    assert index.watermark == "2026-01-01T00:05:00.000+00:00"
    # The product now has one variant with a new barcode: the old variant disappears;
    # product 11 went to the trash.
    v1b = Variant(1, 10, "A", "999", 5.0)
    index.merge(ScanResult({10: product(10, "2026-01-01T00:06:00.000+00:00", v1b)}, 1, [],
                           deleted={11}), Verdicts())
    assert index.products == {10: product(10, "2026-01-01T00:06:00.000+00:00", v1b)}
    assert index.watermark == "2026-01-01T00:06:00.000+00:00"
    assert index.dirty == {10, 11}


def test_watermark_is_the_scan_start_not_the_newest_updated_at() -> None:
    index = InSalesIndex()
    index.merge(ScanResult({10: product(10, "2026-01-01T00:09:00.000+00:00")}, 1, [],
                           server_time="2026-01-01T00:05:00.000+00:00"), Verdicts())
    # A product stamped after the scan began (changed during the scan) does not move it.
    assert index.watermark == "2026-01-01T00:05:00.000+00:00"
    assert index.since(60) == "2026-01-01T00:04:00.000+00:00"


def _pending(vid: int, pid: int, value: int, *, base: str = T0, sent_at: float = 100.0,
             attempt: int = 1) -> Pending:
    return Pending(vid, pid, f"K{vid}", value, sent_at, base, attempt)


def test_a_read_decides_pending_writes() -> None:
    index = InSalesIndex(field="quantity")
    index.pending = {1: _pending(1, 10, 7), 2: _pending(2, 10, 8), 3: _pending(3, 20, 9),
                     4: _pending(4, 30, 4), 5: _pending(5, 40, 5)}
    verdicts = Verdicts()
    index.take([
        product(10, T0, Variant(1, 10, "A", None, 7.0), Variant(2, 10, "B", None, 1.0)),
        product(20, T1, Variant(3, 20, "C", None, 2.0)),  # changed since: someone else's 2
        product(30, T1),  # the variant was removed
    ], verdicts)
    index.remove(40, verdicts)
    assert [p.variant_id for p in verdicts.confirmed] == [1]
    assert [(p.variant_id, shown) for p, shown in verdicts.superseded] == [(3, 2.0)]
    assert sorted(p.variant_id for p in verdicts.deleted) == [4, 5]
    # Unchanged since the write and not showing it yet: InSales' queue has not run.
    assert list(index.pending) == [2] and index.pending_dirty


def test_a_warehouse_figure_confirms_a_warehouse_write() -> None:
    index = InSalesIndex(field="quantity_at_warehouse1")
    index.pending = {1: _pending(1, 10, 7)}
    verdicts = Verdicts()
    index.take([product(10, T0, Variant(1, 10, "A", None, 9.0, {0: 1.0, 1: 7.0}))], verdicts)
    assert [p.variant_id for p in verdicts.confirmed] == [1] and index.pending == {}


def test_overdue_writes_are_written_again_once_then_reported() -> None:
    index = InSalesIndex(field="quantity")
    index.pending = {1: _pending(1, 10, 7, sent_at=100.0),
                     2: _pending(2, 10, 8, sent_at=100.0, attempt=2),
                     3: _pending(3, 10, 9, sent_at=650.0)}
    overdue = index.overdue(700.0, 600.0)
    assert [p.variant_id for p in overdue] == [1, 2]
    verdicts = Verdicts()
    index.expire(overdue, verdicts)
    assert [p.variant_id for p in verdicts.rewrite] == [1]
    assert [p.variant_id for p in verdicts.unconfirmed] == [2]
    assert list(index.pending) == [3]


def test_a_fresh_index_judges_the_pending_writes_it_adopts() -> None:
    fresh = InSalesIndex(field="quantity",
                         products={10: product(10, T0, Variant(1, 10, "A", None, 7.0))})
    verdicts = Verdicts()
    fresh.adopt({1: _pending(1, 10, 7), 2: _pending(2, 99, 1)}, verdicts)
    assert [p.variant_id for p in verdicts.confirmed] == [1]
    assert [p.variant_id for p in verdicts.deleted] == [2]  # its product is gone
    assert fresh.pending == {}


def _index(n: int) -> InSalesIndex:
    index = InSalesIndex(watermark=T0, full_at=5.0, field="quantity")
    for pid in range(1, n + 1):
        index.products[pid] = product(pid, T0, Variant(pid * 10, pid, f"S{pid}", None, 1.0,
                                                       {2: 3.0}))
    return index


def _bytes(state: DictState, before: dict[tuple[str, str], Any]) -> int:
    return sum(len(orjson.dumps(v)) for k, v in state.values.items() if before.get(k) is not v)


async def test_the_stored_copy_round_trips_and_a_quiet_run_stores_the_header_only() -> None:
    state = DictState()
    store = StoredIndex(state, "main/job")
    index = _index(600)
    index.pending = {10: _pending(10, 1, 4)}
    index.pending_dirty = True
    await store.save(index, full=True)
    assert index.chunks == 3 and index.copy is not None
    header = await StoredIndex(state, "main/job").header()
    assert StoredIndex.holds(header, index)
    loaded = await StoredIndex(state, "main/job").load(header)
    assert loaded is not None
    assert loaded.products == index.products and loaded.pending == index.pending
    assert (loaded.watermark, loaded.full_at, loaded.field) == (T0, 5.0, "quantity")
    # Quiet: only the header (the watermark moved).
    before, writes = dict(state.values), state.writes
    index.watermark = T1
    await store.save(index, full=False)
    assert state.writes == writes + 1 and _bytes(state, before) < 300
    # One product read: its piece and the header (twice: unnamed first).
    before, writes = dict(state.values), state.writes
    index.take([product(7, T1, Variant(70, 7, "S7", None, 2.0))], Verdicts())
    await store.save(index, full=False)
    assert state.writes == writes + 3
    assert [k for k in state.values if before.get(k) is not state.values[k]] == [
        (INDEX_SCOPE, "main/job"), (INDEX_SCOPE, "main/job#1")]
    loaded = await store.load(await store.header())
    assert loaded is not None and loaded.products == index.products


async def test_another_replicas_copy_is_noticed_and_a_cut_off_save_leaves_no_copy() -> None:
    state = DictState()
    mine = _index(10)
    await StoredIndex(state, "k").save(mine, full=True)
    theirs = await StoredIndex(state, "k").load(await StoredIndex(state, "k").header())
    assert theirs is not None
    theirs.watermark = T1
    await StoredIndex(state, "k").save(theirs, full=False)
    header = await StoredIndex(state, "k").header()
    assert not StoredIndex.holds(header, mine) and StoredIndex.holds(header, theirs)

    class CutOff(DictState):
        async def set_value(self, scope: str, key: str, value: Any) -> None:
            if key.endswith("#0"):
                raise OSError("killed")
            await super().set_value(scope, key, value)

    cut = CutOff()
    cut.values = dict(state.values)
    theirs.take([product(1, T1)], Verdicts())
    with pytest.raises(OSError):
        await StoredIndex(cut, "k").save(theirs, full=False)
    store = StoredIndex(cut, "k")
    assert await store.load(await store.header()) is None  # the next run scans in full


@pytest.mark.parametrize("stored", [
    None, [], {"format": 1}, {"format": 2, "copy": None, "pieces": 1},
    {"format": 2, "copy": "c", "pieces": 2},  # a piece missing
])
async def test_damaged_stored_index_means_full_scan(stored: object) -> None:
    state = DictState()
    state.values[(INDEX_SCOPE, "k")] = stored
    state.values[(INDEX_SCOPE, "k#0")] = []
    store = StoredIndex(state, "k")
    assert await store.load(await store.header()) is None
