"""The hostile answers of issue 15, each through a real job built from config."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from stocksyncd.clock import FakeClock
from stocksyncd.integrations.base import RunContext
from stocksyncd.integrations.registry import build
from stocksyncd.simulators.insales import InSalesSimulator
from stocksyncd.simulators.moysklad import MoySkladSimulator

from .test_fuzz_stock_jobs import DictState, Res, config_for

TOKEN = "ms-issue15-token-0123"


@pytest.fixture
async def ms(clock: FakeClock) -> AsyncIterator[MoySkladSimulator]:
    sim = MoySkladSimulator(token=TOKEN, clock=clock)
    await sim.start()
    yield sim
    await sim.stop()


def ctx(clock: FakeClock) -> RunContext:
    return RunContext(run_id="r", dry_run=False, state=DictState(), clock=clock)  # type: ignore[arg-type]


def written(shop: InSalesSimulator) -> dict[int, Any]:
    return {entry["id"]: entry["quantity"] for r in shop.requests
            if r.method == "PUT" and isinstance(r.body, dict) for entry in r.body["variants"]}


def moysklad_job(shop: InSalesSimulator, ms: MoySkladSimulator, res: Res,
                 name: str = "job") -> Any:
    config = config_for(shop, {"type": "moysklad-insales", "token": TOKEN,
                               "base_url": ms.base_url})
    return build("job", config.integrations["job"], config, res)


async def test_strange_numbers_are_skipped_by_reason_and_never_written(
    shop: InSalesSimulator, ms: MoySkladSimulator, session: aiohttp.ClientSession,
    clock: FakeClock,
) -> None:
    # "1_000" was written as 1000, "١٢" as 12, and 1e300 failed every run with
    # "TypeError: Integer exceeds 64-bit range".
    figures = {"A": "1_000", "B": "\u0661\u0662", "C": 1e300, "D": 8}
    ids = {sku: ms.add_product(sku, stock=1) for sku in figures}
    for sku in figures:
        shop.add_product([{"sku": sku, "quantity": 3}])
    body = json.dumps([{"assortmentId": ids[sku], "quantity": q} for sku, q in figures.items()])
    ms.inject(status=200, match="/report/stock", body=body.encode(), times=5)
    result = await moysklad_job(shop, ms, Res(session, clock)).run(ctx(clock))
    assert result.status == "ok", result.errors
    assert result.counts.skipped_by_reason == {"non_numeric": 2, "out_of_range": 1}
    assert list(written(shop).values()) == [8]


async def test_a_report_row_without_a_product_fails_the_run_and_writes_nothing(
    shop: InSalesSimulator, ms: MoySkladSimulator, session: aiohttp.ClientSession,
    clock: FakeClock,
) -> None:
    # The product whose row lost its assortmentId was written 0 (31 -> 0, run ok).
    a = ms.add_product("A", stock=31)
    ms.add_product("B", stock=4)
    shop.add_product([{"sku": "A", "quantity": 31}, {"sku": "B", "quantity": 1}])
    ms.inject(status=200, match="/report/stock", times=5,
              body=[{"assortmentId": None, "quantity": 31}, {"assortmentId": a, "quantity": 4}])
    result = await moysklad_job(shop, ms, Res(session, clock)).run(ctx(clock))
    assert result.status == "failed" and written(shop) == {}
    assert "moysklad: report/stock/all/current: row 0 has no usable assortmentId" in (
        result.errors[0])


async def test_a_huge_retry_after_fails_one_job_and_the_shops_other_job_goes_on(
    shop: InSalesSimulator, ms: MoySkladSimulator, session: aiohttp.ClientSession,
    clock: FakeClock,
) -> None:
    ms.add_product("A", stock=5)
    shop.add_product([{"sku": "A", "quantity": 1}])
    res = Res(session, clock)  # one runtime: the two jobs share the shop's limiter
    first, second = moysklad_job(shop, ms, res), moysklad_job(shop, ms, res)
    shop.inject(status=429, headers={"Retry-After": "100000"}, match="/admin/products.json")
    failed = await first.run(ctx(clock))
    assert failed.status == "failed" and written(shop) == {}
    assert any("the server asked to wait 100000s (HTTP 429), more than max_wait 300s" in e
               for e in failed.errors), failed.errors
    before = clock.monotonic()
    ok = await second.run(ctx(clock))
    assert ok.status == "ok", ok.errors
    assert written(shop) == {shop.variants()[0]["id"]: 5}
    assert clock.monotonic() - before < 5  # nobody waited for the 100000 s


async def test_moysklad_429s_with_no_wait_open_the_breaker_well_under_its_lock(
    shop: InSalesSimulator, ms: MoySkladSimulator, session: aiohttp.ClientSession,
    clock: FakeClock,
) -> None:
    # 215 refused requests in 60 s once; MoySklad locks the account at 200.
    ms.add_product("A", stock=5)
    shop.add_product([{"sku": "A", "quantity": 1}])
    ms.throttle(times=10_000, retry_after_ms=0)
    res = Res(session, clock)
    start = clock.monotonic()
    runs = [await moysklad_job(shop, ms, res).run(ctx(clock)) for _ in range(6)]
    assert all(r.status == "failed" for r in runs)
    refused = ms.count(contains="/")
    assert refused <= 25, refused  # 20 answers opened the breaker; later runs send nothing
    assert clock.monotonic() - start < 60
    assert any("circuit breaker" in e for r in runs for e in r.errors), runs[-1].errors
    assert "circuit breaker is open" in runs[-1].errors[0] and written(shop) == {}
