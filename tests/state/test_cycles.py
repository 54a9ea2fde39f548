"""The store's routine writes leave no reference cycles (an idle daemon would keep them)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from stocksyncd.state import SqlStateStore
from tests.cycles import cyclic_garbage

BOOT = datetime(2026, 1, 1, tzinfo=UTC)
CALLS = 20

Op = Callable[[SqlStateStore, int], Awaitable[object]]
OPS: dict[str, Op] = {
    "set_value": lambda s, i: s.set_value("index", "shop", {"n": i}),
    "quota_take": lambda s, i: s.quota_take("mouser", "minute", 10**6),
    "quota_exhaust": lambda s, i: s.quota_exhaust("mouser", "day", 1000),
    "try_acquire_lease": lambda s, i: s.try_acquire_lease("integration:a", "host-a", 60),
    # A new version each time: the full upsert, not the seen_at update.
    "heartbeat": lambda s, i: s.heartbeat("host-a", started_at=BOOT, version=str(i)),
}


@pytest.mark.parametrize("op", list(OPS))
async def test_upserts_leave_no_cyclic_garbage(store: SqlStateStore, op: str) -> None:
    call = OPS[op]
    await call(store, -1)  # caches (compiled statements, pooled connection) fill once
    with cyclic_garbage() as cycles:
        for i in range(CALLS):
            await call(store, i)
    assert cycles.found == 0
