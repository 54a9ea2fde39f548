"""Migrations: upgrades keep data, head matches the schema, replicas migrate together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from stocksyncd.clock import FakeClock
from stocksyncd.state import SqlStateStore, open_store
from stocksyncd.state.engine import make_engine, parse_state_url
from stocksyncd.state.migrate import current_revision, head_revision, upgrade
from stocksyncd.state.schema import metadata

OpenStore = Callable[[], Awaitable[SqlStateStore]]
T0 = datetime(2025, 6, 1, 8, 30, tzinfo=UTC)


def _insert_at_0001(conn: Connection) -> None:
    """Rows as a 0001 database holds them, written with 0001's own columns."""
    json_cols = {"counts", "conflicts", "errors", "requests", "details", "value", "info", "data"}

    def insert(table: str, **values: Any) -> None:
        columns = [sa.column(k, sa.JSON if k in json_cols else None) for k in values]
        for c in columns:
            if c.name.endswith("_at"):
                c.type = sa.DateTime(timezone=True)
        conn.execute(sa.insert(sa.table(table, *columns)).values(**values))

    insert("runs", run_id="old-1", integration="warehouse", trigger="schedule", dry_run=False,
           replica="host-a", started_at=T0, finished_at=T0, status="ok", duration_s=12.5,
           counts={"source": 3, "written": 1}, conflicts=["K"], errors=[], message="",
           requests={"insales": 2}, details={"note": "kept"}, changes_total=1)
    insert("run_changes", run_id="old-1", seq=0, ref="v1", key="SKU", field="quantity",
           old="1", new="2", applied=True)
    insert("kv_values", scope="cursor", key="parts", value={"next": 99}, updated_at=T0)
    insert("quotas", key="mouser", bucket="2025-06-01", used=17, quota_limit=1000,
           updated_at=T0)
    insert("reviews", integration="parts", part_pk=5, part_name="LM358", kind="hits",
           message="1 hit", data={"hits": [{"mpn": "LM358"}]}, created_at=T0)


async def test_upgrade_from_0001_keeps_data(state_url: str, clock: FakeClock) -> None:
    engine = make_engine(parse_state_url(state_url))
    try:
        await upgrade(engine, "0001")
        assert await current_revision(engine) == "0001"
        async with engine.begin() as conn:
            await conn.run_sync(_insert_at_0001)
    finally:
        await engine.dispose()

    store = await open_store(state_url, clock=clock)
    try:
        assert await current_revision(store.engine) == head_revision() == "0005"
        run = await store.get_run("old-1")
        assert run is not None
        assert run.started_at == T0 and run.duration_s == 12.5
        assert run.counts == {"source": 3, "written": 1} and run.conflicts == ["K"]
        assert run.details == {"note": "kept"} and run.requests == {"insales": 2}
        assert [(c.ref, c.old, c.new) for c in run.changes] == [("v1", "1", "2")]
        assert run.changes[0].status == "confirmed"  # the column 0003 added
        assert await store.last_success("warehouse") == T0
        assert await store.get_value("cursor", "parts") == {"next": 99}
        assert await store.quota_used("mouser", "2025-06-01") == 17
        [review] = await store.list_reviews("parts")
        assert review.run_id is None  # the column 0002 added
        assert review.data == {"hits": [{"mpn": "LM358"}]} and review.created_at == T0
        # And the new column works on the upgraded database.
        new_id = await store.add_review(review.__class__(
            integration="parts", part_pk=6, part_name="NE555", kind="error", run_id="run-9"))
        fresh = await store.get_review(new_id)
        assert fresh is not None and fresh.run_id == "run-9"
    finally:
        await store.close()


def _diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": False})
    return [d for d in compare_metadata(context, metadata) if d[0] != "remove_table"
            or d[1].name != "alembic_version"]


async def test_migrations_build_exactly_the_schema(store: SqlStateStore) -> None:
    async with store.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []


async def test_replicas_starting_together_migrate_once(state_url: str,
                                                       clock: FakeClock) -> None:
    opened = await asyncio.gather(*(open_store(state_url, clock=clock) for _ in range(3)),
                                  return_exceptions=True)
    stores = [s for s in opened if isinstance(s, SqlStateStore)]
    try:
        assert len(stores) == 3, opened
        for store in stores:
            assert await current_revision(store.engine) == head_revision()
        assert await stores[0].quota_take("k", "b", limit=1)
        assert not await stores[2].quota_take("k", "b", limit=1)
    finally:
        for store in stores:
            await store.close()


async def test_opening_a_migrated_store_again_is_a_no_op(open_state: OpenStore) -> None:
    first = await open_state()
    await first.set_value("s", "k", 1)
    second = await open_state()
    assert await second.get_value("s", "k") == 1
    assert await current_revision(second.engine) == head_revision()
