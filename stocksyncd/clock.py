"""Time as a dependency, so tests move a fake clock instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What the code needs from time: a monotonic reading, the wall clock, a sleep."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""
        ...

    def time(self) -> float:
        """Seconds since the epoch (wall clock)."""
        ...

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait; cancellation interrupts it."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        """Seconds on the monotonic clock."""
        return time.monotonic()

    def time(self) -> float:
        """Seconds since the epoch."""
        return time.time()

    def now(self) -> datetime:
        """Now, in UTC."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that only moves when told to, or when someone sleeps on it.

    ``sleep`` advances virtual time at once and yields to the loop, so code
    that waits for a Retry-After finishes instantly while the waited seconds
    stay observable (``slept``).
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._elapsed = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        """Virtual monotonic seconds."""
        return 1000.0 + self._elapsed

    def time(self) -> float:
        """Virtual epoch seconds."""
        return self._start.timestamp() + self._elapsed

    def now(self) -> datetime:
        """Virtual now, in UTC."""
        return self._start + timedelta(seconds=self._elapsed)

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self._elapsed += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        """Advance virtual time and let other tasks run."""
        if seconds > 0:
            self.slept.append(seconds)
            self.advance(seconds)
        await asyncio.sleep(0)


SYSTEM_CLOCK = SystemClock()
