"""The one retry policy: capped exponential backoff with jitter that honours Retry-After.

It never catches ``CancelledError`` (it is not an ``Exception``), so a shutdown
interrupts a backoff sleep at once.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from loguru import logger

from stocksyncd.clock import SYSTEM_CLOCK, Clock
from stocksyncd.errors import RetriableError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry a retriable failure."""

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0
    # A server that asks for more than this is not waited for: the run fails
    # and the next scheduled run tries again.
    max_retry_after: float = 330.0
    jitter: float = 0.2

    def delay(self, attempt: int, error: RetriableError, rng: random.Random) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (attempt counts from 1)."""
        backoff = min(self.max_delay, self.base_delay * (2.0 ** (attempt - 1)))
        backoff *= 1 + rng.uniform(-self.jitter, self.jitter)
        if error.retry_after is not None:
            # The server knows its window; never go below what it asked for.
            return float(max(error.retry_after, 0.0) + rng.uniform(0, self.jitter))
        return max(0.0, backoff)


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(attempts=1)


async def call_with_retry(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy = DEFAULT_RETRY,
    *,
    clock: Clock = SYSTEM_CLOCK,
    rng: random.Random | None = None,
    on_retry: Callable[[int, RetriableError, float], None] | None = None,
) -> T:
    """Run ``fn`` until it succeeds, raises a non-retriable error, or attempts run out."""
    rng = rng or random.Random()
    attempt = 0
    while True:
        attempt += 1
        try:
            return await fn()
        except RetriableError as error:
            if attempt >= policy.attempts:
                raise
            wait = policy.delay(attempt, error, rng)
            if wait > policy.max_retry_after:
                raise
            if on_retry is not None:
                on_retry(attempt, error, wait)
            else:
                logger.debug(
                    "retrying after {wait:.1f}s (attempt {attempt}/{total}): {error}",
                    wait=wait,
                    attempt=attempt,
                    total=policy.attempts,
                    error=error,
                )
            await clock.sleep(wait)
