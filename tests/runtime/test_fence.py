"""The write fence: our view of the lease, the store's, and the check at the wire."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from stocksyncd.clock import FakeClock
from stocksyncd.errors import WriteFenced
from stocksyncd.http.ratelimit import WindowLimiter
from stocksyncd.integrations.base import Change
from stocksyncd.runtime.fence import FencedLimiter, HeldLease, StoreWriteAhead
from stocksyncd.state import SqlStateStore, open_store

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
KEY = "integration:stock"
TTL = 6.0


@pytest.fixture
async def store(clock: FakeClock) -> AsyncIterator[SqlStateStore]:
    s = await open_store("sqlite://", clock=clock)
    await s.start_run(run_id="r", integration="stock", trigger="schedule", dry_run=False,
                      replica="alpha", started_at=T0)
    try:
        yield s
    finally:
        await s.close()


def _lease(store: SqlStateStore, clock: FakeClock) -> HeldLease:
    async def renew() -> bool:
        return await store.renew_lease(KEY, "alpha", TTL)

    return HeldLease(KEY, "alpha", TTL, clock, renew)


def _change(ref: str) -> Change:
    return Change(ref=ref, key=f"k{ref}", field="quantity", old="0", new="1")


async def _stored(store: SqlStateStore) -> list[tuple[str, str]]:
    run = await store.get_run("r")
    assert run is not None
    return [(c.ref, c.status) for c in run.changes]


async def test_a_batch_is_stored_only_while_the_lease_covers_it(
    store: SqlStateStore, clock: FakeClock,
) -> None:
    assert await store.try_acquire_lease(KEY, "alpha", TTL)
    lease = _lease(store, clock)
    lease.kept(clock.monotonic())
    audit = StoreWriteAhead(store, "r", lease)

    await audit.planned([_change("1")], may_take=2)
    clock.advance(4)  # 2 s left: renewed on the spot, then it covers the batch
    await audit.planned([_change("2")], may_take=2)
    assert lease.left() == pytest.approx(TTL)

    # Another replica took it over while ours looked valid: the store says no.
    clock.advance(TTL + 1)
    assert await store.try_acquire_lease(KEY, "beta", TTL)
    lease.kept(clock.monotonic())  # a stale belief of ours
    with pytest.raises(WriteFenced, match="held by replica beta"):
        await audit.planned([_change("3")], may_take=2)
    # And once our own renewal is refused, for good.
    clock.advance(TTL)
    with pytest.raises(WriteFenced, match="taken over"):
        await audit.planned([_change("4")], may_take=2)
    assert lease.lost is not None
    assert await _stored(store) == [("1", "planned"), ("2", "planned")]
    assert [c.ref for c in audit.changes] == ["1", "2"]


async def test_a_batch_longer_than_the_lease_is_never_sent(
    store: SqlStateStore, clock: FakeClock,
) -> None:
    assert await store.try_acquire_lease(KEY, "alpha", TTL)
    lease = _lease(store, clock)
    lease.kept(clock.monotonic())
    audit = StoreWriteAhead(store, "r", lease)
    with pytest.raises(WriteFenced, match=r"daemon\.lease_ttl"):
        await audit.planned([_change("1")], may_take=TTL)
    assert await _stored(store) == []


async def test_the_wire_check_stops_a_request_after_a_pause(
    store: SqlStateStore, clock: FakeClock,
) -> None:
    assert await store.try_acquire_lease(KEY, "alpha", TTL)
    lease = _lease(store, clock)
    lease.kept(clock.monotonic())
    audit = StoreWriteAhead(store, "r", lease)
    limiter = FencedLimiter(WindowLimiter(100, 60, clock=clock))
    await audit.planned([_change("1")], may_take=1)
    async with limiter.slot():
        pass  # sent in time
    clock.advance(TTL - 0.5)  # frozen, or waiting for rate budget, until the lease is nearly out
    with pytest.raises(WriteFenced, match="request not sent"):
        async with limiter.slot():
            raise AssertionError("the request went out")
    lease.lose("another replica took it over")
    with pytest.raises(WriteFenced, match="lost"):
        async with limiter.slot():
            raise AssertionError("the request went out")


async def test_without_a_lease_only_the_store_decides(store: SqlStateStore) -> None:
    audit = StoreWriteAhead(store, "r")
    changes = [_change("1"), _change("2")]
    await audit.planned(changes, may_take=30)
    await audit.settle(changes[:1], "sent")
    await audit.settle(changes[1:], "refused", "422: quantity must be a number")
    assert await _stored(store) == [("1", "sent"), ("2", "refused")]
    assert [c.applied for c in changes] == [True, False]
    await store.close()  # the store can no longer record
    with pytest.raises(WriteFenced, match="could not record"):
        await audit.planned([_change("3")], may_take=1)
