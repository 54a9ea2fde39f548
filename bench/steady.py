"""Steady state of the every-minute Kak2c -> InSales job: InSales requests per run.

Runs in one process on a shared ``FakeClock`` that moves one minute between
runs, so an hour of one-minute cadence takes seconds and the InSales budget
(500 requests per 5 minutes, counted on that clock) sees the real spacing.
Simulator latency is 0 here: it changes nothing in the counts. Besides
requests, each run's bytes of JSON stored in the state store (the InSales
index: its header, the pieces that changed, the pending writes) are counted.

Sequence per catalogue size: a cold run (full scan, 5% written), then
"after writes" (no source change; it reads the cold run's writes back),
"after writes (next)" and "quiet" (no change since: one read each), and five runs in a row
with 5% of the stock changed before each ("5%/min", the last one reported).
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import orjson
from loguru import logger

from bench import scenario
from bench.sims import counts
from stocksyncd.clock import FakeClock
from stocksyncd.simulators.insales import InSalesSimulator
from stocksyncd.simulators.kak2c import Kak2cSimulator

CADENCE = 60.0
SHARE = 0.05


def _count_stored_bytes(state: Any) -> dict[str, int]:
    """Count the JSON bytes of every ``set_value`` on ``state`` (the InSales index)."""
    seen = {"bytes": 0}
    real = state.set_value

    async def counting(scope: str, key: str, value: Any) -> None:
        seen["bytes"] += len(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS))
        await real(scope, key, value)

    state.set_value = counting
    return seen


async def steady(size: int, seed: int = 1) -> dict[str, Any]:
    from stocksyncd.config import Config
    from stocksyncd.integrations import registry
    from stocksyncd.runtime.executor import Executor, run_deadline
    from stocksyncd.runtime.resources import SharedResources
    from stocksyncd.state import open_store

    logger.remove()
    clock = FakeClock()
    insales = InSalesSimulator(api_key=scenario.INSALES_KEY, password=scenario.INSALES_PASSWORD,
                               clock=clock)
    kak2c = Kak2cSimulator(login=scenario.KAK2C_LOGIN, password=scenario.KAK2C_PASSWORD,
                           clock=clock)
    variants = scenario.shop(insales, size, seed)
    mirror, facts = scenario.kak2c_mirror(kak2c, variants, SHARE, seed)
    clock.advance(86400.0)  # the catalogue was last touched a day ago
    await insales.start()
    await kak2c.start()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(
            daemon={"state_url": f"sqlite:///{Path(tmp) / 'state.db'}", "replica": "bench"},
            shops={"main": {"url": insales.url, "api_key": scenario.INSALES_KEY,
                            "password": scenario.INSALES_PASSWORD}},
            integrations={"fulfilment": {
                "type": "kak2c-insales", "shop": "main", "login": scenario.KAK2C_LOGIN,
                "password": scenario.KAK2C_PASSWORD, "base_url": kak2c.base_url,
            }},
        )
        state = await open_store(config.daemon.state_url, clock=clock)
        stored = _count_stored_bytes(state)
        resources = SharedResources(clock=clock)
        cfg = config.integrations["fulfilment"]
        res = resources.for_integration("fulfilment")
        integration = registry.build("fulfilment", cfg, config, res)
        executor = Executor(state=state, clock=clock, replica="bench")
        # A write is read back by the next run; the one after reads only the
        # window's changes again (none here).
        plan = (["cold", "after writes", "after writes (next)", "quiet"]
                + [f"5%/min #{i}" for i in range(1, 6)])
        try:
            for n, label in enumerate(plan):
                changed = facts.changed if label == "cold" else 0
                if label.startswith("5%"):
                    changed = scenario.mutate_kak2c(kak2c, mirror, SHARE, seed=100 + n)
                if n:
                    # Runs start every minute; a run that took t seconds (of virtual
                    # time: the Kak2c limiter's waits) leaves 60 - t to wait.
                    clock.advance(max(0.0, CADENCE - runs[-1]["duration_s"]))
                insales.requests.clear()
                stored["bytes"] = 0
                result = await executor.run(
                    integration, trigger="schedule", dry_run=False,
                    deadline=run_deadline(cfg, cfg.type), observer=res.counter,
                )
                seen = counts(insales)
                # Products whose variants this run wrote: the next runs read them back.
                products = len({insales._variant_product.get(int(c.ref))
                                for c in result.changes if c.applied})
                runs.append({
                    "run": label, "status": result.status, "changed": changed,
                    "written": result.counts.written,
                    "insales": seen,
                    "index_mode": result.details.get("index_mode"),
                    "index_pages": result.details.get("index_pages"),
                    "batches": result.details.get("batches", 0),
                    "products_written": products,
                    # The budget for a minute that changed this much.
                    "target": 2 + math.ceil(changed / 100) + math.ceil(products / 250),
                    "duration_s": result.duration_s,
                    # JSON the run stored besides its own record: the InSales index.
                    "state_bytes": stored["bytes"],
                })
        finally:
            await integration.close()
            await resources.close()
            await state.close()
            await insales.stop()
            await kak2c.stop()
    last5 = sum(r["insales"]["total"] for r in runs[-5:])
    return {"size": size, "facts": facts.__dict__, "runs": runs,
            "insales_last_5_runs": last5}


if __name__ == "__main__":
    import asyncio
    import json
    import sys

    print(json.dumps(asyncio.run(steady(int(sys.argv[1])))))
