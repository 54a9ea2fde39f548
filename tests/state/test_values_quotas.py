"""Durable values and quotas shared by replicas."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from stocksyncd.state import SqlStateStore, open_store

OpenStore = Callable[[], Awaitable[SqlStateStore]]


async def test_values_upsert_and_delete(store: SqlStateStore) -> None:
    assert await store.get_value("cursor", "parts") is None
    await store.set_value("cursor", "parts", 17)
    await store.set_value("cursor", "other", "x")
    await store.set_value("cursor", "parts", 18)
    assert await store.get_value("cursor", "parts") == 18
    assert await store.get_value("cursor", "other") == "x"
    assert await store.get_value("elsewhere", "parts") is None

    await store.delete_value("cursor", "parts")
    assert await store.get_value("cursor", "parts") is None
    assert await store.get_value("cursor", "other") == "x"
    await store.delete_value("cursor", "parts")  # forgetting twice is fine


async def test_values_json_round_trip(store: SqlStateStore) -> None:
    value: dict[str, Any] = {
        "int": 1, "float": 1.5, "bool": True, "none": None, "text": "Привет \"q\" \\ ✓",
        "list": [1, "two", {"three": [3]}], "empty": {}, "big": 2**62 + 1,
    }
    await store.set_value("s", "k", value)
    assert await store.get_value("s", "k") == value
    await store.set_value("s", "list", [1, 2, 3])
    assert await store.get_value("s", "list") == [1, 2, 3]
    # Bare numbers stay exact (SQLite must not coerce the JSON text to a number).
    await store.set_value("s", "n", 2**62 + 1)
    assert await store.get_value("s", "n") == 2**62 + 1
    await store.set_value("s", "n", "18")
    assert await store.get_value("s", "n") == "18"


async def test_large_value_round_trip(store: SqlStateStore) -> None:
    # The shape of an InSales index: variants by barcode, about 5 MB of JSON.
    index = {f"46000{i:08d}": {"variant": i, "product": i // 3, "quantity": i % 17,
                               "sku": f"SKU-{i:08d}"}
             for i in range(60_000)}
    await store.set_value("insales", "main:index", index)
    assert await store.get_value("insales", "main:index") == index


async def test_quota_take_until_the_limit(store: SqlStateStore) -> None:
    assert await store.quota_used("mouser", "2026-01-01") == 0
    assert await store.quota_take("mouser", "2026-01-01", limit=5, n=3)
    assert await store.quota_take("mouser", "2026-01-01", limit=5, n=2)
    assert not await store.quota_take("mouser", "2026-01-01", limit=5)
    assert await store.quota_used("mouser", "2026-01-01") == 5
    # A new bucket (the next day) starts from zero; n beyond the limit never fits.
    assert await store.quota_take("mouser", "2026-01-02", limit=5)
    assert not await store.quota_take("mouser", "2026-01-03", limit=5, n=6)
    assert await store.quota_used("mouser", "2026-01-03") == 0


async def test_quota_refused_take_changes_nothing(store: SqlStateStore) -> None:
    assert await store.quota_take("k", "b", limit=10, n=8)
    assert not await store.quota_take("k", "b", limit=10, n=3)
    assert await store.quota_used("k", "b") == 8
    assert await store.quota_take("k", "b", limit=10, n=2)


async def test_quota_exhaust(store: SqlStateStore) -> None:
    await store.quota_exhaust("mouser", "d1", limit=1000)
    assert await store.quota_used("mouser", "d1") == 1000
    assert not await store.quota_take("mouser", "d1", limit=1000)

    assert await store.quota_take("mouser", "d2", limit=1000, n=10)
    await store.quota_exhaust("mouser", "d2", limit=1000)
    assert await store.quota_used("mouser", "d2") == 1000
    assert not await store.quota_take("mouser", "d2", limit=1000)


async def test_quota_survives_reopen(open_state: OpenStore) -> None:
    first = await open_state()
    assert await first.quota_take("mouser", "day", limit=10, n=4)
    await first.close()
    second = await open_state()
    assert await second.quota_used("mouser", "day") == 4


async def test_concurrent_takes_never_exceed_the_limit(open_state: OpenStore) -> None:
    # Two stores with their own engines: two replicas racing for one budget.
    one, two = await open_state(), await open_state()
    takes = [s.quota_take("shop", "window", limit=25) for _ in range(20) for s in (one, two)]
    results = await asyncio.gather(*takes)
    assert sum(results) == 25
    assert await one.quota_used("shop", "window") == 25
    assert await two.quota_used("shop", "window") == 25


async def test_waiting_for_a_turn_on_sqlite_is_not_an_outage(tmp_path: Path) -> None:
    """SQLite's statements take turns in the process; only the store's answer is bounded.

    With a bound of zero, an operation queued behind another fails at once if
    the queue counts (300 runs of an aligned cron queue for longer than 10 s).
    """
    store = await open_store(f"sqlite:///{tmp_path}/state.db")
    try:
        assert store._lock is not None
        await store._lock.acquire()  # someone else's statement in progress
        store.timeout = 0.0
        queued = asyncio.create_task(store.set_value("s", "k", {"n": 1}))
        for _ in range(20):
            await asyncio.sleep(0)
        assert not queued.done()
        store.timeout = 10.0
        store._lock.release()
        await queued
        assert await store.get_value("s", "k") == {"n": 1}
    finally:
        await store.close()
