"""History queries: the runs page's filters and paging, the search over changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stocksyncd.integrations.base import Change, RunResult, RunStatus
from stocksyncd.state import SqlStateStore

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


async def _run(store: SqlStateStore, run_id: str, integration: str, at: datetime,
               status: RunStatus = "ok", keys: tuple[str, ...] = ()) -> None:
    await store.start_run(run_id=run_id, integration=integration, trigger="schedule",
                          dry_run=False, replica="r1", started_at=at)
    result = RunResult(integration=integration, run_id=run_id, status=status,
                       changes=[Change(ref=f"v-{key}", key=key, field="quantity", old="1",
                                       new=str(i)) for i, key in enumerate(keys)])
    await store.finish_run(result, finished_at=at + timedelta(seconds=5))


async def test_list_runs_filters_pages_and_counts(store: SqlStateStore) -> None:
    for i in range(12):
        await _run(store, f"r{i:02d}", "ms" if i % 2 else "k2c", T0 + timedelta(hours=i),
                   status="failed" if i % 3 == 0 else "ok")
    page = await store.list_runs(limit=5)
    assert page.total == 12 and [r.run_id for r in page.runs] == [
        "r11", "r10", "r09", "r08", "r07"]
    second = await store.list_runs(limit=5, offset=10)
    assert [r.run_id for r in second.runs] == ["r01", "r00"]
    failed_ms = await store.list_runs(integration="ms", status="failed")
    assert [r.run_id for r in failed_ms.runs] == ["r09", "r03"] and failed_ms.total == 2
    window = await store.list_runs(since=T0 + timedelta(hours=3), until=T0 + timedelta(hours=6))
    assert [r.run_id for r in window.runs] == ["r05", "r04", "r03"]  # until is exclusive
    assert (await store.list_runs(integration="nobody")).total == 0


async def test_search_finds_every_change_of_a_key_newest_first(store: SqlStateStore) -> None:
    await _run(store, "a", "ms", T0, keys=("4600000000228", "X"))
    await _run(store, "b", "k2c", T0 + timedelta(hours=1), keys=("Y",))
    await _run(store, "c", "ms", T0 + timedelta(hours=2), keys=("X", "4600000000228"))
    found = await store.search_changes("4600000000228")
    assert found.total == 2
    assert [(h.run_id, h.integration, h.change.key, h.change.new) for h in found.hits] == [
        ("c", "ms", "4600000000228", "1"), ("a", "ms", "4600000000228", "0")]
    assert found.hits[0].started_at == T0 + timedelta(hours=2)
    by_ref = await store.search_changes("v-Y")
    assert [h.run_id for h in by_ref.hits] == ["b"]
    assert (await store.search_changes("X", integration="k2c")).total == 0
    paged = await store.search_changes("X", limit=1, offset=1)
    assert paged.total == 2 and [h.run_id for h in paged.hits] == ["a"]
    assert (await store.search_changes("46000000002")).total == 0  # exact, not a prefix
