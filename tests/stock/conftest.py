"""Fixtures for the stock pipeline tests: an InSales simulator, a list source, fake state."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from stock_fakes import DictState, FakeResources, ListSource

from stocksyncd.clock import FakeClock
from stocksyncd.config import ShopConfig, StockSyncOptions
from stocksyncd.integrations.base import RunContext
from stocksyncd.integrations.stock.pipeline import StockSyncIntegration, build_stock_integration
from stocksyncd.simulators.insales import InSalesSimulator


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[InSalesSimulator]:
    simulator = InSalesSimulator(clock=clock)
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
def state() -> DictState:
    return DictState()


@pytest.fixture
def resources(session: aiohttp.ClientSession, clock: FakeClock) -> FakeResources:
    return FakeResources(session, clock)


Factory = Callable[..., StockSyncIntegration]


@pytest.fixture
def make_integration(sim: InSalesSimulator, resources: FakeResources) -> Factory:
    """Build the kak2c-style integration (barcode key) against the simulator."""

    def make(source: ListSource, **options: Any) -> StockSyncIntegration:
        cfg = StockSyncOptions(shop="main", **options)
        shop = ShopConfig(url=sim.url, api_key=sim.api_key, password=sim.password)  # type: ignore[arg-type]
        integration = build_stock_integration("fulfilment", "kak2c-insales", cfg, "main", shop,
                                              source, resources)
        assert isinstance(integration, StockSyncIntegration)
        return integration

    return make


ContextFactory = Callable[..., RunContext]


@pytest.fixture
def make_ctx(state: DictState, clock: FakeClock) -> ContextFactory:
    """Run contexts over the fake state and the fake clock."""

    def make(*, dry_run: bool = False, run_id: str = "r1") -> RunContext:
        return RunContext(run_id=run_id, dry_run=dry_run, state=state,  # type: ignore[arg-type]
                          clock=clock)

    return make
