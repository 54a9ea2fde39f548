"""MoySkladSource: products joined with the stock report, raw values, no partial data."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import aiohttp
import pytest

from stocksyncd.clients.moysklad import MoySkladClient, moysklad_transport
from stocksyncd.clock import FakeClock
from stocksyncd.errors import ApiError
from stocksyncd.http.retry import RetryPolicy
from stocksyncd.http.transport import ExchangeRecord
from stocksyncd.integrations.base import RunContext
from stocksyncd.integrations.moysklad_insales import MoySkladSource
from stocksyncd.integrations.stock.keys import Unusable, judge_quantity
from stocksyncd.integrations.stock.model import SourceItem
from stocksyncd.simulators.moysklad import MoySkladSimulator

TOKEN = "ms-source-token-0123456789"


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[MoySkladSimulator]:
    simulator = MoySkladSimulator(token=TOKEN, clock=clock)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
def ctx(clock: FakeClock) -> RunContext:
    return RunContext(run_id="test", dry_run=False, state=cast(Any, None), clock=clock)


class Trigger:
    """Calls ``action`` once after the first successful answer on a path."""

    def __init__(self, path: str, action: Any) -> None:
        self.path, self.action, self.done = path, action, False

    def observe(self, record: ExchangeRecord) -> None:
        if not self.done and self.path in record.url and record.status == 200:
            self.done = True
            self.action()


def make_source(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock,
    observer: Trigger | None = None, **kwargs: Any,
) -> MoySkladSource:
    transport = moysklad_transport(session, token=TOKEN, base_url=sim.base_url, clock=clock,
                                   observer=observer)
    transport.retry = RetryPolicy(attempts=3, base_delay=0.5)
    return MoySkladSource(MoySkladClient(transport), **kwargs)


async def test_join_with_absent_ids_as_zero(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock, ctx: RunContext
) -> None:
    a = sim.add_product("A", stock=10, reserve=4)
    b = sim.add_product("B")  # never moved: not in the report
    c = sim.add_product("C", stock=0)
    sim.add_product(None, stock=3)  # no article: not part of the sync
    source = make_source(sim, session, clock)

    items = await source.fetch(ctx)

    assert [SourceItem(*i[:3]) for i in items] == [
        SourceItem("A", 6, a), SourceItem("B", 0, b), SourceItem("C", 0, c)]
    assert [i.name for i in items] == ["Product A", "Product B", "Product C"]  # for reports
    assert source.requests_made() == 2


@pytest.mark.parametrize(("stock_type", "expected"), [
    ("quantity", 9), ("stock", 10), ("freeStock", 7),
])
async def test_stock_type(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock,
    ctx: RunContext, stock_type: Any, expected: int,
) -> None:
    sim.add_product("A", stock=10, reserve=3, in_transit=2)
    items = await make_source(sim, session, clock, stock_type=stock_type).fetch(ctx)
    assert [i.quantity for i in items] == [expected]


async def test_store_filter(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock, ctx: RunContext
) -> None:
    a = sim.add_product("A", stock=5)
    sim.set_stock(a, 7, store="shop-store")
    b = sim.add_product("B", stock=2)
    items = await make_source(sim, session, clock, store_id="shop-store").fetch(ctx)
    assert {i.key: i.quantity for i in items} == {"A": 7, "B": 0}
    assert {i.ref for i in items} == {a, b}


async def test_external_code_key(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock, ctx: RunContext
) -> None:
    sim.catalogue(3, seed=1, keys=["X1", "X2", "X3"], key_field="externalCode",
                  unstocked_share=0.0)
    items = await make_source(sim, session, clock, key="externalCode").fetch(ctx)
    assert [i.key for i in items] == ["X1", "X2", "X3"]


async def test_garbage_stock_values_pass_through_raw(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock, ctx: RunContext
) -> None:
    a = sim.add_product("A", stock=1)
    b = sim.add_product("B", stock=1)
    c = sim.add_product("C", stock=1)
    d = sim.add_product("A", stock=2)  # duplicate article: the planner's business
    sim.inject(status=200, match="/report/stock", body=[
        {"assortmentId": a, "quantity": "12"}, {"assortmentId": b, "quantity": None},
        {"assortmentId": c, "quantity": -4.5}, {"assortmentId": d, "quantity": 2},
    ])
    items = await make_source(sim, session, clock).fetch(ctx)
    assert [SourceItem(*i[:3]) for i in items] == [
        SourceItem("A", "12", a), SourceItem("B", None, b),
        SourceItem("C", -4.5, c), SourceItem("A", 2, d)]


@pytest.mark.parametrize("bad_row", [
    {"assortmentId": None, "quantity": 31},
    {"quantity": 31},
    {"assortmentId": ["x"], "quantity": 31},
    {"assortmentId": 12345, "quantity": 31},
    {"assortmentId": "  ", "quantity": 31},
    {"assortmentId": "9cc2e0\u0661\u0661-a1da-4f50-86b1-562e480865df", "quantity": 31},
    "junk",
    None,
])
async def test_a_report_row_without_its_product_fails_the_fetch(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock, ctx: RunContext,
    bad_row: object,
) -> None:
    # Issue 15: such a row was dropped and its product then read as absent = 0
    # (31 -> 0 written, run ok). Now nothing of the report is used.
    a = sim.add_product("A", stock=5)
    sim.add_product("B", stock=31)
    sim.inject(status=200, match="/report/stock",
               body=[{"assortmentId": a, "quantity": 5}, bad_row])
    with pytest.raises(ApiError, match=r"moysklad: report/stock/all/current: row 1 .*"
                                       r"cannot be attributed to a product"):
        await make_source(sim, session, clock).fetch(ctx)


async def test_a_product_listed_twice_with_other_figures_fails_the_fetch(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock, ctx: RunContext
) -> None:
    a = sim.add_product("A", stock=5)
    sim.inject(status=200, match="/report/stock", body=[
        {"assortmentId": a, "quantity": 5}, {"assortmentId": a, "quantity": 0}])
    with pytest.raises(ApiError, match="a second time with another quantity"):
        await make_source(sim, session, clock).fetch(ctx)


async def test_a_product_without_an_id_is_skipped_not_zero(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock, ctx: RunContext
) -> None:
    a = sim.add_product("A", stock=5)
    sim.add_product("B", stock=7)
    sim.inject(status=200, match="/entity/product", body={
        "meta": {"size": 2, "limit": 1000},
        "rows": [{"id": a, "article": "A"}, {"id": None, "article": "B"}]})
    items = await make_source(sim, session, clock).fetch(ctx)
    assert items == [SourceItem("A", 5, a), SourceItem("B", Unusable("no_product_id"), "")]
    assert judge_quantity(items[1].quantity).skip == "no_product_id"


async def test_a_page_failing_after_retries_fails_the_fetch(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock, ctx: RunContext
) -> None:
    sim.catalogue(2500, seed=2)
    trigger = Trigger("/entity/product", lambda: sim.inject(
        status=503, match="/entity/product", times=10))
    source = make_source(sim, session, clock, observer=trigger)
    with pytest.raises(ApiError):
        await source.fetch(ctx)
    statuses = [r.status for r in sim.requests if r.path.endswith("/entity/product")]
    # The first page answers; the other two are requested together and each
    # fails its three attempts (or is cancelled once the first one gave up).
    assert statuses[0] == 200 and set(statuses[1:]) == {503}
    assert 3 <= len(statuses) - 1 <= 6


async def test_a_failing_stock_report_fails_the_fetch(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock, ctx: RunContext
) -> None:
    sim.catalogue(10, seed=3)
    sim.inject(kind="truncate", match="/report/stock", times=3)
    with pytest.raises(ApiError):
        await make_source(sim, session, clock).fetch(ctx)
