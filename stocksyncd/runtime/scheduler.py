"""APScheduler wiring: one job per enabled integration, reconciled by name.

A job only *signals* that a run is due (``fire(name)``); the daemon starts
and tracks the run as its own task. APScheduler 3.x cancels coroutine jobs
when it shuts down and cannot wait for them, so it must never own a run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from loguru import logger

from stocksyncd.config import IntegrationBase, effective_every
from stocksyncd.state.api import RunRecord

# Without an explicit jitter, spread each run by up to 5% of the interval
# (at most a minute) so integrations on the same host do not line up.
DEFAULT_JITTER_SHARE = 0.05
MAX_DEFAULT_JITTER = 60.0
# Jobs scheduled together are spread evenly over one period of their schedule, so
# hundreds of jobs neither all hit at once nor wait minutes for their first turn
# (300 one-minute jobs run 0.2 s apart, the first within the first minute). A few
# jobs are spread no wider than this much each, so a handful of hourly jobs still
# start within seconds of each other.
START_STAGGER = 2.0
# Replicas sharing a PostgreSQL store each fire every job on their own timer. The
# lease keeps their runs apart but not out of one period, so a scheduled run is
# skipped when a scheduled run of the same job (on any replica) started within
# this share of the period and finished ok. With one replica nothing changes: its
# own previous run started a whole period ago.
ONCE_PER_PERIOD_SHARE = 0.5


@dataclass(frozen=True)
class JobSpec:
    """When one integration runs."""

    name: str
    every: float | None
    cron: str | None
    jitter: float
    run_at_start: bool

    @property
    def misfire_grace(self) -> int:
        """Seconds a late tick may still run (after a stall); later ones are coalesced."""
        if self.every is None:
            return 300
        return int(max(30.0, min(self.every / 2, 600.0)))


def job_spec(name: str, cfg: IntegrationBase, type_: str) -> JobSpec:
    """The schedule of an integration's config section."""
    every = effective_every(cfg, type_)
    if cfg.jitter is not None:
        jitter = cfg.jitter
    elif every is not None:
        jitter = min(every * DEFAULT_JITTER_SHARE, MAX_DEFAULT_JITTER)
    else:
        jitter = 0.0
    return JobSpec(name=name, every=every, cron=cfg.cron, jitter=jitter,
                   run_at_start=cfg.run_at_start)


def schedule_period(spec: JobSpec, now: datetime) -> float:
    """The length of one period of ``spec``: ``every``, or the gap between two cron ticks."""
    if spec.every is not None:
        return spec.every
    trigger = build_trigger(JobSpec(spec.name, None, spec.cron, 0.0, False))
    first: datetime | None = trigger.get_next_fire_time(None, now)
    second: datetime | None = (None if first is None
                               else trigger.get_next_fire_time(first, first))
    if first is None or second is None:
        return 0.0
    return (second - first).total_seconds()


def start_offsets(specs: list[JobSpec], now: datetime) -> dict[str, float]:
    """Seconds after start-up each of ``specs`` first runs: the k-th of n at ``k/n``
    of its window, the window being one period, or n * START_STAGGER when shorter."""
    count = len(specs)
    offsets = {}
    for k, spec in enumerate(specs):
        window = min(schedule_period(spec, now), count * START_STAGGER)
        offsets[spec.name] = window * k / count
    return offsets


def period_of(spec: JobSpec, next_run: datetime | None, now: datetime) -> float | None:
    """The length of the period a tick at ``now`` opens: ``every``, or the gap to the next
    cron tick (already computed when a tick fires); None when unknown."""
    if spec.every is not None:
        return spec.every
    if next_run is None:
        return None
    return max(0.0, (next_run - now).total_seconds())


def ran_this_period(runs: Iterable[RunRecord], *, now: datetime,
                    period: float) -> RunRecord | None:
    """The scheduled run that already did this period's work, if any.

    It is a scheduled run that finished ``ok`` and started less than
    ``period * ONCE_PER_PERIOD_SHARE`` ago (or in the future: another host's
    clock ahead of ours). Failed runs and runs that never finished (their replica
    died) do not count, so their work is done again at the next tick.
    """
    window = period * ONCE_PER_PERIOD_SHARE
    for run in runs:
        if run.trigger != "schedule" or run.status != "ok":
            continue
        if (now - run.started_at).total_seconds() < window:
            return run
    return None


class SteadyIntervalTrigger(IntervalTrigger):  # type: ignore[misc]  # APScheduler is untyped
    """An interval trigger whose jitter does not accumulate.

    APScheduler 3 computes the next tick from the previous *jittered* one, so
    with ``jitter = 3`` a one-minute job drifts by 1.5 s a minute on average: it
    runs every 61.5 s and misses a minute about every 40. Here each tick is the
    next point of the grid ``start_date + k * interval``, jittered on its own.
    """

    def get_next_fire_time(self, previous_fire_time: datetime | None,
                           now: datetime) -> datetime | None:
        if previous_fire_time is not None:
            step = self.interval_length
            start = self.start_date.timestamp()
            # The jitter is shorter than the interval: flooring finds the grid point.
            k = (previous_fire_time.timestamp() - start) // step
            previous_fire_time = datetime.fromtimestamp(start + k * step, tz=self.timezone)
        when: datetime | None = super().get_next_fire_time(previous_fire_time, now)
        return when


_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _crontab_weekdays(field: str) -> str:
    """Crontab weekday numbers (0 and 7 = Sunday) as names.

    APScheduler 3.x counts 0 as Monday, so a numeric crontab weekday would run
    a day late; names mean the same thing to both.
    """
    return re.sub(r"(?<![/\d])([0-7])(?!\d)", lambda m: _DOW_NAMES[int(m.group(1))], field)


def build_trigger(spec: JobSpec, start: datetime | None = None) -> IntervalTrigger | CronTrigger:
    """The APScheduler trigger for ``spec`` (cron in UTC, crontab weekday numbering).

    ``start`` is an interval job's first tick; its later ticks follow every
    ``every`` from there (by default a whole period after now).
    """
    jitter = int(spec.jitter) if spec.jitter >= 1 else None
    if spec.cron is not None:
        minute, hour, day, month, dow = spec.cron.split()
        return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                           day_of_week=_crontab_weekdays(dow), timezone=UTC, jitter=jitter)
    assert spec.every is not None
    # A jitter as long as the interval would move a tick onto the next grid point.
    if jitter is not None and jitter >= spec.every:
        jitter = int(spec.every / 2) or None
    return SteadyIntervalTrigger(seconds=spec.every, jitter=jitter, timezone=UTC,
                                 start_date=start)


def _iso(when: datetime | None) -> str:
    return "never" if when is None else when.astimezone(UTC).isoformat(timespec="milliseconds")


class JobScheduler:
    """Keeps APScheduler's jobs equal to a set of ``JobSpec``s."""

    def __init__(self, fire: Callable[[str], None], *, start_delay: float = 1.0) -> None:
        self._fire_cb = fire
        self.start_delay = start_delay
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._specs: dict[str, JobSpec] = {}

    async def _fire(self, name: str) -> None:
        # A coroutine so AsyncIOExecutor runs it on the loop, not in a thread.
        self._fire_cb(name)

    def start(self) -> None:
        """Start ticking (needs a running event loop)."""
        self._scheduler.start()

    def pause(self) -> None:
        """Stop firing jobs (shutdown has begun)."""
        if self._scheduler.running:
            self._scheduler.pause()

    def shutdown(self) -> None:
        """Stop the scheduler."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    @property
    def specs(self) -> dict[str, JobSpec]:
        """The schedules in force, by integration name."""
        return dict(self._specs)

    def next_run(self, name: str) -> datetime | None:
        """When ``name`` runs next, or None when it has no job."""
        job = self._scheduler.get_job(name)
        if job is None:
            return None
        when: datetime | None = getattr(job, "next_run_time", None)
        return when

    def seconds_to_next(self) -> float:
        """Seconds until the next job fires (infinite with none)."""
        times: list[datetime] = [job.next_run_time for job in self._scheduler.get_jobs()
                 if getattr(job, "next_run_time", None) is not None]
        if not times:
            return math.inf
        return (min(times) - datetime.now(UTC)).total_seconds()

    def apply(self, specs: Mapping[str, JobSpec], *, now: datetime | None = None) -> None:
        """Add, reschedule and remove jobs so they match ``specs``."""
        now = now or datetime.now(UTC)
        for name in list(self._specs):
            if name not in specs:
                self._scheduler.remove_job(name)
                del self._specs[name]
                logger.info("unscheduled {}", name)
        # Jobs added or changed together are spread over one period. For an interval
        # job the offset moves its whole series (its ticks stay apart run after run);
        # a cron job keeps its aligned ticks and only its start-up run is spread.
        offsets = start_offsets(
            [spec for name, spec in specs.items() if self._specs.get(name) != spec], now)
        for name, spec in specs.items():
            old = self._specs.get(name)
            if old == spec:
                continue
            kwargs: dict[str, Any] = {}
            first = self.start_delay if old is None and spec.run_at_start else None
            start = None
            if spec.every is not None:
                wait = spec.every if first is None else first
                start = now + timedelta(seconds=offsets[name] + wait)
                # Explicit, so a start already past (no start delay) still runs now.
                kwargs["next_run_time"] = start
            elif first is not None:
                kwargs["next_run_time"] = now + timedelta(seconds=first + offsets[name])
            if old is not None:
                self._scheduler.remove_job(name)
            self._scheduler.add_job(
                self._fire, trigger=build_trigger(spec, start), args=[name], id=name, name=name,
                max_instances=1, coalesce=True, misfire_grace_time=spec.misfire_grace,
                **kwargs,
            )
            self._specs[name] = spec
            logger.info("scheduled {} ({}), first run at {}", name,
                        f"cron {spec.cron} UTC" if spec.cron else f"every {spec.every:g}s",
                        _iso(self.next_run(name)))
