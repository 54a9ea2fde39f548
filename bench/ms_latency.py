"""MoySklad -> InSales every minute: from a stock change in MoySklad to the figure in InSales.

``python -m bench.ms_latency SIMS_JSON`` (started by ``python -m bench
--moysklad-latency``) builds the ``moysklad-insales`` job exactly as the
daemon does, with the default schedule (every minute) and the December 2026
user-token weight budgeted (4 units a request), and runs it against the
simulator processes:

* ``cold``: nothing stored, both sides read in full;
* ``after cold``: 55 s later, it reads the cold run's writes back (confirms them);
* ``quiet``: nothing changed since: what an ordinary minute costs;
* ``one``: one item's stock changed in MoySklad just before the run;
* ``1%``: 1% of the stock changed;
* ``hourly``: the source index made an hour old: the full read the job makes
  every ``source_full_refresh``.

Between runs 3.5 s pass, so MoySklad's 3-second budget has refilled, as it has
a minute later. A change waits for the next run (at most one interval, the
default 60 s) and then for that run: the latency from a change in MoySklad
to the figure in InSales is at most ``interval + run`` and on average
``interval / 2 + run``. After ``one`` the benchmark reads the variant back
from InSales to see the new figure there. Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from loguru import logger

from bench.daemon_run import control, rss_mib, timed_run, warehouse_config

WEIGHT_DEC_2026 = 4.0  # a user token's weight from 1 December 2026
RUNS = ("cold", "after cold", "quiet", "one", "1%", "hourly")
# Before "after cold": InSales' window opens 51 s before the previous scan, so
# only once that long has passed are the cold run's writes read back by one run
# (as a minute apart) rather than by every run 3.5 s apart.
SETTLE_AFTER_COLD = 55.0


async def main_async(sims: dict[str, Any]) -> dict[str, Any]:
    from stocksyncd.config import effective_every
    from stocksyncd.integrations import registry
    from stocksyncd.integrations.moysklad_index import SCOPE
    from stocksyncd.runtime.executor import Executor
    from stocksyncd.runtime.heap import settle_heap
    from stocksyncd.runtime.resources import SharedResources
    from stocksyncd.state import open_store

    out: dict[str, Any] = {"runs": []}
    size = sims["facts"]["source_items"]
    with tempfile.TemporaryDirectory() as tmp:
        config = warehouse_config(sims, Path(tmp), WEIGHT_DEC_2026)
        cfg = config.integrations["warehouse"]
        out["every_s"] = effective_every(cfg, cfg.type)
        state = await open_store(config.daemon.state_url)
        resources = SharedResources()
        res = resources.for_integration("warehouse")
        integration = registry.build("warehouse", cfg, config, res)
        executor = Executor(state=state, clock=resources.clock, replica="bench")
        settle_heap()
        try:
            for seed, label in enumerate(RUNS, start=1):
                changed = sims["facts"]["changed"] if label == "cold" else 0
                if label != "cold":
                    await asyncio.sleep(SETTLE_AFTER_COLD if label == "after cold" else 3.5)
                if label == "one":
                    changed = control(sims["control"], f"/mutate?share={1.0 / size}&seed={seed}",
                                      "POST")["changed"]
                elif label == "1%":
                    changed = control(sims["control"], f"/mutate?share=0.01&seed={seed}",
                                      "POST")["changed"]
                elif label == "hourly":
                    header = await state.get_value(SCOPE, "warehouse")
                    assert isinstance(header, dict)
                    header["full_at"] -= 3600
                    await state.set_value(SCOPE, "warehouse", header)
                before = datetime.now(UTC) - timedelta(seconds=2)
                result, timed = await timed_run(executor, integration, res, sims["control"],
                                                "schedule")
                run: dict[str, Any] = {
                    "run": label, "status": result.status, "message": result.message,
                    "errors": result.errors[:5], **timed,
                    "changed_in_source": changed, "written": result.counts.written,
                    "source_mode": result.details.get("source_mode"),
                    "index_mode": result.details.get("index_mode"),
                }
                if label == "one":
                    run["visible_in_insales"] = await _visible(integration, result, before)
                out["runs"].append(run)
        finally:
            await integration.close()
            await resources.close()
            await state.close()
    out["peak_rss_mib"] = rss_mib()
    return out


async def _visible(integration: Any, result: Any, since: datetime) -> bool:
    """Read the written variants back from InSales: do they show the new figures?"""
    written = {int(c.ref): c.new for c in result.changes if c.applied}
    if not written:
        return False
    answer = await integration.client.transport.request(
        "GET", "/admin/products.json",
        params={"updated_since": since.isoformat(timespec="seconds"), "per_page": 250},
        expect_json=True)
    seen = {v["id"]: str(int(float(v.get("quantity") or 0)))
            for product in answer.json() for v in product["variants"] if v["id"] in written}
    return seen == written


def main() -> None:
    logger.remove()  # the benchmark reads the result, not the logs
    print(json.dumps(asyncio.run(main_async(json.loads(sys.argv[1])))), flush=True)


if __name__ == "__main__":
    main()
