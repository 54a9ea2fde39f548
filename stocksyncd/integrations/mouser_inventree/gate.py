"""Every Mouser call of the job goes through here: the ledger first, then the call.

Failures are translated by whose fault they are (``outcomes``). Mouser
answers both of its limits with ``TooManyRequests``, the daily one without
a message, so the window is told from what Mouser said, else from our own
ledger: a per-minute refusal waits a minute and goes on, and only the daily
quota stops calls until 00:00 UTC.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from loguru import logger

from stocksyncd.clients.mouser import MouserRateLimited
from stocksyncd.clients.mouser_quota import MouserQuota
from stocksyncd.clock import Clock
from stocksyncd.errors import (
    AuthError,
    FatalApiError,
    InvalidResponseError,
    PayloadError,
    QuotaExhaustedError,
    RetriableError,
)
from stocksyncd.integrations.mouser_inventree.cursor import STATE_SCOPE
from stocksyncd.integrations.mouser_inventree.outcomes import (
    PartProblem,
    PartRetry,
    RunFailure,
    Stop,
)

# Refusals without a message that go on this long (every call refused, runs apart)
# are taken for the daily quota rather than the per-minute limit.
REFUSED_FOR_DAY = 900.0
T = TypeVar("T")


def iso(epoch: float | None) -> str:
    """A reset time for messages."""
    if epoch is None:
        return "an unknown time"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


class MouserGate:
    """The calls of one integration (``name``) against one key's ledger (``quota``)."""

    def __init__(self, name: str, quota: MouserQuota, clock: Clock) -> None:
        self.name = name
        self.quota = quota
        self.clock = clock

    async def call(self, call: Callable[[], Awaitable[T]]) -> T:
        """One Mouser call through the ledger; a per-minute refusal waits a minute once."""
        waited = False
        while True:
            try:
                await self.quota.take()
                answer = await self._call(call)
            except MouserRateLimited as exc:
                verdict = await self._verdict(exc, waited=waited)
                if verdict == "day":
                    resets = (exc.resets_at if exc.ledger
                              else await self.quota.exhausted_until_reset())
                    raise Stop(f"Mouser's daily call quota is used up ({exc.detail}); "
                               f"calls resume after the reset at {iso(resets)}",
                               resets) from exc
                if verdict == "stop":
                    raise Stop(f"Mouser's per-minute limit still refuses after a minute's "
                               f"wait ({exc.detail}); the next run tries again",
                               None) from exc
                waited = True
                # Our ledger counts calendar minutes; Mouser's minute may be rolling.
                pause = 60.0
                if exc.ledger and exc.resets_at is not None:
                    pause = min(60.0, max(1.0, exc.resets_at - self.clock.time()))
                logger.info("{}: Mouser's per-minute limit reached ({}); going on in {:.0f} s",
                            self.name, exc.detail, pause)
                await self.clock.sleep(pause)
                continue
            if waited or await self.quota.state.get_value(STATE_SCOPE, self._refused_key):
                await self.quota.state.delete_value(STATE_SCOPE, self._refused_key)
            return answer

    @property
    def _refused_key(self) -> str:
        return f"{self.name}:refused_since"

    async def _verdict(self, exc: MouserRateLimited, *, waited: bool) -> str:
        """"day" (stop until the reset), "minute" (wait a minute) or "stop" (end this run).

        What Mouser said decides, else our ledger: Mouser's daily refusal carries
        no message, so with most of the day left by our count a refusal is taken
        for the minute (another user of the key may share it). Only refusals that
        go on for ``REFUSED_FOR_DAY`` seconds with no answer between them are taken
        for the day.
        """
        if exc.window == "day":
            return "day"
        if exc.window == "minute" or exc.ledger:
            return "stop" if waited else "minute"
        if await self.quota.left_today() <= self.quota.per_day // 100:
            return "day"  # our own calls used the day up (give or take other users' calls)
        if not waited:
            return "minute"
        now = self.clock.time()
        since = await self.quota.state.get_value(STATE_SCOPE, self._refused_key)
        if not isinstance(since, int | float) or isinstance(since, bool):
            await self.quota.state.set_value(STATE_SCOPE, self._refused_key, now)
            return "stop"
        return "day" if now - since >= REFUSED_FOR_DAY else "stop"

    @staticmethod
    async def _call(call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except QuotaExhaustedError:
            raise
        except AuthError as exc:
            raise RunFailure(f"Mouser refused the API key: {exc}") from exc
        except InvalidResponseError as exc:
            raise PartProblem(f"Mouser sent an unreadable answer: {exc}") from exc
        except RetriableError as exc:
            raise PartRetry(f"Mouser is unavailable: {exc}") from exc
        except FatalApiError as exc:
            if exc.status is not None and exc.status >= 400:
                # Mouser reports a bad part in a 200 body: an HTTP refusal (a proxy's
                # 407, a wrong base URL) would refuse every part alike.
                raise RunFailure(f"Mouser refused the call: {exc}") from exc
            raise PartRetry(f"Mouser: {exc}") from exc
        except PayloadError as exc:
            raise PartProblem(f"Mouser: {exc}") from exc


__all__ = ["REFUSED_FOR_DAY", "MouserGate", "iso"]
