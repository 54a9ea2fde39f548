"""/healthz and the status page take the last success and the last run from the store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from stocksyncd.clock import FakeClock
from stocksyncd.integrations.base import RunResult, RunStatus
from stocksyncd.state import SqlStateStore, open_store

from .conftest import T0, ClientFactory, FakeView


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStateStore]:
    opened = await open_store(f"sqlite:///{tmp_path}/state.db")
    assert isinstance(opened, SqlStateStore)
    yield opened
    await opened.close()


async def _run(store: SqlStateStore, run_id: str, at_s: float, status: RunStatus = "ok", *,
               dry_run: bool = False, integration: str = "warehouse") -> None:
    at = T0 + timedelta(seconds=at_s)
    await store.start_run(run_id=run_id, integration=integration, trigger="schedule",
                          dry_run=dry_run, replica="r1", started_at=at)
    await store.finish_run(RunResult(integration=integration, run_id=run_id, status=status,
                                     dry_run=dry_run), finished_at=at + timedelta(seconds=5))


async def test_many_aborted_runs_do_not_hide_the_last_success(
        make_client: ClientFactory, view: FakeView, store: SqlStateStore,
        fake_clock: FakeClock) -> None:
    # 45 ok runs, then more aborted ones than /healthz reads: the store still
    # knows when the last success was.
    for i in range(45):
        await _run(store, f"ok-{i:02}", i * 10.0)
    last_ok = T0 + timedelta(seconds=44 * 10.0 + 5)
    for i in range(15):
        await _run(store, f"ab-{i:02}", 500.0 + i, "aborted")
    # A later manual dry run of the live integration is not its success.
    await _run(store, "dry", 560.0, dry_run=True)
    view.state = store  # type: ignore[assignment]
    client = await make_client(view)
    resp = await client.get("/healthz")
    body = await resp.json()
    warehouse = body["integrations"]["warehouse"]
    assert warehouse["last_success"] == last_ok.isoformat()
    assert warehouse["last_run"] == (T0 + timedelta(seconds=565)).isoformat()
    # The status page shows the same stored success.
    page = await (await client.get("/")).text()
    assert last_ok.strftime("%Y-%m-%d %H:%M:%S") in page


async def test_store_last_success_can_leave_out_dry_runs(store: SqlStateStore) -> None:
    await _run(store, "live", 0.0)
    await _run(store, "dry", 100.0, dry_run=True)
    assert await store.last_success("warehouse") == T0 + timedelta(seconds=105)
    assert await store.last_success("warehouse", include_dry_runs=False) == (
        T0 + timedelta(seconds=5))
    await _run(store, "only-dry", 0.0, dry_run=True, integration="other")
    assert await store.last_success("other", include_dry_runs=False) is None
