"""build() of both stock integrations: wiring, and one full run against the simulators."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from stocksyncd.clock import FakeClock
from stocksyncd.config import Config
from stocksyncd.http.ratelimit import RateLimiter
from stocksyncd.integrations.base import RunContext
from stocksyncd.integrations.registry import build
from stocksyncd.simulators.insales import InSalesSimulator
from stocksyncd.simulators.kak2c import Kak2cSimulator
from stocksyncd.simulators.moysklad import MoySkladSimulator
from stocksyncd.state import StateStore, open_store


class Res:
    """The runtime's resources, reduced to what a factory asks for."""

    def __init__(self, session: aiohttp.ClientSession, clock: FakeClock) -> None:
        self.clock = clock
        self.observer = None
        self._session = session
        self.sessions: list[str] = []
        self.limiters: dict[str, RateLimiter] = {}

    def session(self, upstream: str, *, limit_per_host: int = 10,
                proxy: str | None = None) -> aiohttp.ClientSession:
        self.sessions.append(upstream)
        return self._session

    def limiter(self, key: str, factory: Callable[[], RateLimiter]) -> RateLimiter:
        return self.limiters.setdefault(key, factory())


@pytest.fixture
async def state(tmp_path: Path, clock: FakeClock) -> AsyncIterator[StateStore]:
    store = await open_store(f"sqlite:///{tmp_path}/state.db", clock=clock)
    yield store
    await store.close()


@pytest.fixture
async def shop(clock: FakeClock) -> AsyncIterator[InSalesSimulator]:
    sim = InSalesSimulator(clock=clock)
    await sim.start()
    yield sim
    await sim.stop()


def config(shop: InSalesSimulator, integration: dict[str, Any]) -> Config:
    return Config(
        shops={"main": {"url": shop.url, "api_key": shop.api_key, "password": shop.password}},
        integrations={"job": {"shop": "main", **integration}},
    )


async def test_moysklad_insales_run_writes_changed_skus(
    session: aiohttp.ClientSession, clock: FakeClock, shop: InSalesSimulator,
    state: StateStore,
) -> None:
    shop.add_product([{"sku": "TS-RED-M", "quantity": 1}, {"sku": "TS-RED-L", "quantity": 4},
                      {"sku": "OTHER", "quantity": 2}])
    ms = MoySkladSimulator(token="ms-build-token", clock=clock)
    await ms.start()
    try:
        ms.add_product("TS-RED-M", stock=11)
        ms.add_product("TS-RED-L")  # never moved: 0
        cfg = config(shop, {"type": "moysklad-insales", "token": ms.token,
                            "base_url": ms.base_url, "zero_guard": 1.0})
        res = Res(session, clock)
        integration = build("job", cfg.integrations["job"], cfg, res)
        assert (integration.name, integration.type) == ("job", "moysklad-insales")
        assert "moysklad" in res.sessions and "moysklad:job" in res.limiters
        assert integration.source.client.weight == 2.0  # type: ignore[attr-defined]
        weighted = build("w", config(shop, {
            "type": "moysklad-insales", "token": ms.token, "base_url": ms.base_url,
            "request_weight": 1}).integrations["job"], cfg, res)
        assert weighted.source.client.weight == 1.0  # type: ignore[attr-defined]

        result = await integration.run(RunContext(run_id="r1", dry_run=False, state=state,
                                                  clock=clock))
        await integration.close()
    finally:
        await ms.stop()
    assert result.status == "ok", result.errors
    assert {c.key: c.new for c in result.changes} == {"TS-RED-M": "11", "TS-RED-L": "0"}
    assert sorted(v["quantity"] for v in shop.variants()) == [0, 2, 11]


async def test_kak2c_insales_run_writes_changed_barcodes(
    session: aiohttp.ClientSession, clock: FakeClock, shop: InSalesSimulator,
    state: StateStore,
) -> None:
    shop.add_product([{"barcode": "4600000000011", "quantity": 0},
                      {"barcode": "4600000000012", "quantity": 5}])
    k2 = Kak2cSimulator(login="fulfil@example.com", password="kak2c-pass", clock=clock)
    await k2.start()
    try:
        k2.add_product([k2.make_variant("4600000000011", 8), k2.make_variant("4600000000012", 5)])
        cfg = config(shop, {"type": "kak2c-insales", "login": k2.login,
                            "password": k2.password, "base_url": k2.base_url})
        res = Res(session, clock)
        integration = build("job", cfg.integrations["job"], cfg, res)
        assert "kak2c" in res.sessions and "kak2c:job" in res.limiters
        result = await integration.run(RunContext(run_id="r1", dry_run=False, state=state,
                                                  clock=clock))
        await integration.close()
    finally:
        await k2.stop()
    assert result.status == "ok", result.errors
    assert {c.key: c.new for c in result.changes} == {"4600000000011": "8"}
    assert k2.logins == 1
