"""``daemon.debug_dir``: the raw API answers of each integration's last run.

Files go to ``<debug_dir>/<integration>/``: ``index.json`` (run id, one entry
per exchange: method, redacted URL, status, duration, error, file) and one
``NNN-<api>-<status>.txt`` body per exchange. Bodies pass through ``redact``
so registered secrets and credential-looking values never land on disk.
Each run replaces the previous run's files.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import orjson

from stocksyncd.http.transport import ExchangeRecord
from stocksyncd.redact import redact

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(part: str) -> str:
    return _UNSAFE.sub("_", part).strip("._") or "x"


def write_dump(
    debug_dir: Path, integration: str, run_id: str, records: list[ExchangeRecord],
    *, dropped: int = 0,
) -> Path:
    """Replace ``debug_dir/<integration>/`` with the exchanges of one run (blocking)."""
    target = debug_dir / _safe(integration)
    target.mkdir(parents=True, exist_ok=True)
    for old in target.iterdir():
        if old.is_file():
            old.unlink()
    index: list[dict[str, Any]] = []
    for n, rec in enumerate(records, 1):
        name = f"{n:03d}-{_safe(rec.api)}-{rec.status if rec.status is not None else 'none'}.txt"
        (target / name).write_text(redact(rec.body.decode("utf-8", "replace")), "utf-8")
        index.append({
            "file": name,
            "api": rec.api,
            "method": rec.method,
            "url": redact(rec.url),
            "status": rec.status,
            "duration_s": round(rec.duration_s, 3),
            "error": redact(rec.error) if rec.error else None,
        })
    summary = {"integration": integration, "run_id": run_id, "exchanges": index,
               "not_kept": dropped}
    (target / "index.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    return target


async def dump_run(
    debug_dir: Path, integration: str, run_id: str, records: list[ExchangeRecord],
    *, dropped: int = 0,
) -> Path:
    """``write_dump`` off the event loop."""
    return await asyncio.to_thread(
        write_dump, debug_dir, integration, run_id, records, dropped=dropped
    )
