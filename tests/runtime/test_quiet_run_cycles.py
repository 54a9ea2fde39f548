"""A quiet Kak2c -> InSales run, as the daemon makes it, leaves no reference cycles.

The daemon collects cyclic garbage rarely (runtime/heap.py): whatever an
every-minute run leaves in cycles piles up for hours (idle RSS grew about
9 MiB an hour). Built as the daemon builds it: its log sink, its metrics,
the state store behind the shared resources, SQLite on a fake clock.
"""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from loguru import logger

from stocksyncd.clock import FakeClock
from stocksyncd.config import Config
from stocksyncd.integrations import registry
from stocksyncd.runtime.executor import Executor, run_deadline
from stocksyncd.runtime.logs import setup_logging
from stocksyncd.runtime.metrics import Metrics
from stocksyncd.runtime.resources import SharedResources
from stocksyncd.simulators.insales import InSalesSimulator
from stocksyncd.simulators.kak2c import Kak2cSimulator
from stocksyncd.state import open_store
from tests.cycles import cyclic_garbage

KEY, PASSWORD = "shop-key", "shop-password"
LOGIN = "ops@example.com"
VARIANTS = 200
RUNS = 5


@pytest.fixture
async def sims(clock: FakeClock) -> AsyncIterator[tuple[InSalesSimulator, Kak2cSimulator]]:
    insales = InSalesSimulator(api_key=KEY, password=PASSWORD, clock=clock)
    kak2c = Kak2cSimulator(login=LOGIN, password=PASSWORD, clock=clock)
    insales.catalogue(VARIANTS, seed=7)
    # Kak2c holds the same stock: every run is quiet (nothing to write).
    for v in insales.variants():
        if v.get("barcode") and v.get("quantity") is not None:
            kak2c.add_product([kak2c.make_variant(str(v["barcode"]), int(str(v["quantity"])))])
    clock.advance(86400.0)
    await insales.start()
    await kak2c.start()
    yield insales, kak2c
    await insales.stop()
    await kak2c.stop()


async def test_quiet_runs_leave_no_cyclic_garbage(
    sims: tuple[InSalesSimulator, Kak2cSimulator], clock: FakeClock, tmp_path: Path,
) -> None:
    insales, kak2c = sims
    config = Config(
        daemon={"state_url": f"sqlite:///{tmp_path / 'state.db'}", "replica": "test"},
        shops={"main": {"url": insales.url, "api_key": KEY, "password": PASSWORD}},
        integrations={"fulfilment": {"type": "kak2c-insales", "shop": "main", "login": LOGIN,
                                     "password": PASSWORD, "base_url": kak2c.base_url}},
    )
    setup_logging("INFO", "text", stream=io.StringIO())
    state = await open_store(config.daemon.state_url, clock=clock)
    metrics = Metrics()
    resources = SharedResources(clock=clock, observer=metrics, state=state)
    cfg = config.integrations["fulfilment"]
    res = resources.for_integration("fulfilment")
    integration = registry.build("fulfilment", cfg, config, res)
    executor = Executor(state=state, clock=clock, replica="test", metrics=metrics)
    booted = clock.now()

    async def minute() -> str:
        result = await executor.run(integration, trigger="schedule", dry_run=False,
                                    deadline=run_deadline(cfg, cfg.type), observer=res.counter)
        await state.heartbeat("test", started_at=booted, version="1",
                              info={"integrations": ["fulfilment"]})
        clock.advance(60.0)
        return f"{result.status} written={result.counts.written}"

    try:
        # The first runs read the catalogue and fill caches (compiled statements, pools).
        assert [await minute() for _ in range(3)][-1] == "ok written=0"
        with cyclic_garbage() as cycles:
            outcomes = [await minute() for _ in range(RUNS)]
        assert outcomes == ["ok written=0"] * RUNS
        assert cycles.found == 0
    finally:
        await integration.close()
        await resources.close()
        await state.close()
        logger.remove()
        logging.basicConfig(handlers=[], force=True)
