"""``stocksyncd sync`` as a user runs it: a whole process, start-up included.

``python -m bench.sync_run SIMS_JSON`` writes a config on default settings
(MoySklad -> InSales, SQLite state in a temporary directory) and times
``python -m stocksyncd --config ... sync warehouse --json`` from process start to
exit: once with no stored InSales index ("cold"), then after another 5% of the
MoySklad stock changed ("warm"). Prints one JSON object.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import scenario
from bench.daemon_run import control

ROOT = Path(__file__).resolve().parent.parent


def config_text(sims: dict[str, Any], state: Path) -> str:
    return "\n".join([
        "[daemon]", f'state_url = "sqlite:///{state}"', 'replica = "bench"',
        "[web]", "enabled = false",
        "[shops.main]", f'url = "{sims["insales"]}"', f'api_key = "{scenario.INSALES_KEY}"',
        f'password = "{scenario.INSALES_PASSWORD}"',
        "[integrations.warehouse]", 'type = "moysklad-insales"', 'shop = "main"',
        f'token = "{scenario.MOYSKLAD_TOKEN}"', f'base_url = "{sims["moysklad"]}"',
    ]) + "\n"


def timed_sync(cfg: Path) -> dict[str, Any]:
    """One ``sync`` process: wall seconds from spawn to exit, and what it reported."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "stocksyncd", "--config", str(cfg), "sync", "warehouse",
         "--json"], cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    lines = done.stdout.strip().splitlines()
    report = json.loads(lines[-1]) if lines else {}
    return {"wall_s": wall, "exit": done.returncode, "status": report.get("status"),
            "duration_s": report.get("duration_s"), "written": report.get("counts", {}).get(
                "written")}


def main() -> None:
    sims = json.loads(sys.argv[1])
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "config.toml"
        cfg.write_text(config_text(sims, Path(tmp) / "state.db"))
        runs = {"cold": timed_sync(cfg)}
        time.sleep(3.5)  # MoySklad's 3-second budget window is full again
        control(sims["control"], "/mutate?share=0.05&seed=2", "POST")
        runs["warm"] = timed_sync(cfg)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "stocksyncd", "--version"], cwd=ROOT,
                       capture_output=True, check=True)
        runs["start_up_only"] = {"wall_s": time.perf_counter() - started}
    print(json.dumps(runs), flush=True)


if __name__ == "__main__":
    main()
