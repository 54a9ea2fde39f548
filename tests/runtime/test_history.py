"""The daemon applies all three history bounds from its config."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from .test_daemon import Harness, integration, write_config


async def test_the_heartbeat_prunes_by_count_age_and_size(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    write_config(path, integration("a"))
    path.write_text(path.read_text().replace(
        "[daemon]\n", '[daemon]\nkeep_runs = 0\nkeep_history = "7d"\nhistory_max_mb = 50\n', 1))
    h = Harness(path)
    await h.daemon.start()
    for _ in range(100):  # the heartbeat task prunes first thing
        if h.store.pruned_older_than is not None:
            break
        await asyncio.sleep(0)
    older_than = h.store.pruned_older_than
    assert older_than is not None
    assert timedelta(days=7) <= h.daemon.clock.now() - older_than < timedelta(days=7, seconds=60)
    assert h.store.pruned_max_bytes == 50_000_000
    assert h.store.pruned_to == 0
    await h.daemon.stop()


async def test_defaults_bound_history_to_30_days_and_300_mb(tmp_path: Path) -> None:
    h = Harness(write_config(tmp_path / "c.toml", integration("a")))
    assert h.daemon.config.daemon.keep_history == 30 * 86400
    assert h.daemon.config.daemon.history_max_mb == 300
