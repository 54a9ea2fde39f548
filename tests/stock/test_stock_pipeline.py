"""The stock pipeline end to end against the InSales simulator."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from typing import Any

import pytest
from stock_fakes import DictState, FakeResources, ListSource

from stocksyncd.clock import FakeClock
from stocksyncd.config import ShopConfig, StockSyncOptions
from stocksyncd.errors import TransientError, WriteFenced
from stocksyncd.integrations.base import MemoryWriteAhead, RunContext
from stocksyncd.integrations.stock.index import InSalesIndex
from stocksyncd.integrations.stock.model import SourceItem
from stocksyncd.integrations.stock.pipeline import StockSyncIntegration, build_stock_integration
from stocksyncd.integrations.stock.stored import INDEX_SCOPE, StoredIndex
from stocksyncd.simulators.insales import InSalesSimulator, LaterFault

Factory = Callable[..., StockSyncIntegration]
ContextFactory = Callable[..., RunContext]


def source_from_shop(sim: InSalesSimulator) -> ListSource:
    """Source items equal to the shop's current barcodes and quantities."""
    return ListSource([
        SourceItem(key=v["barcode"], quantity=v["quantity"], ref=str(v["id"]))
        for v in sim.variants() if v["barcode"] and v["quantity"] is not None
    ])


def set_source(source: ListSource, key: str, quantity: Any) -> None:
    source.items = [SourceItem(key=i.key, quantity=quantity if i.key == key else i.quantity,
                               ref=i.ref) for i in source.items]


def delete_before_page_5(monkeypatch: pytest.MonkeyPatch, integration: StockSyncIntegration,
                         sim: InSalesSimulator, product_id: int) -> None:
    """Delete ``product_id`` in the shop just before the full scan asks for page 5.

    With pages 1-4 read, page 5 then starts one product later: its first
    product is never listed by page number.
    """
    real = integration.client.products_page

    async def deleting(**kwargs: Any) -> Any:
        if kwargs.get("page") == 5 and product_id in sim.products:
            sim.delete_product(product_id)
        return await real(**kwargs)

    monkeypatch.setattr(integration.client, "products_page", deleting)


def put_count(sim: InSalesSimulator) -> int:
    return sim.count("PUT")


async def test_full_run_writes_exactly_the_changed_matched_unique_variants(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
    resources: FakeResources,
) -> None:
    a = sim.add_product([{"sku": "A", "barcode": "111", "quantity": 5},
                         {"sku": "B", "barcode": "222", "quantity": 1}])
    sim.add_product([{"sku": "C", "barcode": "333", "quantity": None},
                     {"sku": "D", "barcode": None, "quantity": 4}])
    sim.add_product([{"barcode": "444", "quantity": 2}])
    sim.add_product([{"barcode": "444", "quantity": 2}])  # duplicate on the shop
    va, vb = (v["id"] for v in sim.products[a]["variants"])
    source = ListSource([
        SourceItem("111", 5, "s1"),       # unchanged
        SourceItem("222", 8, "s2"),       # changed
        SourceItem("333", 3, "s3"),       # untracked -> 3
        SourceItem("444", 9, "s4"),       # duplicate barcode in the shop
        SourceItem("555", 1, "s5"),       # not in the shop
        SourceItem("666", None, "s6"),    # bad value
    ])
    integration = make_integration(source, zero_guard=1.0)
    result = await integration.run(make_ctx())
    assert result.status == "ok", result.errors
    c = result.counts
    assert (c.source, c.target, c.matched, c.changed, c.written) == (6, 6, 3, 2, 2)
    assert c.skipped_by_reason == {"duplicate_target": 1, "null": 1}
    assert c.unmatched_by_reason == {"not_in_target": 1, "target_no_key": 1}
    skips = {(s["reason"], s["key"]): s for s in result.details["skips"]}
    assert set(skips) == {("duplicate_target", "444"), ("null", "666"), ("not_in_target", "555"),
                          ("target_no_key", "")}
    assert skips["null", "666"]["source_ref"] == "s6"
    assert skips["not_in_target", "555"]["source_ref"] == "s5"
    dup_entry = skips["duplicate_target", "444"]
    assert dup_entry["source_ref"] == "s4" and dup_entry["detail"].startswith("variants ")
    assert dup_entry["admin_url"].endswith(f"/admin2/products/{dup_entry['product_id']}")
    assert dup_entry["product_title"] == "Product"  # the simulator's title
    assert result.conflicts == ["444"]
    assert sim.variant(vb)["quantity"] == 8 and sim.variant(va)["quantity"] == 5
    assert [(ch.key, ch.old, ch.new, ch.applied) for ch in result.changes] == [
        ("222", "1", "8", True), ("333", None, "3", True)]
    assert result.changes[0].ref == str(vb) and result.changes[0].field == "quantity"
    dup = [v for v in sim.variants() if v["barcode"] == "444"]
    assert all(v["quantity"] == 2 for v in dup)
    written_ids = {e["id"] for r in sim.requests if r.method == "PUT" for e in r.body["variants"]}
    assert {v["id"] for v in dup}.isdisjoint(written_ids)
    # count.json (no earlier index to tell the size), the one page of products,
    # the look in the trash for deletions, one group update.
    assert sim.count("GET", "count.json") == 1 and put_count(sim) == 1
    assert result.requests["insales"] == 4 and result.requests["testsource"] == 1
    # Audited before it went out, sent, and pending until a read shows it.
    assert [(c.key, c.status) for c in result.changes] == [("222", "sent"), ("333", "sent")]
    assert result.details["pending"] == 2
    assert result.details["index_mode"] == "full"
    assert resources.upstreams == ["insales:main"]


async def test_a_product_deleted_mid_scan_sends_the_run_round_again(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
    clock: FakeClock, state: DictState, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim.catalogue(3000, seed=11)
    clock.advance(3600)
    ids = sorted(sim.products)
    assert len(ids) > 1000  # five pages of 250
    first, shifted = ids[0], ids[1000]  # the first product of page 5, until page 1 loses one
    hidden = next(dict(v) for v in sim.products[shifted]["variants"]
                  if v["barcode"] and v["quantity"] is not None)
    seen = next(dict(v) for v in sim.products[ids[10]]["variants"]
                if v["barcode"] and v["quantity"] is not None)
    source = source_from_shop(sim)
    set_source(source, hidden["barcode"], hidden["quantity"] + 7)
    set_source(source, seen["barcode"], seen["quantity"] + 3)
    integration = make_integration(source)
    delete_before_page_5(monkeypatch, integration, sim, first)
    result = await integration.run(make_ctx())
    assert result.status == "ok", result.errors
    assert "1 product(s) deleted in InSales" in result.details["index_full_reason"]
    # The check was answered before anything was written: one pass, after the cursor walk.
    assert sim.variant(seen["id"])["quantity"] == seen["quantity"] + 3
    assert sim.variant(hidden["id"])["quantity"] == hidden["quantity"] + 7
    assert result.counts.written == 2 and put_count(sim) == 1
    first_put = next(n for n, r in enumerate(sim.requests) if r.method == "PUT")
    assert any(r.query.get("deleted") == "true" for r in sim.requests[:first_put])
    # The index stored is the cursor walk's: the shop as it is.
    store = StoredIndex(state, "main/fulfilment")
    stored = await store.load(await store.header())
    assert stored is not None and set(stored.products) == set(sim.products)
    clock.advance(60)
    again = await integration.run(make_ctx(run_id="r2"))
    assert again.details["index_mode"] == "incremental" and again.counts.changed == 0


async def test_a_key_the_hidden_product_duplicates_is_never_written(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The page scan hides the twin; the look in the trash, answered before any
    # write, sends the run to the cursor, which finds it.
    sim.catalogue(3000, seed=13)
    ids = sorted(sim.products)
    first, hidden = ids[0], ids[1000]
    seen = next(dict(v) for v in sim.products[ids[10]]["variants"]
                if v["barcode"] and v["quantity"] is not None)
    twin = sim.products[hidden]["variants"][0]["id"]
    sim.update_variant(twin, barcode=seen["barcode"])  # the shop holds the key twice
    clock.advance(3600)
    source = source_from_shop(sim)
    set_source(source, seen["barcode"], seen["quantity"] + 3)
    integration = make_integration(source)
    delete_before_page_5(monkeypatch, integration, sim, first)
    result = await integration.run(make_ctx())
    assert result.changes == [] and put_count(sim) == 0
    assert seen["barcode"] in result.conflicts
    assert "read again by cursor" in result.details["index_full_reason"]
    clock.advance(60)
    set_source(source, seen["barcode"], seen["quantity"] + 4)
    again = await integration.run(make_ctx(run_id="r2"))
    assert again.conflicts == [seen["barcode"]] and again.counts.written == 0


async def test_the_hourly_full_scan_asks_for_the_pages_the_last_one_found(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
    clock: FakeClock, state: DictState, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim.catalogue(3000, seed=12)
    clock.advance(3600)
    integration = make_integration(source_from_shop(sim), full_refresh=3600)
    first = await integration.run(make_ctx())
    assert first.status == "ok" and first.details["index_mode"] == "full"
    clock.advance(3600)
    sim.requests.clear()
    state.reads.clear()
    hourly = await integration.run(make_ctx(run_id="r2"))
    assert hourly.details["index_mode"] == "full"
    assert hourly.details["index_full_reason"] == "full refresh due"
    pages = [r.query["page"] for r in sim.requests if "updated_since" not in r.query]
    assert sorted(pages, key=int) == ["1", "2", "3", "4", "5"]  # not one past the end
    # The index in memory is the stored copy: only the header is read.
    assert state.reads == ["main/fulfilment"]
    assert hourly.requests["insales"] == 6  # five pages and the look in the trash


async def test_second_run_without_changes_writes_nothing_and_costs_one_read(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
    clock: FakeClock,
) -> None:
    sim.catalogue(1000, seed=7)
    clock.advance(3600)  # the catalogue was last edited an hour ago
    source = source_from_shop(sim)
    set_source(source, source.items[0].key or "", 42)  # one change for the first run
    integration = make_integration(source)
    first = await integration.run(make_ctx(run_id="r1"))
    assert first.status == "ok" and first.counts.written == 1
    clock.advance(60)
    second = await integration.run(make_ctx(run_id="r2"))
    assert second.status == "ok"
    assert second.details["index_mode"] == "incremental"
    assert second.counts.changed == 0 and second.counts.written == 0
    # The one read shows the write: confirmed, in the audit too.
    assert second.requests["insales"] == 1 and second.details["confirmed"] == 1
    assert [c.status for c in first.changes] == ["confirmed"]
    clock.advance(60)
    third = await integration.run(make_ctx(run_id="r3"))
    assert third.requests["insales"] == 1 and third.counts.written == 0
    assert sim.count("PUT") == 1


async def test_incremental_run_sees_changes_made_in_the_shop(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
    clock: FakeClock,
) -> None:
    pid = sim.add_product([{"barcode": "111", "quantity": 5}, {"barcode": "222", "quantity": 5}])
    v1, v2 = (v["id"] for v in sim.products[pid]["variants"])
    source = ListSource([SourceItem("111", 5, "a"), SourceItem("222", 5, "b"),
                         SourceItem("333", 7, "c")])
    integration = make_integration(source)
    assert (await integration.run(make_ctx())).counts.written == 0
    clock.advance(60)
    sim.set_quantity(v1, 4)                  # an order took one
    sim.update_variant(v2, barcode="333")    # a variant changed its key
    result = await integration.run(make_ctx(run_id="r2"))
    assert result.details["index_mode"] == "incremental"
    assert sim.variant(v1)["quantity"] == 5
    assert sim.variant(v2)["quantity"] == 7
    assert result.counts.written == 2
    assert result.counts.unmatched_by_reason["not_in_target"] == 1  # 222 is gone
    assert result.counts.skipped == 0


async def test_an_incremental_scan_drops_deleted_products(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
    clock: FakeClock, state: DictState,
) -> None:
    keep = sim.add_product([{"barcode": "111", "quantity": 1}])
    gone = sim.add_product([{"barcode": "111", "quantity": 1}])
    source = ListSource([SourceItem("111", 3, "a")])
    integration = make_integration(source, full_refresh=600)
    first = await integration.run(make_ctx())
    assert first.conflicts == ["111"] and first.counts.written == 0
    sim.delete_product(gone)
    clock.advance(60)
    second = await integration.run(make_ctx(run_id="r2"))
    assert second.details["index_mode"] == "incremental"
    assert second.details["index_products_deleted"] == 1
    assert second.conflicts == [] and second.counts.written == 1
    assert sim.variant(sim.products[keep]["variants"][0]["id"])["quantity"] == 3
    assert second.requests["insales"] == 2  # the scan (with the trash), the write
    # Back from the trash: the key is held twice again.
    clock.advance(60)
    sim.restore_product(gone)
    clock.advance(60)
    third = await integration.run(make_ctx(run_id="r3"))
    assert third.conflicts == ["111"] and third.counts.written == 0
    assert (INDEX_SCOPE, "main/fulfilment") in state.values


async def test_page_failing_mid_scan_aborts_with_zero_writes(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
    clock: FakeClock, state: DictState,
) -> None:
    sim.catalogue(1500, seed=2)
    source = source_from_shop(sim)
    for it in source.items[:50]:
        set_source(source, it.key or "", 77)
    # Page 1 answers; every later products request fails, more times than retries last.
    sim.inject(LaterFault(status=500, body="boom", match="products.json", times=1000, after=1))
    integration = make_integration(source)
    result = await integration.run(make_ctx())
    assert result.status == "failed"
    assert any("products page 2" in e for e in result.errors), result.errors
    assert sim.count("PUT") == 0
    assert result.counts.written == 0 and result.changes == []
    assert clock.slept  # the retries backed off on the fake clock
    assert state.values == {}  # no half-read index is kept


async def test_source_failure_aborts_with_zero_writes(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
) -> None:
    sim.add_product([{"barcode": "111", "quantity": 1}])
    source = ListSource([SourceItem("111", 3, "a")])
    source.error = TransientError("testsource", "page 3 failed")
    result = await make_integration(source).run(make_ctx())
    assert result.status == "failed"
    assert result.errors and "page 3 failed" in result.errors[0]
    assert sim.count("PUT") == 0


async def test_zero_guard_trips_and_writes_nothing(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
) -> None:
    for i in range(10):
        sim.add_product([{"barcode": f"B{i}", "quantity": 5}])
    source = ListSource([SourceItem(f"B{i}", 0 if i < 6 else 5, str(i)) for i in range(10)])
    result = await make_integration(source).run(make_ctx())
    assert result.status == "aborted"
    assert "zero guard" in result.message and "6 of 10" in result.message
    assert result.errors == [result.message]  # scripts reading errors see why, too
    assert sim.count("PUT") == 0 and result.counts.written == 0
    assert len(result.changes) == 6 and not any(c.applied for c in result.changes)


async def test_dry_run_plans_and_writes_nothing(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
) -> None:
    sim.add_product([{"barcode": "111", "quantity": 1}])
    source = ListSource([SourceItem("111", 3, "a")])
    result = await make_integration(source).run(make_ctx(dry_run=True))
    assert result.status == "ok" and result.dry_run
    assert [(c.old, c.new, c.applied) for c in result.changes] == [("1", "3", False)]
    assert result.counts.changed == 1 and result.counts.written == 0
    assert sim.count("PUT") == 0
    configured = await make_integration(source, dry_run=True).run(make_ctx())
    assert configured.dry_run and sim.count("PUT") == 0


async def test_batches_go_out_in_hundreds_and_count_exactly(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
) -> None:
    for i in range(250):
        sim.add_product([{"barcode": f"B{i:03d}", "quantity": 1}])
    source = ListSource([SourceItem(f"B{i:03d}", 2, str(i)) for i in range(250)])
    result = await make_integration(source, write_concurrency=3).run(make_ctx())
    assert result.status == "ok"
    assert result.counts.written == 250 and result.details["batches"] == 3
    sizes = sorted(len(r.body["variants"]) for r in sim.requests if r.method == "PUT")
    assert sizes == [50, 100, 100]
    assert all(v["quantity"] == 2 for v in sim.variants())


async def test_refused_variants_of_deleted_products_are_counted_and_leave_the_index(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim.add_product([{"barcode": "111", "quantity": 1}])
    gone = sim.add_product([{"barcode": "222", "quantity": 1}])
    odd = sim.add_product([{"barcode": "333", "quantity": 1}])
    sim.reject_trashed = True  # an account that answers per variant
    source = ListSource([SourceItem("111", 3, "a"), SourceItem("222", 3, "b"),
                         SourceItem("333", 3, "c")])
    integration = make_integration(source)
    await integration.run(make_ctx(dry_run=True))  # warm the index
    clock.advance(60)
    real = integration.client.variants_group_update

    async def deleting_first(writes: Any) -> Any:  # deleted between the scan and the write
        sim.delete_product(gone)
        return await real(writes)

    monkeypatch.setattr(integration.client, "variants_group_update", deleting_first)
    result = await integration.run(make_ctx(run_id="r2"))
    assert result.status == "ok", result.errors
    assert result.counts.written == 2
    assert result.counts.skipped_by_reason.get("deleted_in_target") == 1
    assert [(c.key, c.applied, c.status) for c in result.changes] == [
        ("111", True, "sent"), ("222", False, "refused"), ("333", True, "sent")]
    assert "product was deleted" in result.message
    monkeypatch.undo()
    # A refusal of a product that still exists is a real failure.
    clock.advance(60)
    source.items = [SourceItem("333", 5, "c")]
    real_update = integration.client.variants_group_update

    async def refusing(writes: Any) -> Any:
        answer = await real_update(writes)
        answer.failed = {w.id: "price is invalid" for w in writes}
        answer.ok = []
        return answer

    monkeypatch.setattr(integration.client, "variants_group_update", refusing)
    failed = await integration.run(make_ctx(run_id="r3"))
    assert failed.status == "failed"
    assert any("refused: price is invalid" in e for e in failed.errors)
    assert odd in sim.products


async def test_warehouse_field_is_written_when_configured(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
) -> None:
    pid = sim.add_product([{"barcode": "111", "warehouses": [1, 6]}])
    vid = sim.products[pid]["variants"][0]["id"]
    source = ListSource([SourceItem("111", 4, "a")])
    result = await make_integration(source, warehouse=1).run(make_ctx())
    assert result.counts.written == 1
    assert result.changes[0].field == "quantity_at_warehouse1" and result.changes[0].old == "6"
    assert sim.variant(vid)["quantity_at_warehouse1"] == 4
    assert sim.variant(vid)["quantity_at_warehouse0"] == 1


async def test_moving_the_job_to_another_warehouse_rebuilds_its_index(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
    clock: FakeClock,
) -> None:
    # Only the configured warehouse is read: the index of warehouse 1 knows
    # nothing of warehouse 0, so after the move the shop is read again.
    pid = sim.add_product([{"barcode": "111", "warehouses": [1, 6]}])
    vid = sim.products[pid]["variants"][0]["id"]
    source = ListSource([SourceItem("111", 6, "a")])
    first = await make_integration(source, warehouse=1).run(make_ctx())
    assert first.counts.changed == 0 and first.details["index_mode"] == "full"
    clock.advance(60)
    moved = await make_integration(source, warehouse=0).run(make_ctx(run_id="r2"))
    assert moved.details["index_mode"] == "full"
    assert moved.details["index_full_reason"] == "index made for another stock field"
    assert [(c.field, c.old, c.new) for c in moved.changes] == [
        ("quantity_at_warehouse0", "1", "6")]
    assert sim.variant(vid)["quantity_at_warehouse0"] == 6


async def test_rate_limit_storm_during_run_is_waited_out(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
    clock: FakeClock,
) -> None:
    sim.add_product([{"barcode": "111", "quantity": 1}])
    sim.inject(status=503, headers={"Retry-After": "30"}, times=2)
    sim.inject(status=429, headers={"Retry-After": "20"}, times=1, method="PUT")
    source = ListSource([SourceItem("111", 3, "a")])
    result = await make_integration(source).run(make_ctx())
    assert result.status == "ok" and result.counts.written == 1
    assert sum(1 for s in clock.slept if s >= 20) >= 3


async def test_garbage_in_the_shop_is_reported_not_fatal(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
) -> None:
    sim.add_product([{"barcode": "111", "quantity": 1}])
    sim.add_product([{"barcode": "222", "quantity": "lots"}])
    source = ListSource([SourceItem("111", 3, "a"), SourceItem("222", 3, "b")])
    result = await make_integration(source).run(make_ctx())
    assert result.status == "ok" and result.counts.written == 2
    assert result.details["insales_problems_total"] == 1
    assert "non-numeric" in result.details["insales_problems"][0]


def reads(sim: InSalesSimulator) -> int:
    return sim.count("GET", "products")


async def test_quiet_warm_shop_costs_exactly_one_read_per_run(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
    clock: FakeClock,
) -> None:
    sim.catalogue(3000, seed=5)
    clock.advance(86400)
    integration = make_integration(source_from_shop(sim))
    first = await integration.run(make_ctx())
    assert first.details["index_mode"] == "full" and first.counts.written == 0
    for n in range(5):
        clock.advance(60)
        before = len(sim.requests)
        result = await integration.run(make_ctx(run_id=f"q{n}"))
        assert result.status == "ok" and result.details["index_mode"] == "incremental"
        assert len(sim.requests) - before == 1 and result.requests["insales"] == 1
        assert result.details["index_products_read"] == 0


async def test_writes_are_read_back_once_then_a_run_costs_one_read(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
    clock: FakeClock,
) -> None:
    sim.catalogue(3000, seed=6)
    clock.advance(86400)
    source = source_from_shop(sim)
    integration = make_integration(source, zero_guard=1.0)
    await integration.run(make_ctx())
    clock.advance(60)
    # 1500 variants on several hundred products change: far more than one page.
    source.items = [SourceItem(i.key, (i.quantity or 0) + 1 if n % 2 else i.quantity, i.ref)
                    for n, i in enumerate(source.items)]
    wrote = await integration.run(make_ctx(run_id="w"))
    assert wrote.status == "ok" and wrote.counts.written > 1000
    written_products = {sim._variant_product[int(c.ref)] for c in wrote.changes}
    assert len(written_products) > 500
    # The next run reads the written products back (that confirms them): one
    # page per 250 products. Its window starts 51 s before the previous scan
    # (a save committed late is not missed), but the writes came after that
    # scan, and a minute later they are outside the next window: one read a
    # minute again.
    pages = math.ceil((len(written_products) + 1) / 250)
    clock.advance(60)
    before = reads(sim)
    confirming = await integration.run(make_ctx(run_id="c"))
    assert confirming.status == "ok" and confirming.counts.changed == 0
    assert reads(sim) - before == pages
    assert confirming.details["confirmed"] == wrote.counts.written
    assert confirming.details["pending"] == 0
    for n in range(3):
        clock.advance(60)
        before = reads(sim)
        after = await integration.run(make_ctx(run_id=f"a{n}"))
        assert after.status == "ok" and after.counts.changed == 0
        assert reads(sim) - before == 1 and after.requests["insales"] == 1


async def test_a_change_made_in_the_shop_after_our_writes_is_seen(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
    clock: FakeClock,
) -> None:
    pid = sim.add_product([{"barcode": "111", "quantity": 5}, {"barcode": "222", "quantity": 5}])
    v1, v2 = (v["id"] for v in sim.products[pid]["variants"])
    clock.advance(3600)
    source = ListSource([SourceItem("111", 5, "a"), SourceItem("222", 5, "b")])
    integration = make_integration(source)
    await integration.run(make_ctx())
    clock.advance(60)
    set_source(source, "111", 8)
    assert (await integration.run(make_ctx(run_id="w"))).counts.written == 1
    clock.advance(2)  # someone edits the shop two seconds after our write: no blind window
    sim.set_quantity(v1, 3)
    sim.set_quantity(v2, 1)
    clock.advance(58)
    result = await integration.run(make_ctx(run_id="r"))
    assert result.details["index_mode"] == "incremental"
    assert result.counts.written == 2
    assert sim.variant(v1)["quantity"] == 8 and sim.variant(v2)["quantity"] == 5


async def test_two_integrations_on_one_shop_at_once_keep_their_own_index(
    sim: InSalesSimulator, resources: FakeResources, make_ctx: ContextFactory,
    clock: FakeClock,
) -> None:
    sim.catalogue(40, seed=3)
    clock.advance(3600)
    by_barcode = [v for v in sim.variants() if v["barcode"]]
    half = len(by_barcode) // 2
    shop = ShopConfig(url=sim.url, api_key=sim.api_key, password=sim.password)  # type: ignore[arg-type]

    def job(name: str, variants: list[dict[str, Any]]) -> tuple[StockSyncIntegration, ListSource]:
        source = ListSource([SourceItem(key=v["barcode"], quantity=(v["quantity"] or 0) + 5,
                                        ref=str(v["id"])) for v in variants])
        integ = build_stock_integration(name, "kak2c-insales", StockSyncOptions(shop="main"),
                                        "main", shop, source, resources)
        assert isinstance(integ, StockSyncIntegration)
        return integ, source

    a, _ = job("a", by_barcode[:half])
    b, _ = job("b", by_barcode[half:])
    first_a, first_b = await asyncio.gather(a.run(make_ctx(run_id="a1")),
                                            b.run(make_ctx(run_id="b1")))
    assert first_a.counts.written > 0 and first_b.counts.written > 0
    writes = put_count(sim)
    clock.advance(60)
    again_a, again_b = await asyncio.gather(a.run(make_ctx(run_id="a2")),
                                            b.run(make_ctx(run_id="b2")))
    # Neither lost the record of its own writes, so nothing is written twice.
    assert (again_a.counts.written, again_b.counts.written) == (0, 0)
    assert put_count(sim) == writes


async def test_the_index_stays_in_memory_and_another_replicas_copy_is_loaded(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
    state: DictState, clock: FakeClock,
) -> None:
    pid = sim.add_product([{"barcode": "111", "quantity": 5}, {"barcode": "222", "quantity": 1}])
    va, _ = (v["id"] for v in sim.products[pid]["variants"])
    source = ListSource([SourceItem("111", 6, "s1"), SourceItem("222", 1, "s2")])
    here, there = make_integration(source), make_integration(source)
    assert (await here.run(make_ctx())).counts.written == 1
    clock.advance(60)
    assert (await here.run(make_ctx(run_id="r1b"))).details["confirmed"] == 1
    # A quiet run reads and stores the header only.
    clock.advance(60)
    state.reads.clear()
    writes = state.writes
    quiet = await here.run(make_ctx(run_id="r2"))
    assert quiet.status == "ok" and quiet.counts.changed == 0
    assert state.reads == ["main/fulfilment"] and state.writes == writes + 1
    # Another replica runs: it loads the stored copy, and stores its own.
    clock.advance(60)
    sim.set_quantity(va, 2)
    state.reads.clear()
    elsewhere = await there.run(make_ctx(run_id="r3"))
    assert elsewhere.counts.written == 1
    assert "main/fulfilment#0" in state.reads
    # This replica notices and loads that copy: nothing is written twice.
    clock.advance(60)
    state.reads.clear()
    back = await here.run(make_ctx(run_id="r4"))
    assert back.counts.written == 0 and back.details["confirmed"] == 1
    assert sim.variant(va)["quantity"] == 6
    assert "main/fulfilment#0" in state.reads


def _as_shop(index: InSalesIndex | None) -> dict[int, tuple[str | None, float | None]]:
    """The shop as the index has it, pending writes as InSales will show them."""
    assert index is not None
    pending = index.pending
    return {v.id: (v.barcode, float(pending[v.id].value) if v.id in pending else v.quantity)
            for p in index.products.values() for v in p.variants}


def _shop(sim: InSalesSimulator) -> dict[int, tuple[str | None, float | None]]:
    return {v["id"]: (v["barcode"] or None,
                      None if v["quantity"] is None else float(v["quantity"]))
            for v in sim.variants()}


async def test_the_stored_index_is_always_the_shop(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
    state: DictState, clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Whatever mix of runs came before (full scans, pieces rewritten, writes,
    # edits made in the shop by others), the stored copy, loaded as another
    # replica would, is the shop.
    rng = random.Random(11)
    sim.catalogue(400, seed=3)
    clock.advance(3600)
    source = source_from_shop(sim)
    integration = make_integration(source, zero_guard=1.0, full_refresh=900)
    keys = [i.key for i in source.items]
    copies: set[str] = set()
    for n in range(40):
        action = rng.choice(["source", "shop", "both", "quiet"])
        if action in ("source", "both"):
            for key in rng.sample(keys, rng.randint(1, 30)):
                set_source(source, key or "", rng.randint(0, 50))
        if action in ("shop", "both"):
            for v in rng.sample(sim.variants(), rng.randint(1, 5)):
                if rng.random() < 0.7:
                    sim.set_quantity(v["id"], rng.randint(0, 50))
                else:
                    sim.update_variant(v["id"], barcode=f"X{n}-{v['id']}")
        result = await integration.run(make_ctx(run_id=f"r{n}"))
        assert result.status == "ok", result.errors
        store = StoredIndex(state, "main/fulfilment")
        header = await store.header()
        assert _as_shop(await store.load(header)) == _shop(sim), f"after run {n}"
        assert header is not None
        copies.add(header["copy"])
        clock.advance(60)
    assert len(copies) == 40


class FailingState(DictState):
    """A state store whose writes fail (a full disk, a lost database)."""

    async def set_value(self, scope: str, key: str, value: Any) -> None:
        raise OSError("disk full")


async def test_an_index_that_cannot_be_saved_fails_the_run_but_keeps_its_audit(
    sim: InSalesSimulator, make_integration: Factory, clock: FakeClock,
) -> None:
    pid = sim.add_product([{"barcode": "111", "quantity": 5}])
    (va,) = (v["id"] for v in sim.products[pid]["variants"])
    integration = make_integration(ListSource([SourceItem("111", 6, "s1")]))
    ctx = RunContext(run_id="r1", dry_run=False, state=FailingState(),  # type: ignore[arg-type]
                     clock=clock)
    result = await integration.run(ctx)
    assert result.status == "failed"
    assert sim.variant(va)["quantity"] == 6
    assert [(c.key, c.new, c.applied) for c in result.changes] == [("111", "6", True)]
    assert any("saving the InSales index failed: disk full" in e for e in result.errors)
    assert isinstance(ctx.audit, MemoryWriteAhead)
    assert [(c.key, c.status) for c in ctx.audit.changes] == [("111", "sent")]


async def test_a_queued_write_waits_as_pending_and_is_not_written_again(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
    clock: FakeClock,
) -> None:
    sim.queue_delay = 150.0  # InSales' queue runs late: two runs pass first
    pid = sim.add_product([{"barcode": "111", "quantity": 5}])
    vid = sim.products[pid]["variants"][0]["id"]
    clock.advance(3600)
    integration = make_integration(ListSource([SourceItem("111", 8, "a")]))
    first = await integration.run(make_ctx())
    assert first.counts.written == 1 and sim.variant(vid)["quantity"] == 5
    for n in range(2):
        clock.advance(60)
        waiting = await integration.run(make_ctx(run_id=f"w{n}"))
        assert waiting.counts.changed == 0 and waiting.details["pending"] == 1
    assert put_count(sim) == 1 and first.changes[0].status == "sent"
    clock.advance(60)  # the queue has run by now
    shown = await integration.run(make_ctx(run_id="shown"))
    assert shown.details["confirmed"] == 1 and shown.details["pending"] == 0
    assert first.changes[0].status == "confirmed" and put_count(sim) == 1


async def test_a_write_the_queue_drops_is_written_once_more_then_reported(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
    clock: FakeClock,
) -> None:
    pid = sim.add_product([{"barcode": "111", "quantity": 5}])
    vid = sim.products[pid]["variants"][0]["id"]
    clock.advance(3600)
    integration = make_integration(ListSource([SourceItem("111", 8, "a")]),
                                   confirm_within=300)
    sim.drop_queued = 1
    first = await integration.run(make_ctx())
    assert first.counts.written == 1 and sim.dropped == [vid]
    # Nothing shows and nothing is written again until the bound has passed.
    for n in range(4):
        clock.advance(60)
        assert (await integration.run(make_ctx(run_id=f"w{n}"))).counts.written == 0
    clock.advance(60)
    sim.drop_queued = 1
    again = await integration.run(make_ctx(run_id="again"))
    assert again.counts.written == 1 and again.details["rewritten"] == 1
    assert sim.count("GET", f"/products/{pid}.json") == 1  # read by id before it
    assert first.changes[0].status == "unconfirmed"
    for n in range(5):
        clock.advance(60)
        reported = await integration.run(make_ctx(run_id=f"r{n}"))
    assert reported.details["unconfirmed"] == [f"{vid} (111) = 8"]
    assert reported.counts.skipped_by_reason["unconfirmed"] == 1
    assert "never showed in InSales" in reported.message
    # And the shop still converges: the run that reported it writes afresh.
    assert reported.counts.written == 1 and sim.variant(vid)["quantity"] == 8


async def test_a_fenced_audit_stops_the_writes_and_fails_the_run(
    sim: InSalesSimulator, make_integration: Factory, clock: FakeClock, state: DictState,
) -> None:
    for i in range(250):
        sim.add_product([{"barcode": f"B{i:03d}", "quantity": 1}])
    source = ListSource([SourceItem(f"B{i:03d}", 2, str(i)) for i in range(250)])

    class Fenced(MemoryWriteAhead):
        async def planned(self, changes: Any, *, may_take: float) -> None:
            if self.changes:
                raise WriteFenced("another replica holds the lease")
            await super().planned(changes, may_take=may_take)

    audit = Fenced()
    ctx = RunContext(run_id="r1", dry_run=False, state=state,  # type: ignore[arg-type]
                     clock=clock, audit=audit)
    result = await make_integration(source, write_concurrency=1).run(ctx)
    assert result.status == "failed"
    assert "another replica holds the lease" in result.message
    assert put_count(sim) == 1 and len(audit.changes) == 100
    sent = {e["id"] for r in sim.requests if r.method == "PUT" for e in r.body["variants"]}
    assert sent == {int(c.ref) for c in audit.changes}


async def test_an_edit_during_our_writes_is_corrected_by_the_next_run(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    pid = sim.add_product([{"barcode": "111", "quantity": 5}, {"barcode": "222", "quantity": 5}])
    other = sim.add_product([{"barcode": "333", "quantity": 5}])
    v1 = sim.products[pid]["variants"][0]["id"]
    v3 = sim.products[other]["variants"][0]["id"]
    clock.advance(3600)
    source = ListSource([SourceItem("111", 5, "a"), SourceItem("222", 5, "b"),
                         SourceItem("333", 5, "c")])
    integration = make_integration(source)
    await integration.run(make_ctx())
    set_source(source, "111", 9)
    real = integration.client.variants_group_update

    async def editing(writes: Any) -> Any:
        clock.advance(5)
        sim.set_quantity(v3, 1)  # by hand, while our write is on its way
        answer = await real(writes)
        clock.advance(5)
        new = sim.add_product([{"barcode": "222", "quantity": 0}])  # a twin of 222
        assert new
        return answer

    monkeypatch.setattr(integration.client, "variants_group_update", editing)
    clock.advance(60)
    await integration.run(make_ctx(run_id="w"))
    monkeypatch.undo()
    set_source(source, "222", 7)
    clock.advance(60)
    after = await integration.run(make_ctx(run_id="next"))
    assert sim.variant(v3)["quantity"] == 5 and sim.variant(v1)["quantity"] == 9
    assert after.conflicts == ["222"]
    assert all(v["quantity"] != 7 for v in sim.variants())


class SlowSource(ListSource):
    """A source read that takes a while; notes how many shop reads went out meanwhile."""

    def __init__(self, items: list[SourceItem], sim: InSalesSimulator) -> None:
        super().__init__(items)
        self.sim = sim
        self.shop_reads_during: list[int] = []

    async def fetch(self, ctx: RunContext) -> list[SourceItem]:
        before = reads(self.sim)
        for _ in range(20):  # let everything else that can go ahead do so
            await asyncio.sleep(0)
        self.shop_reads_during.append(reads(self.sim) - before)
        return await super().fetch(ctx)


async def test_an_incremental_scan_waits_for_the_source_a_full_one_does_not(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
    clock: FakeClock,
) -> None:
    """The incremental scan is taken right before planning (so our writes land
    just after its watermark); the long full scan goes alongside the source."""
    sim.catalogue(600, seed=2)
    clock.advance(86400)
    source = SlowSource(source_from_shop(sim).items, sim)
    integration = make_integration(source, zero_guard=1.0)
    first = await integration.run(make_ctx(run_id="full"))
    clock.advance(60)
    second = await integration.run(make_ctx(run_id="incremental"))
    assert first.details["index_mode"] == "full" and second.details["index_mode"] == "incremental"
    assert source.shop_reads_during[0] > 0 and source.shop_reads_during[1] == 0
    assert second.requests["insales"] == 1


class CountingSource(ListSource):
    """A source that notes how many runs are reading it at once."""

    inside = 0
    most = 0

    async def fetch(self, ctx: RunContext) -> list[SourceItem]:
        CountingSource.inside += 1
        CountingSource.most = max(CountingSource.most, CountingSource.inside)
        try:
            for _ in range(3):
                await asyncio.sleep(0)  # let the other runs in, if they may come
            return await super().fetch(ctx)
        finally:
            CountingSource.inside -= 1


async def test_cold_runs_take_turns_and_warm_runs_do_not_wait(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
    monkeypatch: pytest.MonkeyPatch, clock: FakeClock,
) -> None:
    from stocksyncd.integrations.stock import cold

    monkeypatch.setattr(cold, "COLD_RUNS", 2)
    sim.add_product([{"barcode": "111", "quantity": 5}])
    jobs = [make_integration(CountingSource([SourceItem("111", 5, "s1")])) for _ in range(5)]
    for n, job in enumerate(jobs):
        job.index_key += f"-{n}"  # five jobs, five stored indexes
    CountingSource.most = 0
    first = await asyncio.gather(*(j.run(make_ctx(run_id=f"a{n}")) for n, j in enumerate(jobs)))
    assert [r.status for r in first] == ["ok"] * 5
    assert CountingSource.most == 2  # no index in memory: two at a time
    clock.advance(60)
    CountingSource.most = 0
    again = await asyncio.gather(*(j.run(make_ctx(run_id=f"b{n}")) for n, j in enumerate(jobs)))
    assert [r.status for r in again] == ["ok"] * 5
    assert CountingSource.most == 5  # the index in memory: all at once


async def test_an_unchanged_skip_list_is_stored_once_and_named_after(
    sim: InSalesSimulator, make_integration: Factory, make_ctx: ContextFactory,
    clock: FakeClock,
) -> None:
    """A quiet minute leaves the same keys alone: it names the run that stored the list."""
    sim.catalogue(300, seed=4)
    clock.advance(86400)
    source = source_from_shop(sim)
    source.items = [*source.items, SourceItem("NOT-IN-SHOP", 3, "x1")]
    integration = make_integration(source, zero_guard=1.0)
    first = await integration.run(make_ctx(run_id="r1"))
    assert any(s["key"] == "NOT-IN-SHOP" for s in first.details["skips"])
    clock.advance(60)
    second = await integration.run(make_ctx(run_id="r2"))
    assert "skips" not in second.details and second.details["skips_as_in"] == "r1"
    source.items = [*source.items, SourceItem("ALSO-NOT", 1, "x2")]
    clock.advance(60)
    changed = await integration.run(make_ctx(run_id="r3"))
    assert {"NOT-IN-SHOP", "ALSO-NOT"} <= {s["key"] for s in changed.details["skips"]}
    clock.advance(60)
    assert (await integration.run(make_ctx(run_id="r4"))).details["skips_as_in"] == "r3"
    clock.advance(86400)  # a day later the list is stored again, ahead of retention
    assert "skips" in (await integration.run(make_ctx(run_id="r5"))).details
