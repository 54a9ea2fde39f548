"""Leases, replica heartbeats and review entries."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from stocksyncd.clock import FakeClock
from stocksyncd.state import ReviewEntry, SqlStateStore

OpenStore = Callable[[], Awaitable[SqlStateStore]]


async def test_lease_acquire_contend_expire_takeover(store: SqlStateStore,
                                                     clock: FakeClock) -> None:
    start = clock.now()
    assert await store.try_acquire_lease("job:warehouse", "a", ttl=60)
    assert not await store.try_acquire_lease("job:warehouse", "b", ttl=60)
    assert await store.try_acquire_lease("job:warehouse", "a", ttl=60)  # already ours

    [lease] = await store.leases()
    assert (lease.name, lease.holder) == ("job:warehouse", "a")
    assert lease.acquired_at == start
    assert lease.expires_at == start + timedelta(seconds=60)

    clock.advance(59)
    assert not await store.try_acquire_lease("job:warehouse", "b", ttl=60)
    clock.advance(2)
    assert await store.leases() == []
    assert await store.try_acquire_lease("job:warehouse", "b", ttl=60)  # expired: taken over
    [lease] = await store.leases()
    assert lease.holder == "b" and lease.acquired_at == clock.now()
    assert not await store.renew_lease("job:warehouse", "a", ttl=60)  # no longer a's


async def test_lease_renew_keeps_it_and_release_frees_it(store: SqlStateStore,
                                                         clock: FakeClock) -> None:
    assert await store.try_acquire_lease("job:x", "a", ttl=30)
    acquired = clock.now()
    clock.advance(20)
    assert await store.renew_lease("job:x", "a", ttl=30)
    clock.advance(20)  # past the first expiry, within the renewed one
    assert not await store.try_acquire_lease("job:x", "b", ttl=30)
    [lease] = await store.leases()
    assert lease.acquired_at == acquired and lease.expires_at == acquired + timedelta(seconds=50)

    await store.release_lease("job:x", "b")  # not b's: nothing happens
    assert [x.holder for x in await store.leases()] == ["a"]
    await store.release_lease("job:x", "a")
    assert await store.leases() == []
    assert not await store.renew_lease("job:x", "a", ttl=30)
    assert await store.try_acquire_lease("job:x", "b", ttl=30)


async def test_only_one_replica_wins_a_race(open_state: OpenStore) -> None:
    stores = [await open_state(), await open_state()]
    attempts = [s.try_acquire_lease("job:race", f"r{i}-{j}", ttl=60)
                for j in range(10) for i, s in enumerate(stores)]
    results = await asyncio.gather(*attempts)
    assert sum(results) == 1
    [lease] = await stores[0].leases()
    winner = [f"r{i}-{j}" for j in range(10) for i in range(2)][results.index(True)]
    assert lease.holder == winner


async def test_heartbeat_and_replicas(store: SqlStateStore, clock: FakeClock) -> None:
    boot = clock.now()
    await store.heartbeat("host-a", started_at=boot, version="0.1.0", info={"pid": 10})
    clock.advance(30)
    await store.heartbeat("host-b", started_at=clock.now(), version="0.1.0")
    clock.advance(30)
    await store.heartbeat("host-a", started_at=boot, version="0.1.1", info={"pid": 11})

    both = await store.replicas(seen_within=45)
    assert [r.replica for r in both] == ["host-a", "host-b"]
    a = both[0]
    assert a.version == "0.1.1" and a.info == {"pid": 11}
    assert a.started_at == boot and a.seen_at == clock.now()
    assert both[1].info == {}

    clock.advance(20)  # b last seen 50 s ago, a 20 s ago
    assert [r.replica for r in await store.replicas(seen_within=45)] == ["host-a"]


async def test_review_crud(store: SqlStateStore, clock: FakeClock) -> None:
    hits: dict[str, Any] = {"count": 2, "hits": [{"mouser_pn": "595-LM358", "mpn": "LM358"},
                                 {"mouser_pn": "N/A", "mpn": "LM358B", "na": True}]}
    entry = ReviewEntry(integration="parts", part_pk=7, part_name="LM358", kind="hits",
                        message="2 hits", data=hits, run_id="run-1")
    first = await store.add_review(entry)
    assert entry.id == first and entry.created_at == clock.now()
    clock.advance(1)
    second = await store.add_review(ReviewEntry(integration="parts", part_pk=8, part_name="NE555",
                                                kind="error", message="garbage"))
    await store.add_review(ReviewEntry(integration="other", part_pk=1, part_name="X",
                                       kind="hits"))

    got = await store.get_review(first)
    assert got is not None
    assert (got.part_pk, got.part_name, got.kind, got.run_id) == (7, "LM358", "hits", "run-1")
    assert got.data == hits and got.created_at == datetime(2026, 1, 1, tzinfo=UTC)

    listed = await store.list_reviews("parts")
    assert [r.id for r in listed] == [second, first]
    assert [r.id for r in await store.list_reviews("parts", kind="hits")] == [first]
    assert len(await store.list_reviews()) == 3
    assert len(await store.list_reviews(limit=1)) == 1

    hits["hits"][0]["created"] = 42
    await store.update_review(first, data=hits, message="created supplier part 42")
    updated = await store.get_review(first)
    assert updated is not None
    assert updated.data["hits"][0]["created"] == 42
    assert updated.message == "created supplier part 42" and updated.kind == "hits"
    await store.update_review(first, kind="updated")
    again = await store.get_review(first)
    assert again is not None and again.kind == "updated" and again.message.startswith("created")

    assert await store.delete_review(first)
    assert not await store.delete_review(first)
    assert await store.get_review(first) is None
    assert await store.get_review(999_999) is None
