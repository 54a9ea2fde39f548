"""Runs: lifecycle, changes, ordering, last success, pruning."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from stocksyncd.clock import FakeClock
from stocksyncd.integrations.base import Change, RunCounts, RunResult, RunStatus
from stocksyncd.state import SqlStateStore
from stocksyncd.state.schema import run_changes

OpenStore = Callable[[], Awaitable[SqlStateStore]]
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


async def _run(store: SqlStateStore, run_id: str, integration: str, at: datetime,
               status: RunStatus = "ok", changes: int = 0) -> None:
    """A run with ``changes`` changes and a details entry."""
    await store.start_run(run_id=run_id, integration=integration, trigger="schedule",
                          dry_run=False, replica="r1", started_at=at)
    result = RunResult(integration=integration, run_id=run_id, status=status,
                       changes=[Change(ref=str(i), key=f"k{i}", field="quantity", old="1",
                                       new="2") for i in range(changes)],
                       details={"skips": [{"key": f"k{n}"} for n in range(changes)]})
    await store.finish_run(result, finished_at=at + timedelta(seconds=5))


async def test_run_lifecycle_keeps_everything(store: SqlStateStore) -> None:
    await store.start_run(run_id="r-1", integration="warehouse", trigger="manual", dry_run=True,
                          replica="host-a", started_at=T0)

    running = await store.get_run("r-1")
    assert running is not None
    assert running.status == "running"
    assert running.finished_at is None
    assert running.started_at == T0
    assert running.started_at.tzinfo is not None
    assert running.changes == []

    counts = RunCounts(source=10, target=12, matched=9, changed=2, written=2)
    counts.skip("bad_value", 3)
    result = RunResult(
        integration="warehouse", run_id="r-1", status="aborted", dry_run=True, counts=counts,
        conflicts=["SKU-1", "SKU-2"], errors=["page 3 failed"], message="mass-change guard",
        duration_s=4.25, requests={"insales": 7, "moysklad": 3},
        details={"guard": {"zeroed": 6, "share": 0.66}, "ünïcode": "ok"},
        changes=[Change(ref="v1", key="SKU-1", field="quantity", old="5", new="0"),
                 Change(ref="v2", key="SKU-2", field="quantity", old=None, new="3",
                        applied=False)],
    )
    await store.finish_run(result, finished_at=T0 + timedelta(seconds=4.25))

    done = await store.get_run("r-1")
    assert done is not None
    assert done.status == "aborted"
    assert done.finished_at == T0 + timedelta(seconds=4.25)
    assert done.trigger == "manual" and done.replica == "host-a" and done.dry_run
    assert done.duration_s == 4.25
    assert done.counts["skipped_by_reason"] == {"bad_value": 3}
    assert done.counts["matched"] == 9 and done.counts["skipped"] == 3
    assert done.conflicts == ["SKU-1", "SKU-2"]
    assert done.errors == ["page 3 failed"]
    assert done.message == "mass-change guard"
    assert done.requests == {"insales": 7, "moysklad": 3}
    assert done.details == {"guard": {"zeroed": 6, "share": 0.66}, "ünïcode": "ok"}
    assert done.changes_total == 2
    assert [(c.ref, c.key, c.old, c.new, c.applied) for c in done.changes] == [
        ("v1", "SKU-1", "5", "0", True), ("v2", "SKU-2", None, "3", False)]


async def test_unknown_run_is_none(store: SqlStateStore) -> None:
    assert await store.get_run("nope") is None


async def test_finish_without_start_records_the_run(store: SqlStateStore) -> None:
    result = RunResult(integration="fulfilment", run_id="cli-1", started_at=T0, duration_s=2.0,
                       changes=[Change(ref="1", key="b", field="quantity", old="1", new="2")])
    await store.finish_run(result, finished_at=T0 + timedelta(seconds=2))
    run = await store.get_run("cli-1")
    assert run is not None
    assert run.started_at == T0 and run.status == "ok" and run.changes_total == 1


async def test_finishing_twice_replaces_the_changes(store: SqlStateStore) -> None:
    await _run(store, "r", "a", T0, changes=3)
    await store.finish_run(RunResult(integration="a", run_id="r", status="failed",
                                     changes=[Change("x", "k", "quantity", "1", "2")]),
                           finished_at=T0)
    run = await store.get_run("r")
    assert run is not None
    assert run.status == "failed" and run.changes_total == 1 and len(run.changes) == 1


async def test_thousands_of_changes_round_trip(store: SqlStateStore) -> None:
    await _run(store, "big", "warehouse", T0, changes=5000)
    run = await store.get_run("big")
    assert run is not None
    assert run.changes_total == 5000
    assert [c.ref for c in run.changes] == [str(i) for i in range(5000)]


async def test_recent_runs_newest_first_with_limit_and_filter(store: SqlStateStore) -> None:
    for i in range(5):
        await _run(store, f"a{i}", "a", T0 + timedelta(minutes=i), changes=i)
    await _run(store, "b0", "b", T0 + timedelta(minutes=10))
    await store.start_run(run_id="a-live", integration="a", trigger="schedule", dry_run=False,
                          replica="r1", started_at=T0 + timedelta(minutes=20))

    runs = await store.recent_runs("a", limit=3)
    assert [r.run_id for r in runs] == ["a-live", "a4", "a3"]
    assert runs[0].status == "running" and runs[0].finished_at is None
    assert runs[1].changes_total == 4 and runs[1].changes == []
    assert len(runs[1].details["skips"]) == 4

    everything = await store.recent_runs(limit=100)
    assert [r.run_id for r in everything][:2] == ["a-live", "b0"]
    assert len(everything) == 7
    # The checks at every run start leave the (possibly large) details unread.
    brief = await store.recent_runs("a", limit=3, details=False)
    assert [(r.run_id, r.status, r.replica, r.started_at, r.changes_total) for r in brief] == [
        (r.run_id, r.status, r.replica, r.started_at, r.changes_total) for r in runs]
    assert all(r.details == {} for r in brief)


async def test_last_success_ignores_failures_and_running(store: SqlStateStore) -> None:
    assert await store.last_success("a") is None
    await _run(store, "1", "a", T0)
    await _run(store, "2", "a", T0 + timedelta(hours=1), status="failed")
    await _run(store, "3", "b", T0 + timedelta(hours=2))
    await store.start_run(run_id="4", integration="a", trigger="schedule", dry_run=False,
                          replica="r1", started_at=T0 + timedelta(hours=3))
    last = await store.last_success("a")
    assert last == T0 + timedelta(seconds=5)
    assert last is not None and last.utcoffset() == timedelta(0)


async def test_prune_keeps_the_newest_per_integration(store: SqlStateStore) -> None:
    for i in range(6):
        await _run(store, f"a{i}", "a", T0 + timedelta(minutes=i), changes=2)
    for i in range(2):
        await _run(store, f"b{i}", "b", T0 + timedelta(minutes=i), changes=2)

    assert await store.prune_runs(keep_per_integration=3) == 3

    assert [r.run_id for r in await store.recent_runs("a")] == ["a5", "a4", "a3"]
    assert [r.run_id for r in await store.recent_runs("b")] == ["b1", "b0"]
    assert await store.get_run("a0") is None
    kept = await store.get_run("a3")
    assert kept is not None and len(kept.changes) == 2
    async with store.engine.connect() as conn:
        orphans = await conn.scalar(select(func.count()).select_from(run_changes).where(
            run_changes.c.run_id.in_(["a0", "a1", "a2"])))
    assert orphans == 0
    assert await store.prune_runs(keep_per_integration=3) == 0


async def test_reopened_store_keeps_its_data(open_state: OpenStore) -> None:
    first = await open_state()
    await _run(first, "r1", "a", T0, changes=2)
    await first.set_value("cursor", "parts", {"next": 42})
    await first.close()

    second = await open_state()
    run = await second.get_run("r1")
    assert run is not None and run.changes_total == 2
    assert await second.get_value("cursor", "parts") == {"next": 42}


async def test_abandon_runs_closes_only_the_matching_running_runs(store: SqlStateStore) -> None:
    for run_id, integration, replica in [("a1", "a", "r1"), ("a2", "a", "r2"),
                                         ("b1", "b", "r1")]:
        await store.start_run(run_id=run_id, integration=integration, trigger="schedule",
                              dry_run=False, replica=replica, started_at=T0)
    await _run(store, "done", "a", T0 - timedelta(hours=1))  # finished: never touched

    closed = await store.abandon_runs(integration="a", except_replica="r2",
                                      finished_at=T0 + timedelta(minutes=1), message="gone")
    assert closed == 1
    a1 = await store.get_run("a1")
    assert a1 is not None and a1.status == "interrupted" and a1.errors == ["gone"]
    assert a1.finished_at == T0 + timedelta(minutes=1)
    assert (await store.get_run("a2")).status == "running"  # type: ignore[union-attr]

    assert await store.abandon_runs(replica="r1", finished_at=T0, message="restart") == 1
    assert (await store.get_run("b1")).status == "interrupted"  # type: ignore[union-attr]
    assert (await store.get_run("done")).status == "ok"  # type: ignore[union-attr]
    assert await store.abandon_runs(replica="r1", finished_at=T0, message="again") == 0


async def test_quota_buckets_untouched_for_long_are_deleted(
    store: SqlStateStore, clock: FakeClock
) -> None:
    assert await store.quota_take("mouser", "2026-01-01T10:00", limit=30)
    assert await store.quota_take("mouser", "2026-01-01", limit=1000)
    clock.advance(3 * 86400)
    assert await store.quota_take("mouser", "2026-01-04", limit=1000)
    assert await store.prune_quotas(before=clock.now() - timedelta(days=2)) == 2
    assert await store.quota_used("mouser", "2026-01-04") == 1
    assert await store.quota_used("mouser", "2026-01-01") == 0
