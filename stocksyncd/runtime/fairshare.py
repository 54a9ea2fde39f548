"""Which replica takes which job: a fair share of the leases for each live replica.

Every replica on a shared PostgreSQL store fires every job on its own timer,
and whoever takes the lease first runs it. Left alone, the replica whose timers
come first takes nearly all of them, and two replicas carry no more than one.
So each job has one chosen replica among those alive (rendezvous hashing of
the job's name with each replica's name: every replica computes the same
choice without talking to the others, each gets about 1/n of the jobs, and
when a replica comes or goes only its own share moves).

A replica that is not a job's choice leaves the tick to the chosen one, unless
the job is overdue: no run of it (on any replica) started or ended within
``OVERDUE_PERIODS`` periods, as when the chosen replica cannot build that
integration or is stuck (then the lease, once expired, lets another take
it). A job that has never run is not overdue before this replica has been
firing it for that long either: replicas started together would otherwise
both run every job of their first period, and half of the jobs would then
move to their chosen replica, which loads their stored state anew. A
replica that stopped is out of the live set once its heartbeat is
``LIVE_WITHIN`` seconds old, and its jobs pass to the others.
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
# Until it sees another replica, a replica that started less than LIVE_WITHIN ago
# reads the live set this often: replicas started together find each other at once.
REFRESH_ALONE = 1.0
# A job that has not started anywhere for this many periods is run by whoever fires it.
OVERDUE_PERIODS = 1.5


def _score(job: str, replica: str) -> int:
    digest = hashlib.blake2b(f"{replica}\0{job}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def choose(job: str, replicas: Iterable[str]) -> str | None:
    """The replica that should run ``job`` (highest hash score); None when none is live."""
    return max(replicas, key=lambda r: (_score(job, r), r), default=None)


def last_seen(run: RunRecord) -> datetime:
    """When ``run`` last showed its job looked after: when it ended, or began if it
    has not ended. A run still in flight is not counted as now: its replica may be
    stuck, and the lease, tried next, tells whether it is still held."""
    return max(run.started_at, run.finished_at or run.started_at)


def overdue(runs: Iterable[RunRecord], *, now: datetime, period: float,
            since: datetime | None = None) -> bool:
    """No run of the job started or ended within ``OVERDUE_PERIODS`` periods of
    ``now``, and ``since`` (when this replica began firing the job) is at least
    that long ago.

    A run that ended lately counts however long it took: a long one (a cold run
    that waited for its turn, say) would otherwise leave its job overdue the
    moment it ends, and move it to a replica that has to load its index again.
    """
    window = period * OVERDUE_PERIODS
    if since is not None and (now - since).total_seconds() < window:
        return False
    return all((now - last_seen(run)).total_seconds() >= window for run in runs)


class FairShare:
    """This replica's view of the live replicas, and its turn for each job."""

    def __init__(self, state: StateStore, me: str, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self.state = state
        self.me = me
        self.clock = clock
        self._live: list[str] = [me]
        self._read_at: float | None = None
        self._started = clock.monotonic()
        # When this replica first asked about each job (start-up, or the reload that
        # added it): a job never run is overdue only 1.5 periods after that.
        self._first_asked: dict[str, datetime] = {}

    async def live(self) -> list[str]:
        """Replicas whose heartbeat is fresh, this one always included."""
        now = self.clock.monotonic()
        alone = self._live == [self.me] and now - self._started < LIVE_WITHIN
        every = REFRESH_ALONE if alone else REFRESH_EVERY
        if self._read_at is None or now - self._read_at >= every:
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
        since = self._first_asked.setdefault(job, self.clock.now())
        chosen = choose(job, await self.live())
        if chosen in (None, self.me) or period is None:
            return True
        runs = await self.state.recent_runs(job, limit=3, details=False)
        if overdue(runs, now=self.clock.now(), period=period, since=since):
            logger.info("{}: overdue on replica {}; running it here", job, chosen)
            return True
        logger.debug("{}: replica {} runs it", job, chosen)
        return False
