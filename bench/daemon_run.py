"""One stocksyncd process doing MoySklad -> InSales runs against the simulator processes.

``python -m bench.daemon_run SIMS_JSON`` builds the ``moysklad-insales``
integration exactly as the daemon does (config, shared sessions and
limiters, SQLite state, the run executor that records every run), runs it
once with no InSales index ("cold": a full scan that knows nothing of the
shop), then asks the simulators to change another share of the stock and runs
again with the index kept in the state store ("warm": an incremental scan),
then once more after the stored index is made an hour old ("hourly": the full
refresh the job makes every hour, which knows the shop's size from the last
one). Prints one JSON object: per run the wall time, CPU seconds of this
process, requests by API, counts; and the peak RSS of the process.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from loguru import logger

from bench import scenario


def control(url: str, path: str, method: str = "GET") -> Any:
    """Call the simulators' control endpoint."""
    req = urllib.request.Request(url + path, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main_async(sims: dict[str, Any], warm_share: float) -> dict[str, Any]:
    from stocksyncd.config import Config
    from stocksyncd.integrations import registry
    from stocksyncd.runtime.executor import Executor, run_deadline
    from stocksyncd.runtime.heap import settle_heap
    from stocksyncd.runtime.resources import SharedResources
    from stocksyncd.state import open_store

    out: dict[str, Any] = {"runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        config = Config(
            daemon={"state_url": f"sqlite:///{Path(tmp) / 'state.db'}", "replica": "bench"},
            shops={"main": {"url": sims["insales"], "api_key": scenario.INSALES_KEY,
                            "password": scenario.INSALES_PASSWORD}},
            integrations={"warehouse": {
                "type": "moysklad-insales", "shop": "main", "token": scenario.MOYSKLAD_TOKEN,
                # Default settings: the daemon budgets MoySklad's announced weight
                # of the day (``request_weight`` unset), above what the simulator
                # charges (2), as in production.
                "base_url": sims["moysklad"],
            }},
        )
        state = await open_store(config.daemon.state_url)
        resources = SharedResources()
        cfg = config.integrations["warehouse"]
        res = resources.for_integration("warehouse")
        integration = registry.build("warehouse", cfg, config, res)
        executor = Executor(state=state, clock=resources.clock, replica="bench")
        settle_heap()  # as the daemon does once it has started
        out["rss_before_mib"] = rss_mib()
        try:
            for seed, label in enumerate(("cold", "warm", "hourly"), start=1):
                if label != "cold":
                    # An hourly job finds MoySklad's 3-second budget full again.
                    await asyncio.sleep(3.5)
                    changed = control(sims["control"],
                                      f"/mutate?share={warm_share}&seed={seed}", "POST")["changed"]
                else:
                    changed = sims["facts"]["changed"]
                if label == "hourly":
                    await _age_index(state, integration)
                control(sims["control"], "/reset", "POST")
                cpu0, wall0 = time.process_time(), time.perf_counter()
                result = await executor.run(
                    integration, trigger="cli", dry_run=False,
                    deadline=run_deadline(cfg, cfg.type), observer=res.counter,
                )
                wall = time.perf_counter() - wall0
                cpu = time.process_time() - cpu0
                seen = control(sims["control"], "/counts")
                out["runs"].append({
                    "run": label, "status": result.status, "message": result.message,
                    "errors": result.errors[:5], "wall_s": wall, "cpu_s": cpu,
                    "changed_in_source": changed,
                    "counts": result.to_json()["counts"],
                    "requests": seen,
                    "index_mode": result.details.get("index_mode"),
                    "index_pages": result.details.get("index_pages"),
                    "batches": result.details.get("batches", 0),
                })
        finally:
            await integration.close()
            await resources.close()
            await state.close()
    out["peak_rss_mib"] = rss_mib()
    return out


async def _age_index(state: Any, integration: Any) -> None:
    """Make the stored InSales index an hour old: the next run is the hourly full refresh."""
    from stocksyncd.integrations.stock.index import INDEX_SCOPE

    stored = await state.get_value(INDEX_SCOPE, integration.index_key)
    stored["full_at"] -= 3600
    await state.set_value(INDEX_SCOPE, integration.index_key, stored)


def main() -> None:
    logger.remove()  # the benchmark reads the result, not the logs
    sims = json.loads(sys.argv[1])
    share = float(sys.argv[2]) if len(sys.argv) > 2 else 0.05
    print(json.dumps(asyncio.run(main_async(sims, share))), flush=True)


if __name__ == "__main__":
    main()
