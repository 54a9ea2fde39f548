"""Fair share of the leases: each live replica takes about 1/n of the jobs."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from stocksyncd.clock import FakeClock
from stocksyncd.runtime.fairshare import (
    LIVE_WITHIN,
    REFRESH_ALONE,
    REFRESH_EVERY,
    FairShare,
    choose,
    overdue,
)
from stocksyncd.state.api import RunRecord

from .fakes import MemoryStore
from .test_daemon import Harness, integration, write_config

JOBS = [f"shop-{i:03d}" for i in range(600)]


def test_two_replicas_split_600_jobs_about_evenly() -> None:
    share = Counter(choose(job, ["alpha", "beta"]) for job in JOBS)
    assert sum(share.values()) == 600
    assert 270 <= share["alpha"] <= 330  # binomial(600, 1/2): 300 +- 3 sigma


def test_a_third_replica_takes_jobs_only_from_the_others() -> None:
    two = {job: choose(job, ["alpha", "beta"]) for job in JOBS}
    three = {job: choose(job, ["alpha", "beta", "gamma"]) for job in JOBS}
    moved = [job for job in JOBS if two[job] != three[job]]
    assert all(three[job] == "gamma" for job in moved)  # none move between alpha and beta
    assert 160 <= len(moved) <= 240
    assert choose("x", []) is None


def run(job: str, replica: str, started: datetime, *, took: float | None = 0.0) -> RunRecord:
    """A scheduled run that ended ``took`` seconds after it started (None: still running)."""
    return RunRecord(run_id=f"{job}-{started.timestamp()}", integration=job,
                     trigger="schedule", dry_run=False, replica=replica, started_at=started,
                     finished_at=None if took is None else started + timedelta(seconds=took),
                     status="running" if took is None else "ok")


def test_overdue_counts_any_run_that_ran_within_one_and_a_half_periods() -> None:
    now = datetime(2026, 3, 2, 10, tzinfo=UTC)
    assert overdue([], now=now, period=60)
    assert not overdue([run("j", "b", now - timedelta(seconds=80))], now=now, period=60)
    assert overdue([run("j", "b", now - timedelta(seconds=95))], now=now, period=60)
    # A run in flight since long ago does not: its replica may be stuck (the lease,
    # tried next, tells whether it still holds the job).
    assert overdue([run("j", "b", now - timedelta(seconds=300), took=None)], now=now,
                   period=60)
    # One that ended lately does, however long ago it started.
    assert not overdue([run("j", "b", now - timedelta(seconds=300), took=220)], now=now,
                       period=60)
    assert overdue([run("j", "b", now - timedelta(seconds=300), took=200)], now=now, period=60)
    # Never run: overdue only once this replica has fired it for 1.5 periods.
    assert not overdue([], now=now, period=60, since=now - timedelta(seconds=89))
    assert overdue([], now=now, period=60, since=now - timedelta(seconds=90))


async def test_my_turn_leaves_the_other_replicas_jobs_to_it_unless_overdue() -> None:
    clock = FakeClock()
    store = MemoryStore("postgresql")
    store.live_replicas = ["alpha", "beta"]
    fair = FairShare(store, "alpha", clock=clock)  # type: ignore[arg-type]
    mine = next(job for job in JOBS if choose(job, ["alpha", "beta"]) == "alpha")
    theirs = next(job for job in JOBS if choose(job, ["alpha", "beta"]) == "beta")
    assert await fair.my_turn(mine, 60.0)
    # Never run anywhere yet: beta, started with us, runs it in its first period.
    assert not await fair.my_turn(theirs, 60.0)
    rec = run(theirs, "beta", clock.now() - timedelta(seconds=30))
    store.runs[rec.run_id] = rec
    assert not await fair.my_turn(theirs, 60.0)
    clock.advance(70)  # beta has not started it for 100 s, but alpha is up for only 70 s
    assert not await fair.my_turn(theirs, 60.0)
    clock.advance(20)  # and now for 90 s: take it over
    assert await fair.my_turn(theirs, 60.0)


async def test_a_job_never_run_passes_to_another_replica_after_one_and_a_half_periods() -> None:
    clock = FakeClock()
    store = MemoryStore("postgresql")
    store.live_replicas = ["alpha", "beta"]
    fair = FairShare(store, "alpha", clock=clock)  # type: ignore[arg-type]
    theirs = next(job for job in JOBS if choose(job, ["alpha", "beta"]) == "beta")
    assert not await fair.my_turn(theirs, 60.0)  # beta cannot build it, say: no run anywhere
    clock.advance(60)
    assert not await fair.my_turn(theirs, 60.0)
    clock.advance(30)  # alpha has fired it for 1.5 periods: it is not left behind
    assert await fair.my_turn(theirs, 60.0)


async def test_replicas_started_together_find_each_other_within_a_second() -> None:
    clock = FakeClock()
    store = MemoryStore("postgresql")
    fair = FairShare(store, "alpha", clock=clock)  # type: ignore[arg-type]
    assert await fair.live() == ["alpha"]  # beta has not written its first heartbeat yet
    store.live_replicas = ["alpha", "beta"]
    clock.advance(REFRESH_ALONE)
    assert await fair.live() == ["alpha", "beta"]
    store.live_replicas = ["alpha"]
    clock.advance(REFRESH_ALONE)
    assert await fair.live() == ["alpha", "beta"]  # not alone: once per REFRESH_EVERY


async def test_a_replica_alone_after_start_up_reads_the_live_set_once_per_refresh() -> None:
    clock = FakeClock()
    store = MemoryStore("postgresql")
    fair = FairShare(store, "alpha", clock=clock)  # type: ignore[arg-type]
    clock.advance(LIVE_WITHIN)
    assert await fair.live() == ["alpha"]
    store.live_replicas = ["alpha", "beta"]
    clock.advance(REFRESH_ALONE)
    assert await fair.live() == ["alpha"]
    clock.advance(REFRESH_EVERY - REFRESH_ALONE)
    assert await fair.live() == ["alpha", "beta"]


async def test_a_replica_that_stopped_reporting_loses_its_share() -> None:
    clock = FakeClock()
    store = MemoryStore("postgresql")
    store.live_replicas = ["alpha", "beta"]
    fair = FairShare(store, "alpha", clock=clock)  # type: ignore[arg-type]
    theirs = next(job for job in JOBS if choose(job, ["alpha", "beta"]) == "beta")
    rec = run(theirs, "beta", clock.now())
    store.runs[rec.run_id] = rec
    assert not await fair.my_turn(theirs, 3600.0)
    store.live_replicas = ["alpha"]  # beta's heartbeat is older than LIVE_WITHIN
    assert LIVE_WITHIN > REFRESH_EVERY
    clock.advance(REFRESH_EVERY - 1)
    assert not await fair.my_turn(theirs, 3600.0)  # the live set is read once per REFRESH_EVERY
    clock.advance(1)
    assert await fair.my_turn(theirs, 3600.0)


async def test_daemon_takes_only_its_share_of_scheduled_ticks(tmp_path: Path) -> None:
    names = [f"j{i}" for i in range(40)]
    h = Harness(write_config(tmp_path / "c.toml", *(integration(n) for n in names)),
                backend="postgresql")
    h.store.live_replicas = ["r1", "r2"]
    await h.daemon.start()
    for name in names:
        if choose(name, ["r1", "r2"]) == "r1":
            continue
        # r2 ran its jobs a moment ago, so none of them is overdue.
        rec = run(name, "r2", h.daemon.clock.now() - timedelta(seconds=5))
        rec.status = "ok"
        h.store.runs[rec.run_id] = rec
    for name in names:
        h.daemon._due(name)
    await h.wait_idle()
    ran = sorted(n for n in names if h.builder.latest(n).runs)
    assert ran == sorted(n for n in names if choose(n, ["r1", "r2"]) == "r1")
    assert 0 < len(ran) < len(names)
    manual = next(n for n in names if n not in ran)
    await h.daemon.trigger(manual)  # a manual run is not held back by the share
    await h.wait_idle()
    assert h.builder.latest(manual).runs == 1
    await h.daemon.stop()
