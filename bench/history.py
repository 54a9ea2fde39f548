"""How fast the history pages answer at the default retention.

    python -m bench.history [--runs 20000] [--integrations 3] [--pg postgresql://...]

Fills a fresh state store with ``--runs`` runs per integration (the default
``keep_runs``), about 10 changes each over a catalogue of 10,000 keys, then
times the queries behind the runs page and the change search, each the
median of 7 calls: once with the indexes of revision 0005, once without.
Writes bench/results/history.json and the "History queries" section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from stocksyncd.state import SqlStateStore, open_store
from stocksyncd.state import schema as t

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SECTION = "## History queries"
INDEXES = (("ix_run_changes_key", "run_changes", "key"),
           ("ix_run_changes_ref", "run_changes", "ref"),
           ("ix_runs_status_started", "runs", "status, started_at"))
# (name, seconds between runs, mean changes per run)
JOBS = (("moysklad-shop", 3600, 30), ("kak2c-shop", 60, 2), ("mouser", 86400, 5))
END = datetime(2026, 11, 1, tzinfo=UTC)
KEYS = 10_000
REPEATS = 7


def _rows(runs: int, integrations: int, rng: random.Random,
          ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    run_rows: list[dict[str, Any]] = []
    change_rows: list[dict[str, Any]] = []
    for name, every, mean in JOBS[:integrations]:
        for i in range(runs):
            started = END - timedelta(seconds=every * (runs - i))
            run_id = uuid.UUID(int=rng.getrandbits(128)).hex
            roll = rng.random()
            status = "failed" if roll < 0.02 else "aborted" if roll < 0.03 else "ok"
            n = min(int(rng.expovariate(1 / mean)), 500)
            run_rows.append({
                "run_id": run_id, "integration": name, "trigger": "schedule", "dry_run": False,
                "replica": "bench", "started_at": started,
                "finished_at": started + timedelta(seconds=2), "status": status,
                "duration_s": 2.0, "counts": {"changed": n, "written": n}, "conflicts": [],
                "errors": [], "message": "", "requests": {}, "details": {}, "changes_total": n,
            })
            for seq in range(n):
                key = f"46{rng.randrange(KEYS):011d}"
                change_rows.append({"run_id": run_id, "seq": seq, "ref": str(rng.randrange(10**9)),
                                    "key": key, "field": "quantity", "old": "1", "new": "2",
                                    "applied": True})
    return run_rows, change_rows


async def _fill(store: SqlStateStore, runs: int, integrations: int) -> dict[str, int]:
    run_rows, change_rows = _rows(runs, integrations, random.Random(19))
    async with store.engine.begin() as conn:
        for i in range(0, len(run_rows), 5000):
            await conn.execute(t.runs.insert(), run_rows[i:i + 5000])
        for i in range(0, len(change_rows), 10000):
            await conn.execute(t.run_changes.insert(), change_rows[i:i + 10000])
    # Statistics and (PostgreSQL) the visibility map, as autovacuum would have them
    # by now; otherwise it runs during the first timings and counts cannot use
    # index-only scans. VACUUM cannot run inside a transaction.
    if store.backend == "postgresql":
        async with store.engine.connect() as conn:
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await auto.execute(sa.text("VACUUM ANALYZE runs"))
            await auto.execute(sa.text("VACUUM ANALYZE run_changes"))
    else:
        async with store.engine.begin() as conn:
            await conn.execute(sa.text("ANALYZE"))
    return {"runs": len(run_rows), "changes": len(change_rows)}


async def _median_ms(call: Callable[[], Awaitable[Any]]) -> float:
    await call()  # warm the cache once
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        await call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def _queries(store: SqlStateStore) -> dict[str, float]:
    key = "46" + f"{1234:011d}"
    day = END - timedelta(days=3)
    name = JOBS[0][0]
    calls: dict[str, Callable[[], Awaitable[Any]]] = {
        "runs page 1 (all)": lambda: store.list_runs(limit=50),
        "runs of one integration": lambda: store.list_runs(integration=name, limit=50),
        "failed runs of one integration": lambda: store.list_runs(
            integration=name, status="failed", limit=50),
        "failed runs (all integrations)": lambda: store.list_runs(status="failed", limit=50),
        "one day": lambda: store.list_runs(since=day, until=day + timedelta(days=1), limit=50),
        "page 400 (offset 19,950)": lambda: store.list_runs(offset=19_950, limit=50),
        "search a key (page of 100)": lambda: store.search_changes(key, limit=100),
        "search a key (CSV, all)": lambda: store.search_changes(key, limit=100_000),
    }
    return {label: await _median_ms(call) for label, call in calls.items()}


async def _drop_indexes(store: SqlStateStore) -> None:
    async with store.engine.begin() as conn:
        for name, _table, _cols in INDEXES:
            await conn.execute(sa.text(f"DROP INDEX {name}"))


async def measure(url: str, runs: int, integrations: int) -> dict[str, Any]:
    """Fill the store at ``url`` and time the queries with and without the indexes."""
    store = await open_store(url)
    try:
        start = time.perf_counter()
        sizes = await _fill(store, runs, integrations)
        fill_s = time.perf_counter() - start
        indexed = await _queries(store)
        await _drop_indexes(store)
        bare = await _queries(store)
    finally:
        await store.close()
    return {"backend": store.backend, **sizes, "fill_s": round(fill_s, 1),
            "indexed_ms": indexed, "without_ms": bare}


def _section(results: list[dict[str, Any]], runs: int) -> str:
    lines = [SECTION, "",
             "The runs page and the change search (`python -m bench.history`): a fresh store "
             f"filled with {runs:,} runs (the default retention `keep_runs`) for each of "
             f"{len(JOBS)} integrations (hourly with ~30 changes a run, every minute with ~2, "
             "daily with ~5; 10,000 distinct keys), then the median of "
             f"{REPEATS} calls of each query as the web pages make them (page of 50 runs with "
             "its total, or a page of changes with its total). *Without* is the same store "
             "after dropping the indexes of revision 0005. The change search is what needs "
             "them (`run_changes.key`, `.ref`): without, it reads every stored change. "
             "`runs(status, started_at)` serves the status filter across integrations; the "
             "other runs queries use the indexes revision 0001 made. Deep pages cost what "
             "skipping 20,000 rows costs; the page links keep the filters, so owners narrow "
             "down rather than page that far.", ""]
    for r in results:
        lines += [f"**{r['backend']}**: {r['runs']:,} runs, {r['changes']:,} changes "
                  f"(filled in {r['fill_s']} s).", "",
                  "| query | with indexes (ms) | without (ms) |", "|---|---:|---:|"]
        for label, ms in r["indexed_ms"].items():
            lines.append(f"| {label} | {ms:.1f} | {r['without_ms'][label]:.1f} |")
        lines.append("")
    return "\n".join(lines)


def _write_docs(section: str) -> None:
    docs = ROOT / "docs" / "benchmarks.md"
    text = docs.read_text(encoding="utf-8")
    head, _, rest = text.partition(SECTION)
    # Keep whatever follows the section (the next "## " heading) in place.
    tail = ""
    if rest:
        after = rest.find("\n## ")
        tail = rest[after:] if after >= 0 else ""
    docs.write_text(head.rstrip() + "\n\n" + section.rstrip() + "\n" + tail, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20_000, help="runs per integration")
    parser.add_argument("--integrations", type=int, default=len(JOBS))
    parser.add_argument("--pg", default="", help="also measure on this PostgreSQL database "
                        "(a private schema is created and dropped)")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the docs section from bench/results/history.json")
    args = parser.parse_args(argv)
    if args.report_only:
        _write_docs(_section(json.loads((RESULTS / "history.json").read_text()), args.runs))
        return 0
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(asyncio.run(measure(f"sqlite:///{tmp}/history.db", args.runs,
                                           args.integrations)))
    if args.pg:
        results.append(asyncio.run(_on_pg(args.pg, args.runs, args.integrations)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "history.json").write_text(json.dumps(results, indent=1))
    section = _section(results, args.runs)
    print(section)
    if not args.no_docs:
        _write_docs(section)
    return 0


async def _on_pg(base: str, runs: int, integrations: int) -> dict[str, Any]:
    import asyncpg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        return await measure(f"{base}?options=-csearch_path%3D{schema}", runs, integrations)
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


if __name__ == "__main__":
    raise SystemExit(main())
