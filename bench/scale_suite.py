"""``python -m bench --scale``: the scale measurements, one after another.

Heavy: 300 jobs of 10k variants keep a 2-core machine busy; each step is its own
set of processes, so nothing is shared between them but the disk.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STEPS: tuple[tuple[str, ...], ...] = (
    ("bench.kak2c_paging", "--size", "100000"),
    ("bench.kak2c_paging", "--size", "100000", "--latency", "0.3", "--page-sizes", "500",
     "--concurrency", "1,2,4"),
    ("bench.references", "--size", "10000"),
    ("bench.heartbeat_bytes",),
    ("bench.scale", "--jobs", "300", "--schedule", "every"),
    ("bench.scale", "--jobs", "300", "--schedule", "cron"),
    ("bench.scale", "--jobs", "600", "--replicas", "2", "--schedule", "every"),
)


def run_suite(latency: float) -> None:
    """Run every step (each writes its own bench/results/*.json)."""
    for module, *args in STEPS:
        print(f"{module} {' '.join(args)} ...", flush=True)
        given = "--latency" in args or module == "bench.heartbeat_bytes"
        extra = [] if given else ["--latency", str(latency)]
        subprocess.run([sys.executable, "-m", module, *args, *extra],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
