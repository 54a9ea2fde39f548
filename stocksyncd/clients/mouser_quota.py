"""Mouser's call quota (30 a minute, 1000 a day), counted in the state store.

Counting in the store makes the daily use survive restarts and be shared by
replicas. Mouser does not document whether its day is a calendar day or a
rolling 24 h; we count per UTC calendar day and per UTC minute, and assume
the daily quota resets at 00:00 UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from stocksyncd.clients.mouser import MouserRateLimited, next_utc_midnight
from stocksyncd.clock import Clock
from stocksyncd.state.api import StateStore


class MouserQuota:
    """Take one call from the minute and the day budget before every Mouser request."""

    def __init__(
        self, state: StateStore, key: str, per_minute: int, per_day: int, clock: Clock
    ) -> None:
        self.state = state
        self.key = key
        self.per_minute = per_minute
        self.per_day = per_day
        self.clock = clock

    def _day_bucket(self) -> str:
        return "day:" + datetime.fromtimestamp(self.clock.time(), UTC).strftime("%Y-%m-%d")

    def _minute_bucket(self) -> str:
        return "minute:" + datetime.fromtimestamp(self.clock.time(), UTC).strftime(
            "%Y-%m-%dT%H:%M"
        )

    def day_resets_at(self) -> float:
        """Epoch seconds of the next daily reset (00:00 UTC)."""
        return next_utc_midnight(self.clock.time())

    def minute_resets_at(self) -> float:
        """Epoch seconds of the next full UTC minute."""
        now = self.clock.time()
        return (now // 60 + 1) * 60

    async def take(self) -> None:
        """Spend one call, or raise ``MouserRateLimited`` naming the window and its reset.

        Every Mouser call of the key goes through here (runs and review-page
        actions alike), so this is the one ledger of the day's calls.
        """
        # The day is checked without spending first, so a refused call never
        # uses a minute slot; the minute slot is then taken before the day unit.
        if await self.state.quota_used(self.key, self._day_bucket()) >= self.per_day:
            raise self._day_error()
        if not await self.state.quota_take(self.key, self._minute_bucket(), self.per_minute):
            raise _ledger(f"{self.per_minute} calls this minute used", "minute",
                          self.minute_resets_at())
        if not await self.state.quota_take(self.key, self._day_bucket(), self.per_day):
            raise self._day_error()

    async def exhausted_until_reset(self) -> float:
        """Mouser said ``TooManyRequests``: no more calls today; returns the reset time."""
        await self.state.quota_exhaust(self.key, self._day_bucket(), self.per_day)
        return self.day_resets_at()

    async def left_today(self) -> int:
        """Calls left in the current UTC day (for ``stocksyncd_mouser_quota_left``)."""
        used = await self.state.quota_used(self.key, self._day_bucket())
        return max(0, self.per_day - used)

    async def used_today(self) -> int:
        """Calls counted in the current UTC day."""
        return await self.state.quota_used(self.key, self._day_bucket())

    def _day_error(self) -> MouserRateLimited:
        return _ledger(f"{self.per_day} calls today used (resets 00:00 UTC)", "day",
                       self.day_resets_at())


def _ledger(message: str, window: Literal["minute", "day"], resets_at: float
            ) -> MouserRateLimited:
    """A refusal by our own ledger: no call went out."""
    return MouserRateLimited(message, window=window, resets_at=resets_at, ledger=True)


__all__ = ["MouserQuota"]
