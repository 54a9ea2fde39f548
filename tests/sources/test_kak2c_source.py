"""Kak2cSource: one item per variant in both product shapes, raw values, no partial data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import pytest

from stocksyncd.clients.kak2c import Kak2cClient, kak2c_transport
from stocksyncd.clock import FakeClock
from stocksyncd.errors import ApiError
from stocksyncd.http.retry import RetryPolicy
from stocksyncd.http.transport import ExchangeRecord
from stocksyncd.integrations.base import RunContext
from stocksyncd.integrations.kak2c_insales import Kak2cSource
from stocksyncd.integrations.stock.model import SourceItem
from stocksyncd.simulators.kak2c import Kak2cSimulator

LOGIN, PASSWORD = "shop@example.com", "kak2c-password"


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[Kak2cSimulator]:
    simulator = Kak2cSimulator(login=LOGIN, password=PASSWORD, clock=clock)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
def ctx(clock: FakeClock) -> RunContext:
    return RunContext(run_id="test", dry_run=False, state=cast(Any, None), clock=clock)


class Trigger:
    """Calls ``action`` once after the first successful products page."""

    def __init__(self, action: Any) -> None:
        self.action, self.done = action, False

    def observe(self, record: ExchangeRecord) -> None:
        if not self.done and "/products" in record.url and record.status == 200:
            self.done = True
            self.action()


def make_source(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock,
    observer: Trigger | None = None, **kwargs: Any,
) -> Kak2cSource:
    transport = kak2c_transport(session, base_url=sim.base_url, clock=clock, observer=observer)
    transport.retry = RetryPolicy(attempts=3, base_delay=0.5)
    return Kak2cSource(Kak2cClient(transport, LOGIN, PASSWORD, clock), **kwargs)


async def test_both_shapes_give_one_item_per_variant(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock, ctx: RunContext
) -> None:
    v1 = sim.make_variant("4600000000011", 3)
    v2 = sim.make_variant("4600000000012", 0)
    sim.add_product([v1, v2])  # one product, many variants
    v3 = sim.add_item("4600000000013", 7)  # one variant per product
    items = await make_source(sim, session, clock).fetch(ctx)
    assert [SourceItem(*i[:3]) for i in items] == [SourceItem("4600000000011", 3, v1["id"]),
                     SourceItem("4600000000012", 0, v2["id"]),
                     SourceItem("4600000000013", 7, v3["id"])]
    # The product's shortName names each item in reports.
    assert [i.name for i in items] == [p["shortName"] for p in sim.products
                                       for _ in p["variants"]]


async def test_catalogue_of_mixed_shapes_over_several_pages(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock, ctx: RunContext
) -> None:
    keys = sim.catalogue(1000, seed=4, keys=["K1", "K2"], shape="mixed")
    source = make_source(sim, session, clock, page_size=50)
    items = await source.fetch(ctx)
    assert [i.key for i in items] == keys
    assert keys[:2] == ["K1", "K2"]
    assert any(len(p["variants"]) > 1 for p in sim.products)
    assert any(len(p["variants"]) == 1 for p in sim.products)
    assert source.requests_made() == 1 + -(-len(sim.products) // 50)


async def test_variant_id_key_and_stock_field(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock, ctx: RunContext
) -> None:
    v = sim.add_item("4600000000021", 10)
    sim.set_stock(v["id"], 10, available=6)
    items = await make_source(sim, session, clock, key="variant_id",
                              stock_field="stockAvailable").fetch(ctx)
    assert [SourceItem(*i[:3]) for i in items] == [SourceItem(v["id"], 6, v["id"])]


async def test_garbage_passes_through_raw(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock, ctx: RunContext
) -> None:
    null_barcode = sim.add_item(None, 5)
    string_stock = sim.add_item("4600000000031", "12")
    no_stock = sim.add_item("4600000000032", 1)
    no_stock.pop("stock")
    two_stores = sim.add_item("4600000000033", 0)
    two_stores["stock"] = [{"stockTotal": 2}, {"stockTotal": 3}]
    bad_store = sim.add_item("4600000000034", 0)
    bad_store["stock"] = [{"stockTotal": 2}, {"stockTotal": "n/a"}]
    text_store = sim.add_item("4600000000035", 0)  # once "5" alone: the 3 was dropped
    text_store["stock"] = [{"stockTotal": "5"}, {"stockTotal": 3}]
    strange_store = sim.add_item("4600000000036", 0)
    strange_store["stock"] = [{"stockTotal": 1}, {"stockTotal": "1_000"}]
    not_default = sim.add_item(None, 1)
    not_default["barcodes"] = [{"value": "111", "isDefault": False},
                               {"value": "222", "isDefault": True}]
    sim.products.append({"id": "9999", "variants": ["junk"]})
    sim.products.append({"id": "9998", "variants": None})

    items = await make_source(sim, session, clock).fetch(ctx)

    assert [SourceItem(*i[:3]) for i in items] == [
        SourceItem(None, 5, null_barcode["id"]),
        SourceItem("4600000000031", "12", string_stock["id"]),
        SourceItem("4600000000032", None, no_stock["id"]),
        SourceItem("4600000000033", 5, two_stores["id"]),
        SourceItem("4600000000034", "n/a", bad_store["id"]),
        SourceItem("4600000000035", 8, text_store["id"]),
        SourceItem("4600000000036", "1_000", strange_store["id"]),
        SourceItem("222", 1, not_default["id"]),
        SourceItem(None, None, ""),
    ]


async def test_a_page_failing_after_retries_fails_the_fetch(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock, ctx: RunContext
) -> None:
    sim.catalogue(300, seed=5, shape="single")
    trigger = Trigger(lambda: sim.inject(status=500, match="/products", times=10))
    with pytest.raises(ApiError):
        await make_source(sim, session, clock, observer=trigger, page_size=100).fetch(ctx)
    assert [r.status for r in sim.requests if r.path.endswith("/products")] == [
        200, 500, 500, 500]


async def test_token_expiry_mid_run_still_completes(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock, ctx: RunContext
) -> None:
    sim.catalogue(300, seed=6, shape="single")
    items = await make_source(sim, session, clock, observer=Trigger(sim.revoke_tokens),
                              page_size=100).fetch(ctx)
    assert len(items) == 300
    assert sim.logins == 2
