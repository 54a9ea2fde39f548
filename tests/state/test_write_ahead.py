"""The write-ahead audit in the store: planned rows, settling, fencing, outages, lost files."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stocksyncd.clock import FakeClock
from stocksyncd.errors import WriteFenced
from stocksyncd.integrations.base import Change, RunResult
from stocksyncd.state import LeaseFence, SqlStateStore, StoreUnavailable, open_store

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _changes(n: int, start: int = 0) -> list[Change]:
    return [Change(ref=str(i), key=f"k{i}", field="quantity", old=str(i), new=str(i + 1))
            for i in range(start, start + n)]


async def _start(store: SqlStateStore, run_id: str = "r") -> None:
    await store.start_run(run_id=run_id, integration="stock", trigger="schedule",
                          dry_run=False, replica="alpha", started_at=T0)


async def test_planned_rows_are_stored_before_and_settled_after(store: SqlStateStore) -> None:
    await _start(store)
    first, second = _changes(3), _changes(2, start=3)
    await store.plan_changes("r", first)
    await store.plan_changes("r", second)
    assert all(c.status == "planned" and c.audit_id is not None for c in first + second)

    # Cut off here: the run is still "running", and its rows say what may have gone out.
    run = await store.get_run("r")
    assert run is not None and run.changes_total == 5
    assert [(c.ref, c.old, c.new, c.status) for c in run.changes] == [
        (str(i), str(i), str(i + 1), "planned") for i in range(5)]

    await store.settle_changes(first, "sent")
    await store.settle_changes(second[:1], "refused", reason="422 invalid quantity")
    await store.settle_changes(first[:2], "confirmed")
    run = await store.get_run("r")
    assert run is not None
    assert [(c.status, c.applied, c.reason) for c in run.changes] == [
        ("confirmed", True, ""), ("confirmed", True, ""), ("sent", True, ""),
        ("refused", False, "422 invalid quantity"), ("planned", False, "")]


async def test_finishing_keeps_rows_stored_ahead_even_when_the_result_lost_them(
    store: SqlStateStore,
) -> None:
    await _start(store)
    sent = _changes(2)
    await store.plan_changes("r", sent)
    await store.settle_changes(sent, "sent")
    # A cut-off run's result knows nothing of them; a dry-run style change is added.
    extra = Change(ref="9", key="k9", field="quantity", old="1", new="5", applied=False)
    await store.finish_run(RunResult(integration="stock", run_id="r", status="failed",
                                     changes=[extra]), finished_at=T0)
    # Finishing twice replaces only what was not stored ahead.
    await store.finish_run(RunResult(integration="stock", run_id="r", status="failed",
                                     changes=[*sent, extra]), finished_at=T0)
    run = await store.get_run("r")
    assert run is not None and run.changes_total == 3
    assert [(c.ref, c.status, c.reason) for c in run.changes] == [
        ("0", "sent", ""), ("1", "sent", ""), ("9", "planned", "not sent")]


async def test_interrupted_runs_keep_their_changes_as_they_stood(store: SqlStateStore) -> None:
    await _start(store)
    changes = _changes(2)
    await store.plan_changes("r", changes)
    await store.settle_changes(changes[:1], "sent")
    assert await store.abandon_runs(replica="alpha", finished_at=T0, message="killed") == 1
    run = await store.get_run("r")
    assert run is not None and run.status == "interrupted"
    assert [c.status for c in run.changes] == ["sent", "planned"]


async def test_the_fence_stores_nothing_without_the_lease(
    store: SqlStateStore, clock: FakeClock,
) -> None:
    await _start(store)
    fence = LeaseFence("integration:stock", "alpha")
    with pytest.raises(WriteFenced, match="held by nobody"):
        await store.plan_changes("r", _changes(1), fence=fence, valid_for=1)

    assert await store.try_acquire_lease("integration:stock", "alpha", 10)
    await store.plan_changes("r", _changes(1), fence=fence, valid_for=5)
    clock.advance(6)  # 4 s left by the stored expiry
    with pytest.raises(WriteFenced, match=r"expires in 4\.0s"):
        await store.plan_changes("r", _changes(1, start=1), fence=fence, valid_for=5)
    clock.advance(5)  # expired: another replica takes it over
    assert await store.try_acquire_lease("integration:stock", "beta", 10)
    with pytest.raises(WriteFenced, match="held by replica beta"):
        await store.plan_changes("r", _changes(1, start=2), fence=fence, valid_for=0)
    run = await store.get_run("r")
    assert run is not None and [c.ref for c in run.changes] == ["0"]


async def test_a_deleted_sqlite_file_stops_recording(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "state.db"
    store = await open_store(f"sqlite:///{path}", clock=clock)
    try:
        await _start(store)
        await store.plan_changes("r", _changes(1))
        backup = tmp_path / "backup.db"
        await store.engine.dispose()  # a consistent copy: checkpointed, no WAL left
        shutil.copy(path, backup)
        path.unlink()

        with pytest.raises(StoreUnavailable, match="is gone"):
            await store.plan_changes("r", _changes(1, start=1))
        assert "is gone" in (store.recording_problem() or "")
        with pytest.raises(StoreUnavailable, match="is gone"):
            await store.get_run("r")
        assert not path.exists()  # never silently recreated

        # Put back, it is another file: still nothing recorded into it by this process.
        shutil.copy(backup, path)
        with pytest.raises(StoreUnavailable, match="is gone"):
            await store.plan_changes("r", _changes(1, start=1))
    finally:
        await store.close()
    # A restart opens the restored file, with what was recorded before the loss.
    store = await open_store(f"sqlite:///{path}", clock=clock)
    try:
        run = await store.get_run("r")
        assert run is not None and [c.ref for c in run.changes] == ["0"]
    finally:
        await store.close()


async def test_a_replaced_sqlite_file_is_detected(tmp_path: Path, clock: FakeClock) -> None:
    path = tmp_path / "state.db"
    store = await open_store(f"sqlite:///{path}", clock=clock)
    try:
        await _start(store)
        other = tmp_path / "other.db"
        fresh = await open_store(f"sqlite:///{other}", clock=clock)
        await fresh.close()
        os.replace(other, path)
        for _ in range(2):
            with pytest.raises(StoreUnavailable, match="replaced by another file"):
                await store.plan_changes("r", _changes(1))
    finally:
        await store.close()


async def test_an_unreachable_store_is_a_recording_problem(clock: FakeClock) -> None:
    store = await open_store("sqlite://", clock=clock)
    try:
        await store.heartbeat("alpha", started_at=T0, version="1")
        assert store.recording_problem() is None
        await store.engine.dispose()
        store.engine.sync_engine.pool = _BrokenPool()  # type: ignore[assignment]
        with pytest.raises(StoreUnavailable):
            await store.heartbeat("alpha", started_at=T0 + timedelta(seconds=1), version="1")
        assert "broken" in (store.recording_problem() or "")
    finally:
        store.engine.sync_engine.pool = store.engine.sync_engine.pool.recreate()


class _BrokenPool:
    def connect(self) -> None:
        raise OSError("broken pipe to the database")

    def recreate(self) -> _BrokenPool:
        return self

    def dispose(self) -> None:
        return None
