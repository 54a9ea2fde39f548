"""The Mouser quota counts per UTC minute and day in the state store."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from stocksyncd.clients.mouser_quota import MouserQuota
from stocksyncd.clock import FakeClock
from stocksyncd.errors import QuotaExhaustedError
from stocksyncd.state import open_store

START = datetime(2026, 3, 10, 23, 58, 30, tzinfo=UTC)
MIDNIGHT = datetime(2026, 3, 11, tzinfo=UTC).timestamp()


class FakeQuotaStore:
    """The three quota calls of StateStore, in memory (shared between 'restarts')."""

    def __init__(self) -> None:
        self.used: dict[tuple[str, str], int] = {}

    async def quota_take(self, key: str, bucket: str, limit: int, n: int = 1) -> bool:
        now = self.used.get((key, bucket), 0)
        if now + n > limit:
            return False
        self.used[(key, bucket)] = now + n
        return True

    async def quota_used(self, key: str, bucket: str) -> int:
        return self.used.get((key, bucket), 0)

    async def quota_exhaust(self, key: str, bucket: str, limit: int) -> None:
        self.used[(key, bucket)] = max(limit, self.used.get((key, bucket), 0))


def make(store: FakeQuotaStore, clock: FakeClock, per_minute: int = 3,
         per_day: int = 5) -> MouserQuota:
    return MouserQuota(store, "mouser:parts", per_minute, per_day, clock)  # type: ignore[arg-type]


async def test_minute_limit_resets_on_the_next_utc_minute() -> None:
    clock = FakeClock(START)
    quota = make(FakeQuotaStore(), clock)
    for _ in range(3):
        await quota.take()
    with pytest.raises(QuotaExhaustedError) as info:
        await quota.take()
    assert info.value.resets_at == datetime(2026, 3, 10, 23, 59, tzinfo=UTC).timestamp()
    assert await quota.left_today() == 2  # the refused call cost nothing
    clock.advance(30)
    await quota.take()
    assert await quota.left_today() == 1


async def test_day_limit_resets_at_utc_midnight() -> None:
    clock = FakeClock(START)
    quota = make(FakeQuotaStore(), clock, per_minute=30)
    for _ in range(5):
        await quota.take()
    assert await quota.left_today() == 0
    with pytest.raises(QuotaExhaustedError) as info:
        await quota.take()
    assert info.value.resets_at == MIDNIGHT
    clock.advance(MIDNIGHT - clock.time())
    assert await quota.left_today() == 5
    await quota.take()


async def test_too_many_requests_exhausts_the_day() -> None:
    clock = FakeClock(START)
    quota = make(FakeQuotaStore(), clock, per_minute=30, per_day=1000)
    await quota.take()
    assert await quota.exhausted_until_reset() == MIDNIGHT
    assert await quota.left_today() == 0
    with pytest.raises(QuotaExhaustedError):
        await quota.take()


async def test_daily_use_survives_a_new_quota_object() -> None:
    clock = FakeClock(START)
    store = FakeQuotaStore()
    for _ in range(2):
        await make(store, clock).take()
    clock.advance(60)
    assert await make(store, clock).left_today() == 3


async def test_keys_are_independent() -> None:
    clock = FakeClock(START)
    store = FakeQuotaStore()
    await MouserQuota(store, "a", 30, 1, clock).take()  # type: ignore[arg-type]
    await MouserQuota(store, "b", 30, 1, clock).take()  # type: ignore[arg-type]
    with pytest.raises(QuotaExhaustedError):
        await MouserQuota(store, "a", 30, 1, clock).take()  # type: ignore[arg-type]


async def test_daily_use_survives_closing_and_reopening_sqlite(tmp_path: Path) -> None:
    url = "sqlite:///" + str(tmp_path / "state.db")
    clock = FakeClock(START)
    store = await open_store(url, clock=clock)
    try:
        quota = MouserQuota(store, "mouser:parts", 30, 5, clock)
        for _ in range(3):
            await quota.take()
    finally:
        await store.close()
    reopened = await open_store(url, clock=clock)
    try:
        quota = MouserQuota(reopened, "mouser:parts", 30, 5, clock)
        assert await quota.left_today() == 2
        await quota.exhausted_until_reset()
        with pytest.raises(QuotaExhaustedError) as info:
            await quota.take()
        assert info.value.resets_at == MIDNIGHT
    finally:
        await reopened.close()
