"""The daemon's side of run history retention: the configured bounds, applied hourly."""

from __future__ import annotations

from datetime import datetime, timedelta

from loguru import logger

from stocksyncd.config import DaemonConfig
from stocksyncd.state.api import StateStore

MB = 1_000_000


async def prune_history(state: StateStore, cfg: DaemonConfig, now: datetime) -> int:
    """Delete runs beyond ``keep_runs``, ``keep_history`` and ``history_max_mb``.

    A failure is logged and waits for the next prune; returns how many runs went.
    """
    try:
        pruned = await state.prune_runs(
            keep_per_integration=cfg.keep_runs,
            older_than=now - timedelta(seconds=cfg.keep_history) if cfg.keep_history else None,
            max_bytes=cfg.history_max_mb * MB if cfg.history_max_mb else None,
        )
    except Exception as exc:  # noqa: BLE001 - pruning can wait for the next hour
        logger.warning("could not delete old runs: {}", exc)
        return 0
    if pruned:
        logger.info("deleted {} old run(s) beyond daemon.keep_runs, keep_history and "
                    "history_max_mb", pruned)
    return pruned
