"""Heartbeats write only what failover needs: ``seen_at``, unless something changed."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event

from stocksyncd.clock import FakeClock
from stocksyncd.state import SqlStateStore
from stocksyncd.state.schema import replicas
from stocksyncd.state.sql import SQLITE_BEAT_EVERY

JOBS = {"integrations": [f"shop-{i:03d}" for i in range(300)]}


def record_writes(store: SqlStateStore) -> list[tuple[str, Any]]:
    writes: list[tuple[str, Any]] = []

    def before(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
            writes.append((statement, params))

    event.listen(store.engine.sync_engine, "before_cursor_execute", before)
    return writes


async def test_an_unchanged_beat_updates_seen_at_only(
    store: SqlStateStore, clock: FakeClock,
) -> None:
    boot = clock.now()
    writes = record_writes(store)
    await store.heartbeat("host-a", started_at=boot, version="1.0", info=JOBS)
    assert len(writes) == 1 and "info" in writes[0][0]
    for _ in range(4):
        clock.advance(SQLITE_BEAT_EVERY)
        await store.heartbeat("host-a", started_at=boot, version="1.0", info=JOBS)
    assert len(writes) == 5
    for statement, params in writes[1:]:
        assert "info" not in statement and "shop-000" not in str(params)
    [seen] = await store.replicas(seen_within=1)
    assert seen.seen_at == clock.now() and seen.info == JOBS

    clock.advance(SQLITE_BEAT_EVERY)
    await store.heartbeat("host-a", started_at=boot, version="1.0", info={"integrations": []})
    assert "info" in writes[-1][0]
    [seen] = await store.replicas(seen_within=1)
    assert seen.info == {"integrations": []}


async def test_a_deleted_row_is_written_again_in_full(
    store: SqlStateStore, clock: FakeClock,
) -> None:
    boot = clock.now()
    await store.heartbeat("host-a", started_at=boot, version="1.0", info=JOBS)
    async with store.engine.begin() as conn:
        await conn.execute(replicas.delete())
    clock.advance(SQLITE_BEAT_EVERY)
    await store.heartbeat("host-a", started_at=boot, version="1.0", info=JOBS)
    [seen] = await store.replicas(seen_within=1)
    assert seen.info == JOBS


async def test_sqlite_beats_at_most_once_a_minute(
    store: SqlStateStore, clock: FakeClock,
) -> None:
    writes = record_writes(store)
    boot = clock.now()
    for _ in range(8):  # two minutes of 15 s beats
        await store.heartbeat("host-a", started_at=boot, version="1.0", info=JOBS)
        clock.advance(15)
    assert len(writes) == (2 if store.backend == "sqlite" else 8)
