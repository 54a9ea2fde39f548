"""The full refresh by page numbers, several pages at once, checked against count.json."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from stocksyncd.clients.insales import InSalesClient, basic_auth
from stocksyncd.clock import FakeClock
from stocksyncd.http.retry import RetryPolicy
from stocksyncd.http.transport import Transport
from stocksyncd.integrations.stock.index import (
    ScanFailed,
    refresh_index,
    scan_all_pages,
    scan_products,
)
from stocksyncd.simulators.insales import InSalesSimulator, LaterFault


def make_client(sim: InSalesSimulator, session: aiohttp.ClientSession,
                clock: FakeClock) -> InSalesClient:
    transport = Transport(session, api="insales", base_url=sim.url, clock=clock,
                          headers=basic_auth(sim.api_key, sim.password),
                          retry=RetryPolicy(attempts=3, base_delay=0.5))
    return InSalesClient(transport)


async def test_concurrent_page_scan_equals_the_cursor_scan(
    sim: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock,
) -> None:
    sim.catalogue(3000, seed=4)
    clock.advance(3600)
    client = make_client(sim, session, clock)
    by_pages = await scan_all_pages(client, concurrency=4)
    assert by_pages is not None
    by_cursor = await scan_products(client, None)
    assert by_pages.products == by_cursor.products
    assert len(by_pages.products) == len(sim.products)
    listing = [r for r in sim.requests if r.path.endswith("/products.json")]
    pages = sorted(int(r.query["page"]) for r in listing if "updated_since" not in r.query)
    assert pages == list(range(1, len(sim.products) // 250 + 2))
    assert sim.count("GET", "count.json") == 1
    # The scan's start is InSales' time when it began.
    assert by_pages.server_time == "2026-01-01T01:00:00.000+00:00"


async def test_a_page_failing_after_retries_aborts_the_page_scan(
    sim: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock,
) -> None:
    sim.catalogue(2000, seed=5)
    sim.inject(LaterFault(status=500, body="boom", match="products.json", times=1000, after=1))
    client = make_client(sim, session, clock)
    with pytest.raises(ScanFailed, match="products page 2"):
        await scan_all_pages(client, concurrency=4)
    with pytest.raises(ScanFailed):  # the refresh gives up too, rather than walk the cursor
        await refresh_index(client, None, now=clock.time(), full_every=3600, concurrency=4)


async def test_a_count_that_disagrees_falls_back_to_the_cursor_scan(
    sim: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sim.catalogue(2000, seed=6)
    client = make_client(sim, session, clock)
    real = client.products_page
    deleted: list[int] = []

    async def deleting(**kwargs: Any) -> Any:
        # A product on page 1 is deleted while the scan runs: every later
        # page shifts by one, so one product is never listed.
        if kwargs.get("page") == 2 and not deleted and "updated_since" not in kwargs:
            deleted.append(sim._ids[0])
            sim.delete_product(sim._ids[0])
        return await real(**kwargs)

    monkeypatch.setattr(client, "products_page", deleting)
    assert await scan_all_pages(client, concurrency=1) is None
    deleted.clear()  # and once more during the refresh
    index, report = await refresh_index(client, None, now=clock.time(), full_every=3600,
                                        concurrency=4)
    assert report.mode == "full"
    assert set(index.products) == set(sim.products)
    # The cursor walk did the work.
    assert any("updated_since" in r.query for r in sim.requests)


async def test_count_json_failing_falls_back_to_the_cursor_scan(
    sim: InSalesSimulator, session: aiohttp.ClientSession, clock: FakeClock,
) -> None:
    sim.catalogue(600, seed=8)
    sim.inject(status=500, body="boom", match="count.json", times=1000)
    client = make_client(sim, session, clock)
    index, report = await refresh_index(client, None, now=clock.time(), full_every=3600,
                                        concurrency=4)
    assert report.mode == "full" and set(index.products) == set(sim.products)
