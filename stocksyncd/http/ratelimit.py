"""Rate limiting in one place: a sliding-window budget with optional concurrency cap.

One limiter instance is shared by everything that spends the same budget
(every integration writing to one InSales shop), so their combined rate
stays under the upstream's limit.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from stocksyncd.clock import SYSTEM_CLOCK, Clock


class RateLimiter(Protocol):
    """Something a request passes through before it goes out."""

    def slot(self, weight: float = 1.0) -> AbstractAsyncContextManager[None]:
        """Reserve budget (and a concurrency slot) for one request."""
        ...

    def observe(self, headers: Mapping[str, str]) -> None:
        """Learn from the upstream's rate-limit headers."""
        ...

    def block_for(self, seconds: float) -> None:
        """Hold every request back for ``seconds`` (after a 429 with Retry-After)."""
        ...


class WindowLimiter:
    """At most ``limit`` weight units in any ``window`` seconds, ``concurrency`` at once.

    ``usage_header`` names a header of the form ``used/limit`` (InSales'
    ``API-Usage-Limit``); when the server reports more use than we counted
    (another process shares the budget), phantom entries are added so we
    slow down too.
    """

    def __init__(
        self,
        limit: float,
        window: float,
        *,
        concurrency: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
        usage_header: str | None = None,
        remaining_header: str | None = None,
        name: str = "",
    ) -> None:
        self.limit = limit
        self.window = window
        self.name = name
        self._clock = clock
        self._events: deque[tuple[float, float]] = deque()
        self._used = 0.0
        self._blocked_until = 0.0
        self._sem = asyncio.Semaphore(concurrency) if concurrency else None
        self._usage_header = usage_header
        self._remaining_header = remaining_header
        self._lock = asyncio.Lock()
        self.waited = 0.0

    def _prune(self, now: float) -> None:
        while self._events and self._events[0][0] <= now - self.window:
            _, weight = self._events.popleft()
            self._used -= weight

    @property
    def used(self) -> float:
        """Weight spent in the current window."""
        self._prune(self._clock.monotonic())
        return self._used

    async def acquire(self, weight: float = 1.0) -> None:
        """Wait until ``weight`` fits in the window, then spend it."""
        async with self._lock:  # FIFO: first come, first served
            while True:
                now = self._clock.monotonic()
                self._prune(now)
                if now < self._blocked_until:
                    wait = self._blocked_until - now
                elif self._used + weight <= self.limit or not self._events:
                    self._events.append((now, weight))
                    self._used += weight
                    return
                else:
                    wait = self._events[0][0] + self.window - now
                wait = max(wait, 0.001)
                self.waited += wait
                await self._clock.sleep(wait)

    @asynccontextmanager
    async def _slot(self, weight: float) -> AsyncIterator[None]:
        if self._sem is not None:
            async with self._sem:
                await self.acquire(weight)
                yield
        else:
            await self.acquire(weight)
            yield

    def slot(self, weight: float = 1.0) -> AbstractAsyncContextManager[None]:
        """Reserve budget for one request; with a concurrency cap, hold a slot while it runs."""
        return self._slot(weight)

    def block_for(self, seconds: float) -> None:
        """Hold every request back for ``seconds``."""
        until = self._clock.monotonic() + max(0.0, seconds)
        self._blocked_until = max(self._blocked_until, until)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Align the local count with what the server says it counted."""
        now = self._clock.monotonic()
        self._prune(now)
        server_used: float | None = None
        if self._usage_header and (raw := headers.get(self._usage_header)):
            used, _, _limit = raw.partition("/")
            try:
                server_used = float(used.strip())
            except ValueError:
                return
        elif self._remaining_header and (raw := headers.get(self._remaining_header)):
            try:
                server_used = self.limit - float(raw.strip())
            except ValueError:
                return
        if server_used is not None and server_used > self._used:
            extra = server_used - self._used
            self._events.append((now, extra))
            self._used += extra
