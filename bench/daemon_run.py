"""One stocksyncd process doing MoySklad -> InSales runs against the simulator processes.

``python -m bench.daemon_run SIMS_JSON`` builds the ``moysklad-insales``
integration exactly as the daemon does (config, shared sessions and
limiters, SQLite state, the run executor that records every run), runs it
once with no InSales index ("cold": a full scan that knows nothing of the
shop), then asks the simulators to change another share of the stock and runs
again with the index kept in the state store ("warm": an incremental scan),
then once more after the stored indexes are made an hour old ("hourly": the
full refresh the job makes every hour, which knows the shop's size from the
last one). The warm run reads MoySklad by a changed-since window. Prints one
JSON object: per run the wall time, CPU seconds of this process, requests by
API, counts; and the peak RSS of the process.
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


def warehouse_config(sims: dict[str, Any], state_dir: Path, weight: float | None = None) -> Any:
    """The config of one ``moysklad-insales`` job ("warehouse") against the simulators.

    ``weight`` None: default settings, the daemon budgets MoySklad's announced
    weight of the day, above what the simulator charges (2), as in production.
    """
    from stocksyncd.config import Config

    job: dict[str, Any] = {"type": "moysklad-insales", "shop": "main",
                           "token": scenario.MOYSKLAD_TOKEN, "base_url": sims["moysklad"]}
    if weight is not None:
        job["request_weight"] = weight
    return Config(
        daemon={"state_url": f"sqlite:///{state_dir / 'state.db'}", "replica": "bench"},
        shops={"main": {"url": sims["insales"], "api_key": scenario.INSALES_KEY,
                        "password": scenario.INSALES_PASSWORD}},
        integrations={"warehouse": job},
    )


async def main_async(sims: dict[str, Any], warm_share: float) -> dict[str, Any]:
    from stocksyncd.integrations import registry
    from stocksyncd.runtime.executor import Executor
    from stocksyncd.runtime.heap import settle_heap
    from stocksyncd.runtime.resources import SharedResources
    from stocksyncd.state import open_store

    out: dict[str, Any] = {"runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        # Default settings (``request_weight`` unset), as in production.
        config = warehouse_config(sims, Path(tmp))
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
                result, timed = await timed_run(executor, integration, res, sims["control"],
                                                "cli")
                seen = timed["requests"]
                out["runs"].append({
                    "run": label, "status": result.status, "message": result.message,
                    "errors": result.errors[:5], "wall_s": timed["wall_s"],
                    "cpu_s": timed["cpu_s"], "changed_in_source": changed,
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


async def timed_run(executor: Any, integration: Any, res: Any, control_url: str,
                    trigger: str) -> tuple[Any, dict[str, Any]]:
    """One run with the simulators' request counts reset first: the result, and its
    wall time, CPU seconds of this process and requests by API."""
    from stocksyncd.runtime.executor import run_deadline

    cfg = integration.cfg
    control(control_url, "/reset", "POST")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = await executor.run(integration, trigger=trigger, dry_run=False,
                                deadline=run_deadline(cfg, integration.type),
                                observer=res.counter)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return result, {"wall_s": wall, "cpu_s": cpu, "requests": control(control_url, "/counts")}


async def _age_index(state: Any, integration: Any) -> None:
    """Make the stored InSales index an hour old: the next run is the hourly full refresh."""
    from stocksyncd.integrations.stock.stored import INDEX_SCOPE

    stored = await state.get_value(INDEX_SCOPE, integration.index_key)
    stored["full_at"] -= 3600
    await state.set_value(INDEX_SCOPE, integration.index_key, stored)
    # The copy the integration keeps in memory is that stored copy: age it alike.
    if integration._index is not None:
        integration._index.full_at -= 3600
    # The MoySklad source index too: the hourly run reads both sides in full.
    from stocksyncd.integrations.moysklad_index import SCOPE

    header = await state.get_value(SCOPE, integration.name)
    if header is not None:
        header["full_at"] -= 3600
        await state.set_value(SCOPE, integration.name, header)


def main() -> None:
    logger.remove()  # the benchmark reads the result, not the logs
    sims = json.loads(sys.argv[1])
    share = float(sys.argv[2]) if len(sys.argv) > 2 else 0.05
    print(json.dumps(asyncio.run(main_async(sims, share))), flush=True)


if __name__ == "__main__":
    main()
