"""Bytes an hour of heartbeats writes to the state store.

    python -m bench.heartbeat_bytes [--jobs 300]

One hour of 15-second beats (on a fake clock, so it takes a second) from a
replica with ``--jobs`` integrations, into a fresh SQLite store; the bytes
appended to its write-ahead log are what the disk receives. Compared: every
beat rewriting the whole row (the job list included), as before, and the beats
as they are now (``seen_at`` only while nothing else changed; on SQLite at most
one a minute). Prints one JSON line and writes bench/results/heartbeat.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from stocksyncd.clock import FakeClock
from stocksyncd.state import open_store

RESULTS = Path(__file__).resolve().parent / "results"
BEAT = 15.0


def wal_bytes(db: Path) -> int:
    """The size of ``db``'s write-ahead log (0 before there is one)."""
    wal = Path(f"{db}-wal")
    return wal.stat().st_size if wal.exists() else 0


async def hour(jobs: int, *, whole_row: bool) -> int:
    """WAL bytes written by one hour of beats."""
    clock = FakeClock()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "state.db"
        store = await open_store(f"sqlite:///{db}", clock=clock)
        info = {"integrations": [f"shop-{i:03d}" for i in range(jobs)]}
        boot = clock.now()
        try:
            await store.heartbeat("host-a", started_at=boot, version="1.0", info=info)
            before = wal_bytes(db)
            for _ in range(int(3600 / BEAT)):
                clock.advance(BEAT)
                if whole_row:
                    store._beat = None  # forget what was written: the old full upsert
                await store.heartbeat("host-a", started_at=boot, version="1.0", info=info)
            after = wal_bytes(db)
        finally:
            await store.close()
    return after - before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=300)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {
        "jobs": args.jobs,
        "whole_row_bytes_per_hour": asyncio.run(hour(args.jobs, whole_row=True)),
        "now_bytes_per_hour": asyncio.run(hour(args.jobs, whole_row=False)),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "heartbeat.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
