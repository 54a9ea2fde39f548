"""Run history retention by age and by estimated size, on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from stocksyncd.integrations.base import Change, RunResult
from stocksyncd.state import SqlStateStore
from stocksyncd.state.retention import CHANGE_ROW_BYTES, DELETE_BATCH, RUN_ROW_BYTES
from stocksyncd.state.schema import run_changes

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


async def _run(store: SqlStateStore, run_id: str, integration: str, at: datetime,
               changes: int = 0) -> None:
    """A finished run with ``changes`` changes of about the same size each."""
    await store.start_run(run_id=run_id, integration=integration, trigger="schedule",
                          dry_run=False, replica="r1", started_at=at)
    await store.finish_run(RunResult(
        integration=integration, run_id=run_id, status="ok",
        changes=[Change(ref=str(i % 10), key=f"k{i % 10}", field="quantity", old="1", new="2")
                 for i in range(changes)],
    ), finished_at=at + timedelta(seconds=5))


async def _ids(store: SqlStateStore, integration: str) -> list[str]:
    return [r.run_id for r in await store.recent_runs(integration, limit=10_000)]


async def test_runs_older_than_the_age_go_but_each_integrations_newest_stays(
    store: SqlStateStore,
) -> None:
    for day in range(10):
        await _run(store, f"a{day}", "a", T0 + timedelta(days=day), changes=2)
    await _run(store, "quiet", "b", T0)  # an integration that stopped running long ago
    await store.start_run(run_id="stuck", integration="c", trigger="schedule", dry_run=False,
                          replica="r1", started_at=T0 - timedelta(days=1))
    await _run(store, "c-new", "c", T0 + timedelta(days=9))

    deleted = await store.prune_runs(older_than=T0 + timedelta(days=7))

    assert deleted == 7
    assert await _ids(store, "a") == ["a9", "a8", "a7"]
    assert await _ids(store, "b") == ["quiet"]  # its newest run is its only evidence
    assert "stuck" in await _ids(store, "c")  # a run in flight is never deleted
    kept = await store.get_run("a7")
    assert kept is not None and len(kept.changes) == 2  # changes stay searchable with it
    async with store.engine.connect() as conn:
        left = await conn.scalar(select(func.count()).select_from(run_changes))
    assert left == 3 * 2


async def test_the_size_bound_keeps_the_newest_runs_that_fit(store: SqlStateStore) -> None:
    for i in range(30):
        await _run(store, f"a{i:02d}", "a", T0 + timedelta(minutes=i), changes=20)
        await _run(store, f"b{i:02d}", "b", T0 + timedelta(minutes=i, seconds=30), changes=0)
    per_change = CHANGE_ROW_BYTES + len("0k0quantity12")  # the sampled mean is about this
    a_run, b_run = RUN_ROW_BYTES + 20 * per_change, RUN_ROW_BYTES
    budget = 10 * (a_run + b_run)
    before = await store.history_bytes()
    assert before > budget

    deleted = await store.prune_runs(max_bytes=budget)

    assert await store.history_bytes() <= budget
    assert deleted in (40, 41)  # the tenth pair fits or not by the sample's rounding
    assert (await _ids(store, "a"))[:9] == [f"a{i:02d}" for i in range(29, 20, -1)]
    assert await store.get_run("a00") is None
    assert await store.prune_runs(max_bytes=budget) == 0


async def test_the_run_count_still_applies_with_the_other_bounds(store: SqlStateStore) -> None:
    for i in range(5):
        await _run(store, f"a{i}", "a", T0 + timedelta(minutes=i))
    assert await store.prune_runs(keep_per_integration=2, older_than=T0,
                                  max_bytes=10**9) == 3
    assert await _ids(store, "a") == ["a4", "a3"]
    assert await store.prune_runs() == 0  # no bound: nothing goes


async def test_a_large_history_is_deleted_in_batches(store: SqlStateStore) -> None:
    for i in range(DELETE_BATCH + 20):
        await _run(store, f"r{i:04d}", "a", T0 + timedelta(seconds=i))
    assert await store.prune_runs(keep_per_integration=10) == DELETE_BATCH + 10
    assert len(await _ids(store, "a")) == 10
