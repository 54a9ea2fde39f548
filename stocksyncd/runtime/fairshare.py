"""Which replica takes which job: a fair share of the leases for each live replica.

Every replica on a shared PostgreSQL store fires every job on its own timer,
and whoever takes the lease first runs it. Left alone, the replica whose timers
come first takes nearly all of them, and two replicas carry no more than one.
So each job has one chosen replica among those alive (rendezvous hashing of
the job's name with each replica's name: every replica computes the same
choice without talking to the others, each gets about 1/n of the jobs, and
when a replica comes or goes only its own share moves).

A replica that is not a job's choice leaves the tick to the chosen one, unless
the job is overdue: no run of it (on any replica) started within
``OVERDUE_PERIODS`` periods, as when the chosen replica cannot build that
integration. A replica that stopped is out of the live set once its heartbeat
is ``LIVE_WITHIN`` seconds old, and its jobs pass to the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

from loguru import logger

from stocksyncd.clock import SYSTEM_CLOCK, Clock
from stocksyncd.state.api import RunRecord, StateStore

# Three missed heartbeats (15 s apart) and a replica no longer counts as alive.
LIVE_WITHIN = 45.0
# The live set is read again at most this often (one query, shared by every job).
REFRESH_EVERY = 15.0
# A job that has not started anywhere for this many periods is run by whoever fires it.
OVERDUE_PERIODS = 1.5


def _score(job: str, replica: str) -> int:
    digest = hashlib.blake2b(f"{replica}\0{job}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def choose(job: str, replicas: Iterable[str]) -> str | None:
    """The replica that should run ``job`` (highest hash score); None when none is live."""
    return max(replicas, key=lambda r: (_score(job, r), r), default=None)


def overdue(runs: Iterable[RunRecord], *, now: datetime, period: float) -> bool:
    """No run of the job started within ``OVERDUE_PERIODS`` periods of ``now``."""
    window = period * OVERDUE_PERIODS
    return all((now - run.started_at).total_seconds() >= window for run in runs)


class FairShare:
    """This replica's view of the live replicas, and its turn for each job."""

    def __init__(self, state: StateStore, me: str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.state = state
        self.me = me
        self.clock = clock
        self._live: list[str] = [me]
        self._read_at: float | None = None

    async def live(self) -> list[str]:
        """Replicas whose heartbeat is fresh, this one always included."""
        now = self.clock.monotonic()
        if self._read_at is None or now - self._read_at >= REFRESH_EVERY:
            try:
                seen = await self.state.replicas(seen_within=LIVE_WITHIN)
            except Exception as exc:  # noqa: BLE001 - keep the last known set through an outage
                logger.warning("could not read the live replicas: {}", exc)
            else:
                self._live = sorted({r.replica for r in seen} | {self.me})
            self._read_at = now
        return self._live

    async def my_turn(self, job: str, period: float | None) -> bool:
        """Whether this replica should try to run ``job``'s scheduled tick now."""
        chosen = choose(job, await self.live())
        if chosen in (None, self.me) or period is None:
            return True
        runs = await self.state.recent_runs(job, limit=3)
        if overdue(runs, now=self.clock.now(), period=period):
            logger.info("{}: overdue on replica {}; running it here", job, chosen)
            return True
        logger.debug("{}: replica {} runs it", job, chosen)
        return False
