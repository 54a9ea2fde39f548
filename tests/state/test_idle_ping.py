"""PostgreSQL connections are pinged before use only after sitting idle."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from stocksyncd.state import StoreUnavailable, open_store
from stocksyncd.state import engine as engine_module

pytestmark = pytest.mark.postgres


async def _kill_the_pooled_connection(store_engine: AsyncEngine, pg_url: str) -> None:
    """End the server side of the one pooled connection (as a server restart would)."""
    async with store_engine.connect() as conn:
        pid = (await conn.execute(sa.text("SELECT pg_backend_pid()"))).scalar()
    admin = await asyncpg.connect(pg_url.split("?", maxsplit=1)[0])
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


@pytest.mark.parametrize("idle_for_long", [True, False])
async def test_a_connection_idle_for_long_is_pinged_and_replaced(
        pg_url: str, monkeypatch: pytest.MonkeyPatch, idle_for_long: bool) -> None:
    store = await open_store(pg_url)
    try:
        await store.set_value("s", "k", 1)
        await _kill_the_pooled_connection(store.engine, pg_url)
        # Whether the connection counts as idle long enough to be pinged.
        monkeypatch.setattr(engine_module, "PING_IDLE", 0.0 if idle_for_long else 3600.0)
        if idle_for_long:
            assert await store.get_value("s", "k") == 1
        else:
            # Used a moment ago: not pinged, so the dead connection fails this once.
            with pytest.raises(StoreUnavailable):
                await store.get_value("s", "k")
            assert await store.get_value("s", "k") == 1  # and is replaced after that
    finally:
        await store.close()
