"""The full refresh by page numbers: several pages at once, then a look in the trash."""

from __future__ import annotations

import random
from typing import Any

import aiohttp
import pytest

from stocksyncd.clients.insales import InSalesClient, basic_auth
from stocksyncd.clock import FakeClock
from stocksyncd.http.retry import RetryPolicy
from stocksyncd.http.transport import Transport
from stocksyncd.integrations.stock.index import (
    InSalesIndex,
    ScanFailed,
    ScanResult,
    needs_full,
    refresh_index,
    removed_during,
    scan_all_pages,
    scan_products,
)
from stocksyncd.integrations.stock.pending import Verdicts
from stocksyncd.simulators.insales import InSalesSimulator, LaterFault


def make_client(sim: InSalesSimulator, session: aiohttp.ClientSession,
                clock: FakeClock) -> InSalesClient:
    transport = Transport(session, api="insales", base_url=sim.url, clock=clock,
                          headers=basic_auth(sim.api_key, sim.password),
                          retry=RetryPolicy(attempts=3, base_delay=0.5))
    return InSalesClient(transport)


def pages_asked(sim: InSalesSimulator) -> list[int]:
    """Page numbers of the listing by page (not the cursor, not the trash), in order sent."""
    return [int(r.query["page"]) for r in sim.requests
            if r.path.endswith("/products.json") and "updated_since" not in r.query]


async def test_concurrent_page_scan_equals_the_cursor_scan(
    sim: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock,
) -> None:
    sim.catalogue(3000, seed=4)
    assert len(sim.products) // 250 == 4  # 5 pages, the last one short
    clock.advance(3600)
    client = make_client(sim, session, clock)
    by_pages = await scan_all_pages(client, concurrency=4, expect_pages=1)
    by_cursor = await scan_products(client, None)
    assert by_pages.products == by_cursor.products
    assert len(by_pages.products) == len(sim.products)
    # Past the pages expected, each page that comes back full sends the next:
    # none is sent past the end, none cancelled.
    assert pages_asked(sim) == [1, 2, 3, 4, 5]
    assert by_pages.in_id_order
    assert by_pages.highest_id == max(sim.products)
    # The scan's start is InSales' time when it began.
    assert by_pages.server_time == "2026-01-01T01:00:00.000+00:00"


async def test_the_expected_pages_go_out_without_waiting_for_rounds(
    sim: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock,
) -> None:
    sim.catalogue(3000, seed=4)
    client = make_client(sim, session, clock)
    scan = await scan_all_pages(client, concurrency=4, expect_pages=5)
    assert sorted(pages_asked(sim)) == [1, 2, 3, 4, 5]  # not one request wasted
    assert len(scan.products) == len(sim.products)
    sim.requests.clear()
    # The shop grew past the expected pages: one more round finds the end.
    grown = await scan_all_pages(client, concurrency=4, expect_pages=3)
    assert sorted(pages_asked(sim)) == [1, 2, 3, 4, 5]
    assert grown.products == scan.products
    sim.requests.clear()
    # It shrank: the pages expected all go out, and each is read, not cancelled.
    await scan_all_pages(client, concurrency=4, expect_pages=7)
    assert sorted(pages_asked(sim)) == [1, 2, 3, 4, 5, 6, 7]


async def test_a_shop_of_exactly_full_pages_ends_on_an_empty_one(
    sim: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock,
) -> None:
    for i in range(500):
        sim.add_product([{"sku": f"S{i}", "quantity": i}])
    client = make_client(sim, session, clock)
    scan = await scan_all_pages(client, concurrency=2, expect_pages=2)
    assert len(scan.products) == 500
    assert set(pages_asked(sim)) - {4} == {1, 2, 3}


async def test_a_page_failing_after_retries_aborts_the_page_scan(
    sim: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock,
) -> None:
    sim.catalogue(2000, seed=5)
    sim.inject(LaterFault(status=500, body="boom", match="products.json", times=1000, after=1))
    client = make_client(sim, session, clock)
    with pytest.raises(ScanFailed, match="products page 2"):
        await scan_all_pages(client, concurrency=4, expect_pages=8)
    with pytest.raises(ScanFailed):  # the refresh gives up too, rather than walk the cursor
        await refresh_index(client, None, Verdicts(), now=clock.time(),
                            full=needs_full(None, clock.time(), 3600),
                            concurrency=4)


async def test_a_deletion_mid_scan_is_found_in_the_trash(
    sim: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim.catalogue(2000, seed=6)
    clock.advance(3600)
    client = make_client(sim, session, clock)
    real = client.products_page
    first = min(sim.products)

    async def deleting(**kwargs: Any) -> Any:
        # A product on page 1 is deleted while the scan runs: every later
        # page shifts by one, so one product is never listed.
        if kwargs.get("page") == 2 and first in sim.products:
            sim.delete_product(first)
        return await real(**kwargs)

    monkeypatch.setattr(client, "products_page", deleting)
    scan = await scan_all_pages(client, concurrency=1, expect_pages=1)
    missed = set(sim.products) - set(scan.products)
    assert len(missed) == 1  # what the check is for
    why = await removed_during(client, scan)
    assert why == f"1 product(s) deleted in InSales while its pages were read (product {first})"
    trash = [r for r in sim.requests if r.query.get("deleted") == "true"]
    # 51 s before the scan began.
    assert len(trash) == 1 and trash[0].query["updated_since"].startswith("2026-01-01T00:59:09")


async def test_an_undisturbed_scan_passes_the_check(
    sim: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock,
) -> None:
    sim.catalogue(1200, seed=7)
    old = max(sim.products)
    sim.delete_product(old)  # long before the scan: it shifted nothing
    clock.advance(3600)
    client = make_client(sim, session, clock)
    index, report = await refresh_index(client, None, Verdicts(), now=clock.time(),
                                        full=needs_full(None, clock.time(), 3600), concurrency=4)
    assert report.mode == "full" and report.reason == "no index yet"
    assert set(index.products) == set(sim.products)
    # A first scan asks count.json how many pages to read, and reads no more.
    assert 250 < len(sim.products) < 500
    assert sim.count("GET", "count.json") == 1 and pages_asked(sim) == [1, 2]
    assert len([r for r in sim.requests if r.query.get("deleted") == "true"]) == 1
    scan = await scan_all_pages(client, concurrency=4, expect_pages=5)
    assert await removed_during(client, scan) is None
    # Deleted just now, but listed after everything the scan read: nothing shifted.
    newest = sim.add_product([{"sku": "late"}])
    sim.delete_product(newest)
    assert await removed_during(client, scan) is None


async def test_a_deletion_during_a_full_refresh_is_answered_before_it_is_used(
    sim: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim.catalogue(2000, seed=6)
    clock.advance(3600)
    client = make_client(sim, session, clock)
    real = client.products_page
    first = min(sim.products)

    async def deleting(**kwargs: Any) -> Any:
        if kwargs.get("page") == 2 and first in sim.products:
            sim.delete_product(first)
        return await real(**kwargs)

    monkeypatch.setattr(client, "products_page", deleting)
    old = InSalesIndex(products={}, size_hint=len(sim.products))
    index, report = await refresh_index(client, old, Verdicts(), now=clock.time(),
                                        full=needs_full(old, clock.time(), 3600), concurrency=4)
    # The pages missed a product; the cursor walk that followed did not.
    assert set(index.products) == set(sim.products)
    assert report.reason.endswith(f"(product {first}): read again by cursor")


async def test_the_check_is_cautious_when_it_cannot_tell(
    sim: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock,
) -> None:
    sim.catalogue(1200, seed=8)
    clock.advance(3600)
    client = make_client(sim, session, clock)
    scan = await scan_all_pages(client, concurrency=4, expect_pages=2)
    # The trash cannot be read: the scan is not trusted.
    sim.inject(status=500, body="boom", match="products.json", times=1000)
    why = await removed_during(client, scan)
    assert why is not None and why.startswith("looking for products deleted during the scan failed")
    sim.faults.clear()
    # More deletions than a page holds, all of them listed after the scan's last product.
    for _ in range(250):
        sim.delete_product(sim.add_product([{"sku": "x"}]))
    assert await removed_during(client, scan) == "the deleted products could not all be read"
    # Without a Date to start from, or in an order other than by id.
    assert await removed_during(client, ScanResult(scan.products, 1, [], None,
                                                   highest_id=scan.highest_id)) is not None
    shuffled = ScanResult(scan.products, 1, [], scan.server_time,
                          in_id_order=False, highest_id=scan.highest_id)
    assert await removed_during(client, shuffled) == "InSales did not list the pages by product id"
    assert await removed_during(client, ScanResult({}, 1, [], None)) is None


async def test_a_listing_not_by_id_is_noticed(
    sim: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock,
) -> None:
    sim.catalogue(1500, seed=9)
    random.Random(1).shuffle(sim._ids)  # an InSales that lists in another order
    client = make_client(sim, session, clock)
    scan = await scan_all_pages(client, concurrency=4, expect_pages=6)
    assert not scan.in_id_order and len(scan.products) == len(sim.products)


async def test_without_concurrency_the_full_scan_walks_the_cursor(
    sim: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock,
) -> None:
    sim.catalogue(600, seed=8)
    client = make_client(sim, session, clock)
    index, report = await refresh_index(client, None, Verdicts(), now=clock.time(),
                                        full=needs_full(None, clock.time(), 3600), concurrency=1)
    assert report.mode == "full"
    assert set(index.products) == set(sim.products)
    assert pages_asked(sim) == []
