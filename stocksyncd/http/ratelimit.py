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
    ``API-Usage-Limit``; ``remaining_header`` one that says what is left).
    Once the server has told its figure, the count is that figure plus what
    was still unanswered when it came plus what we sent since, whatever the
    figure: other processes sharing the budget (other apps, other replicas)
    are counted, and so is our own use that the server had not seen yet. A
    figure stops counting ``window`` seconds after it came, by when the
    server's window has surely ended. Without any figure it is our own
    sends in the sliding window.
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
        self._events: deque[tuple[float, int, float]] = deque()  # (when, seq, weight) we sent
        self._seq = 0
        self._unanswered: dict[int, float] = {}  # seq -> weight of requests in flight
        # The server's latest figure: (when it came, its count, the last seq it may include)
        self._server: tuple[float, float, int] | None = None
        self._blocked_until = 0.0
        self._sem = asyncio.Semaphore(concurrency) if concurrency else None
        self._usage_header = usage_header
        self._remaining_header = remaining_header
        self._lock = asyncio.Lock()
        self.waited = 0.0

    def _prune(self, now: float) -> None:
        while self._events and self._events[0][0] <= now - self.window:
            self._events.popleft()
        if self._server is not None and now >= self._server[0] + self.window:
            self._server = None

    def _count(self, now: float) -> float:
        self._prune(now)
        if self._server is None:
            return sum(w for _, _, w in self._events)
        _, figure, seen = self._server
        return figure + sum(w for _, seq, w in self._events if seq > seen)

    @property
    def used(self) -> float:
        """Weight counted as spent in the current window."""
        return self._count(self._clock.monotonic())

    async def acquire(self, weight: float = 1.0) -> int:
        """Wait until ``weight`` fits in the window, then spend it; returns its number."""
        async with self._lock:  # FIFO: first come, first served
            while True:
                now = self._clock.monotonic()
                used = self._count(now)
                ends = [self._events[0][0] + self.window] if self._events else []
                if self._server is not None:
                    ends.append(self._server[0] + self.window)
                if now < self._blocked_until:
                    wait = self._blocked_until - now
                elif used + weight <= self.limit or not ends:
                    self._seq += 1
                    self._events.append((now, self._seq, weight))
                    return self._seq
                else:
                    wait = min(ends) - now
                wait = max(wait, 0.001)
                self.waited += wait
                await self._clock.sleep(wait)

    @asynccontextmanager
    async def _slot(self, weight: float) -> AsyncIterator[None]:
        if self._sem is not None:
            async with self._sem, self._in_flight(weight):
                yield
        else:
            async with self._in_flight(weight):
                yield

    @asynccontextmanager
    async def _in_flight(self, weight: float) -> AsyncIterator[None]:
        seq = await self.acquire(weight)
        self._unanswered[seq] = weight
        try:
            yield
        finally:
            del self._unanswered[seq]

    def slot(self, weight: float = 1.0) -> AbstractAsyncContextManager[None]:
        """Reserve budget for one request; with a concurrency cap, hold a slot while it runs."""
        return self._slot(weight)

    def block_for(self, seconds: float) -> None:
        """Hold every request back for ``seconds``."""
        until = self._clock.monotonic() + max(0.0, seconds)
        self._blocked_until = max(self._blocked_until, until)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Take the server's count as the count, plus what it cannot have seen yet."""
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
        if server_used is None:
            return
        # Requests still unanswered may reach the server after this figure was made.
        unanswered = sum(self._unanswered.values())
        self._server = (self._clock.monotonic(), server_used + unanswered, self._seq)
