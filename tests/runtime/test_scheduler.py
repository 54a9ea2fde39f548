"""The scheduler's start-up spread: many jobs' first runs within one interval."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from stocksyncd.runtime.scheduler import (
    JobScheduler,
    JobSpec,
    build_trigger,
    schedule_period,
    start_offsets,
)


def test_first_runs_of_many_jobs_spread_over_one_interval() -> None:
    now = datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC)
    minute = [JobSpec(f"j{i}", 60.0, None, 0.0, True) for i in range(300)]
    offsets = start_offsets(minute, now)
    assert offsets["j0"] == 0.0
    assert max(offsets.values()) < 60.0  # all within the first interval, not 10 minutes
    assert offsets["j1"] == pytest.approx(0.2)
    cron = [JobSpec(f"c{i}", None, "* * * * *", 0.0, True) for i in range(300)]
    assert max(start_offsets(cron, now).values()) < 60.0
    # A few hourly jobs still start within seconds of each other, not 20 minutes apart.
    hourly = [JobSpec(f"h{i}", 3600.0, None, 0.0, True) for i in range(3)]
    assert sorted(start_offsets(hourly, now).values()) == [0.0, 2.0, 4.0]
    assert schedule_period(JobSpec("d", None, "30 2 * * *", 0.0, True), now) == 86400.0


async def test_scheduler_applies_the_spread_to_new_jobs_only() -> None:
    sched = JobScheduler(lambda _: None, start_delay=1)
    sched.start()
    now = datetime.now(UTC)
    specs = {f"j{i}": JobSpec(f"j{i}", 60.0, None, 0.0, True) for i in range(120)}
    sched.apply(specs, now=now)
    firsts = sorted((sched.next_run(n) - now).total_seconds() for n in specs)  # type: ignore[operator]
    assert firsts[0] == pytest.approx(1.0, abs=0.01)
    assert firsts[-1] == pytest.approx(1.0 + 60 * 119 / 120, abs=0.01)
    sched.apply({**specs, "new": JobSpec("new", 60.0, None, 0.0, True)}, now=now)
    assert (sched.next_run("new") - now).total_seconds() == pytest.approx(1.0, abs=0.01)  # type: ignore[operator]
    sched.shutdown()


async def test_interval_jobs_stay_spread_after_their_first_run() -> None:
    sched = JobScheduler(lambda _: None, start_delay=1)
    sched.start()
    now = datetime.now(UTC)
    specs = {f"j{i}": JobSpec(f"j{i}", 60.0, None, 0.0, i % 2 == 0) for i in range(4)}
    sched.apply(specs, now=now)
    firsts = {n: sched.next_run(n) for n in specs}
    offsets = {n: (when - now).total_seconds() for n, when in firsts.items()}  # type: ignore[operator]
    # Run at start: after the start delay; otherwise one period later; both spread.
    assert offsets == pytest.approx({"j0": 1.0, "j1": 62.0, "j2": 5.0, "j3": 66.0}, abs=0.01)
    for name, when in firsts.items():
        trigger = sched._scheduler.get_job(name).trigger
        following = trigger.get_next_fire_time(when, when)
        assert (following - when).total_seconds() == pytest.approx(60.0)
    sched.shutdown()


def test_interval_jitter_does_not_accumulate() -> None:
    start = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
    trigger = build_trigger(JobSpec("j", 60.0, None, 3.0, True), start)
    fire = trigger.get_next_fire_time(None, start)
    assert fire is not None
    for minute in range(1, 500):
        fire = trigger.get_next_fire_time(fire, fire)
        assert fire is not None
        late = (fire - start).total_seconds() - 60 * minute
        assert 0 <= late <= 3.0  # always within the jitter of its own minute


async def test_seconds_to_next_is_the_soonest_job() -> None:
    sched = JobScheduler(lambda _: None, start_delay=1)
    assert sched.seconds_to_next() == math.inf  # no jobs
    sched.start()
    now = datetime.now(UTC)
    specs = {f"j{i}": JobSpec(f"j{i}", 60.0, None, 0.0, i % 2 == 0) for i in range(4)}
    sched.apply(specs, now=now)
    # j0 runs at start, after the start delay (the previous test's offsets).
    assert sched.seconds_to_next() == pytest.approx(1.0, abs=0.2)
    sched.apply({"j1": specs["j1"]}, now=now)
    assert sched.seconds_to_next() == pytest.approx(62.0, abs=0.2)
    sched.shutdown()
