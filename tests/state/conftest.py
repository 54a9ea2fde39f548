"""One state-store suite over both backends: SQLite files and PostgreSQL schemas."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from stocksyncd.clock import FakeClock
from stocksyncd.state import SqlStateStore, open_store

OpenStore = Callable[[], Awaitable[SqlStateStore]]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state/state.db"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def open_state(state_url: str, clock: FakeClock) -> AsyncIterator[OpenStore]:
    """Open (another) store on the same database; every one is closed at the end."""
    opened: list[SqlStateStore] = []

    async def _open() -> SqlStateStore:
        store = await open_store(state_url, clock=clock)
        opened.append(store)
        return store

    yield _open
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_state: OpenStore) -> SqlStateStore:
    """A migrated store driven by the fake clock."""
    return await open_state()
