"""CPU and state-store writes of a quiet minute of the stock job, besides fetching the source.

One process, a ``FakeClock`` moved a minute between runs: the InSales
simulator holds N variants, the source hands over the same figures as a
ready list (what a source's ``fetch`` returns; parsing its HTTP answers is
the source client's cost and not counted here), the state store is a dict
that counts the JSON bytes written. After a cold run and the run that
reads its writes back (and one more), quiet runs are timed with ``time.process_time``: one
InSales read, the match and plan of all N variants, the stored header.

The cyclic collector is handled as the daemon handles it: start-up objects
frozen once (``settle_heap``), no automatic collection while a run is in
progress (``collection_paused``). Left on Python's defaults it would walk the
100k-variant index several times a run, a cost the daemon does not pay.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import aiohttp
import orjson
from loguru import logger

from stocksyncd.clock import FakeClock
from stocksyncd.config import ShopConfig, StockSyncOptions
from stocksyncd.http.ratelimit import RateLimiter
from stocksyncd.integrations.base import RunContext
from stocksyncd.integrations.stock.model import SourceItem
from stocksyncd.integrations.stock.pipeline import StockSyncIntegration, build_stock_integration
from stocksyncd.runtime.heap import collection_paused, settle_heap
from stocksyncd.simulators.insales import InSalesSimulator


class _State:
    def __init__(self) -> None:
        self.values: dict[tuple[str, str], Any] = {}
        self.bytes = 0

    async def get_value(self, scope: str, key: str) -> Any:
        return self.values.get((scope, key))

    async def set_value(self, scope: str, key: str, value: Any) -> None:
        self.bytes += len(orjson.dumps(value))
        self.values[(scope, key)] = value

    async def delete_value(self, scope: str, key: str) -> None:
        self.values.pop((scope, key), None)


class _Source:
    api = "source"

    def __init__(self, items: list[SourceItem]) -> None:
        self.items = items

    async def fetch(self, ctx: RunContext) -> list[SourceItem]:
        return self.items

    def requests_made(self) -> int:
        return 0


class _Resources:
    def __init__(self, session: aiohttp.ClientSession, clock: FakeClock) -> None:
        self.clock, self.observer, self.state = clock, None, None
        self._session = session
        self._limiters: dict[str, RateLimiter] = {}

    def session(self, upstream: str, *, limit_per_host: int = 10,
                proxy: str | None = None) -> aiohttp.ClientSession:
        return self._session

    def limiter(self, key: str, factory: Any) -> RateLimiter:
        return self._limiters.setdefault(key, factory())


async def quiet(size: int, runs: int = 5) -> dict[str, Any]:
    logger.remove()
    clock = FakeClock()
    sim = InSalesSimulator(clock=clock)
    sim.catalogue(size, seed=1)
    clock.advance(86400.0)
    await sim.start()
    state = _State()
    items = [SourceItem(v["barcode"], v["quantity"], str(v["id"])) for v in sim.variants()
             if v["barcode"] and v["quantity"] is not None]
    items[0] = items[0]._replace(quantity=int(str(items[0].quantity)) + 1)  # one write, read back
    try:
        async with aiohttp.ClientSession() as session:
            shop = ShopConfig(url=sim.url, api_key=sim.api_key,  # type: ignore[arg-type]
                              password=sim.password)  # type: ignore[arg-type]
            job = build_stock_integration("bench", "kak2c-insales",
                                          StockSyncOptions(shop="main"), "main", shop,
                                          _Source(items),
                                          _Resources(session, clock))  # type: ignore[arg-type]
            assert isinstance(job, StockSyncIntegration)
            settle_heap()  # as the daemon does once it has started
            out: list[dict[str, Any]] = []
            for n in range(3 + runs):
                ctx = RunContext(run_id=f"r{n}", dry_run=False, state=state,  # type: ignore[arg-type]
                                 clock=clock)
                state.bytes = 0
                before = len(sim.requests)
                t0 = time.process_time()
                with collection_paused():
                    result = await job.run(ctx)
                cpu = time.process_time() - t0
                out.append({"run": n, "status": result.status, "cpu_s": cpu,
                            "insales": len(sim.requests) - before,
                            "state_bytes": state.bytes, "mode": result.details["index_mode"],
                            "written": result.counts.written})
                clock.advance(60.0)
    finally:
        await sim.stop()
    timed = out[3:]
    return {"variants": size, "runs": out,
            "quiet_cpu_s_median": sorted(r["cpu_s"] for r in timed)[len(timed) // 2],
            "quiet_cpu_s_max": max(r["cpu_s"] for r in timed),
            "quiet_state_bytes_max": max(r["state_bytes"] for r in timed),
            "quiet_insales_max": max(r["insales"] for r in timed)}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(quiet(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))))
