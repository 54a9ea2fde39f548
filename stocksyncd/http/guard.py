"""Waits an upstream asks for, capped and floored, and a circuit breaker on 429s.

One guard per upstream budget: every transport that shares a rate limiter
shares its guard (they speak to the same account or shop), so the 429s of
all of a shop's jobs count together and an open circuit stops them all.
"""

from __future__ import annotations

import weakref
from collections import deque

from stocksyncd.clock import Clock
from stocksyncd.errors import HoldOffError, RateLimitedError
from stocksyncd.http.limits import Limits


class UpstreamGuard:
    """Decides, for each rate-limit answer, how long to hold back, or to stop trying."""

    def __init__(self, api: str, limits: Limits, clock: Clock) -> None:
        self.api = api
        self.limits = limits
        self.clock = clock
        self._refusals: deque[float] = deque()
        self._open_until = 0.0
        self._opened_after = 0

    def admit(self, request: str) -> None:
        """Raise ``HoldOffError`` while the circuit is open."""
        left = self._open_until - self.clock.monotonic()
        if left > 0:
            raise HoldOffError(
                self.api, f"{request}: not sent: the circuit breaker is open after "
                f"{self._opened_after} rate-limit answers within "
                f"{self.limits.breaker_window:.0f}s; {self.api} is left alone for another "
                f"{left:.0f}s",
            )

    def rate_limited(self, error: RateLimitedError, request: str) -> float:
        """The wait to apply for ``error``, raised to the floor; ``HoldOffError`` instead
        when the circuit opens or the upstream asks for more than the cap."""
        limits = self.limits
        now = self.clock.monotonic()
        refusals = self._refusals
        refusals.append(now)
        while refusals and refusals[0] <= now - limits.breaker_window:
            refusals.popleft()
        if len(refusals) >= limits.breaker_429s:
            self._open_until = now + limits.breaker_pause
            self._opened_after = len(refusals)
            refusals.clear()
            raise HoldOffError(
                self.api, f"{request}: {self._opened_after} rate-limit answers within "
                f"{limits.breaker_window:.0f}s (last: HTTP {error.status}); the circuit "
                f"breaker opened: {self.api} is left alone for {limits.breaker_pause:.0f}s",
                status=error.status,
            ) from error
        asked = error.retry_after
        if asked is not None and asked > limits.max_wait:
            raise HoldOffError(
                self.api, f"{request}: the server asked to wait {_seconds(asked)} (HTTP "
                f"{error.status}), more than max_wait {limits.max_wait:.0f}s; not waiting",
                status=error.status,
            ) from error
        return max(asked or 0.0, limits.min_429_wait)


def _seconds(value: float) -> str:
    return f"{value:.0f}s" if value < 1e12 else "an unbounded time"


_shared: weakref.WeakKeyDictionary[object, UpstreamGuard] = weakref.WeakKeyDictionary()


def guard_for(budget: object, api: str, limits: Limits, clock: Clock) -> UpstreamGuard:
    """The guard of everyone spending ``budget`` (a rate limiter), made on first use."""
    guard = _shared.get(budget)
    if guard is None:
        guard = _shared[budget] = UpstreamGuard(api, limits, clock)
    return guard
