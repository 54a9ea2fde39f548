"""Scheduler wiring and the daemon's run tracking, reload and drain, in process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from stocksyncd.config import Config, load_config
from stocksyncd.runtime.daemon import Daemon
from stocksyncd.runtime.scheduler import JobScheduler, JobSpec, build_trigger, job_spec
from stocksyncd.runtime.sdnotify import Notifier

from .fakes import FakeBuilder, FakeMetrics, MemoryStore

SHOP = """
[shops.main]
url = "https://shop.myinsales.ru"
api_key = "key-1234"
password = "pass-1234"
"""


def integration(name: str, every: str = "1m", **extra: str) -> str:
    lines = [f"[integrations.{name}]", 'type = "kak2c-insales"', 'shop = "main"',
             'login = "l"', 'password = "kak2c-pass"', f'every = "{every}"']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def write_config(path: Path, *sections: str, shutdown: str = "5s") -> Path:
    path.write_text(
        f'[daemon]\nstate_url = "sqlite:///x.db"\nshutdown_timeout = "{shutdown}"\n'
        f'replica = "r1"\n[web]\nenabled = false\n' + SHOP + "".join(sections)
    )
    return path


class RecordingNotifier(Notifier):
    def __init__(self) -> None:
        super().__init__("")
        self.sent: list[str] = []

    def notify(self, *fields: str) -> bool:
        self.sent.append(fields[0])
        return True


class Harness:
    def __init__(self, path: Path, *, released: bool = True, backend: str = "sqlite") -> None:
        self.path = path
        self.builder = FakeBuilder(released=released)
        self.store = MemoryStore(backend)
        self.metrics = FakeMetrics()
        self.notifier = RecordingNotifier()
        self.daemon = Daemon(
            load_config(path), config_path=path, builder=self.builder,
            state_factory=self._store, web_factory=None,
            metrics=self.metrics, notifier=self.notifier,  # type: ignore[arg-type]
            configure_logging=False, handle_signals=False, start_delay=3600,
        )

    async def _store(self, url: str, **_: Any) -> MemoryStore:
        return self.store

    async def wait_idle(self) -> None:
        await asyncio.gather(*self.daemon._tasks, return_exceptions=True)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    path = write_config(tmp_path / "c.toml", integration("a"), integration("b", every="1h"),
                        integration("off", enabled="false"))
    h = Harness(path)
    await h.daemon.start()
    yield h
    await h.daemon.stop()


def test_job_spec_and_triggers() -> None:
    cfg = load_config_from_text(integration("a", every="10m", run_at_start="false"))
    spec = job_spec("a", cfg.integrations["a"], "kak2c-insales")
    assert spec == JobSpec("a", 600.0, None, 30.0, False)
    trig = build_trigger(spec)
    assert isinstance(trig, IntervalTrigger) and trig.jitter == 30
    cron = build_trigger(JobSpec("c", None, "30 2 * * 0", 0.0, True))
    assert isinstance(cron, CronTrigger)
    # Crontab's 0 is Sunday (APScheduler 3.x alone would read it as Monday).
    after = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday
    assert cron.get_next_fire_time(None, after) == datetime(2026, 1, 4, 2, 30, tzinfo=UTC)
    weekdays = build_trigger(JobSpec("w", None, "0 9 * * 1-5", 0.0, True))
    assert weekdays.get_next_fire_time(None, datetime(2026, 1, 3, tzinfo=UTC)).weekday() == 0


def load_config_from_text(text: str) -> Config:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        return load_config(write_config(Path(d) / "c.toml", text))


async def test_scheduler_reconciles_jobs() -> None:
    fired: list[str] = []
    sched = JobScheduler(fired.append, start_delay=10)
    sched.start()
    now = datetime.now(UTC)
    a = JobSpec("a", 60.0, None, 0.0, True)
    b = JobSpec("b", 3600.0, None, 0.0, False)
    sched.apply({"a": a, "b": b}, now=now)
    assert sched.next_run("a") == now + timedelta(seconds=10)
    next_b = sched.next_run("b")
    assert next_b is not None and next_b > now + timedelta(seconds=3000)
    sched.apply({"a": JobSpec("a", 120.0, None, 0.0, True)}, now=now)
    assert sched.next_run("b") is None
    assert sched.specs["a"].every == 120.0
    await sched._fire("a")
    assert fired == ["a"]
    sched.shutdown()


async def test_start_builds_enabled_and_schedules(harness: Harness) -> None:
    d = harness.daemon
    assert sorted(d._live) == ["a", "b"]
    jobs = {j.name: j for j in d.jobs()}
    assert list(jobs) == ["a", "b", "off"]
    assert jobs["a"].every_s == 60 and jobs["a"].next_run is not None
    assert not jobs["off"].enabled and jobs["off"].next_run is None
    assert harness.metrics.up == {"a": True, "b": True, "off": False}
    assert d.integration("a") is harness.builder.latest("a")
    assert d.integration("off") is None


async def test_due_runs_once_and_skips_while_running(tmp_path: Path) -> None:
    h = Harness(write_config(tmp_path / "c.toml", integration("a")), released=False)
    await h.daemon.start()
    integ = h.builder.latest("a")
    h.daemon._due("a")
    h.daemon._due("a")  # still running: skipped
    await integ.started.wait()
    assert h.daemon.jobs()[0].running
    run_id = await h.daemon.trigger("a")  # a manual trigger joins the run in flight
    assert run_id == h.daemon._running["a"].run_id
    integ.release.set()
    await h.wait_idle()
    assert integ.runs == 1
    assert [r.status for r in h.store.runs.values()] == ["ok"]
    assert not h.daemon.jobs()[0].running
    await h.daemon.stop()


async def test_trigger_unknown_or_disabled_raises(harness: Harness) -> None:
    with pytest.raises(KeyError):
        await harness.daemon.trigger("nope")
    with pytest.raises(KeyError):
        await harness.daemon.trigger("off")
    run_id = await harness.daemon.trigger("b")
    await harness.wait_idle()
    assert harness.store.runs[run_id].trigger == "manual"


async def test_leases_on_postgresql(tmp_path: Path) -> None:
    h = Harness(write_config(tmp_path / "c.toml", integration("a"), integration("b")),
                backend="postgresql")
    await h.daemon.start()
    h.store.lease_holders["integration:b"] = "other-replica"
    h.daemon._due("a")
    h.daemon._due("b")
    await h.wait_idle()
    assert h.builder.latest("a").runs == 1
    assert h.builder.latest("b").runs == 0  # another replica runs it
    assert [r.integration for r in h.store.runs.values()] == ["a"]
    assert ("release", "integration:a", "r1") in h.store.lease_calls
    assert "integration:a" not in h.store.lease_holders
    await h.daemon.stop()


async def test_reload_applies_the_difference(tmp_path: Path) -> None:
    path = write_config(tmp_path / "c.toml", integration("keep"), integration("change"),
                        integration("drop"))
    h = Harness(path, released=False)
    await h.daemon.start()
    old_change = h.builder.latest("change")
    old_drop = h.builder.latest("drop")
    keep = h.builder.latest("keep")
    h.daemon._due("change")
    await old_change.started.wait()

    write_config(path, integration("keep"), integration("change", every="5m"),
                 integration("new"))
    assert await h.daemon.reload()
    assert h.notifier.sent[-2:] == ["RELOADING=1", "READY=1"]
    assert sorted(h.daemon._live) == ["change", "keep", "new"]
    assert h.daemon.integration("keep") is keep  # unchanged: not rebuilt
    assert h.daemon.integration("change") is not old_change
    assert h.daemon._scheduler.specs["change"].every == 300
    assert "drop" not in h.daemon._scheduler.specs
    assert h.metrics.forgotten == ["drop"]
    # The run in flight of the old object finishes first; only then is it closed.
    assert not old_change.closed
    assert {j.name: j.running for j in h.daemon.jobs()}["change"]
    old_change.release.set()
    await h.wait_idle()
    await asyncio.gather(*h.daemon._retiring)
    assert old_change.closed and old_drop.closed
    assert [r.status for r in h.store.runs.values()] == ["ok"]
    await h.daemon.stop()


async def test_bad_reload_keeps_the_old_config(harness: Harness) -> None:
    before = harness.daemon.config
    harness.path.write_text(harness.path.read_text() + "\n[integrations.x]\ntype = 'nope'\n")
    assert not await harness.daemon.reload()
    assert harness.daemon.config is before
    assert harness.notifier.sent[-2:] == ["RELOADING=1", "READY=1"]
    assert sorted(harness.daemon._live) == ["a", "b"]


async def test_stop_waits_for_runs_in_flight(tmp_path: Path) -> None:
    h = Harness(write_config(tmp_path / "c.toml", integration("a")), released=False)
    await h.daemon.start()
    integ = h.builder.latest("a")
    h.daemon._due("a")
    await integ.started.wait()
    stopping = asyncio.create_task(h.daemon.stop())
    await asyncio.sleep(0)
    assert not stopping.done()
    h.daemon._due("a")  # no new run once stopping
    integ.release.set()
    await stopping
    assert [r.status for r in h.store.runs.values()] == ["ok"]
    assert integ.closed and h.store.closed
    assert "STOPPING=1" in h.notifier.sent


async def test_second_stop_signal_cancels_at_once(tmp_path: Path) -> None:
    h = Harness(write_config(tmp_path / "c.toml", integration("a"), shutdown="1h"),
                released=False)
    await h.daemon.start()
    integ = h.builder.latest("a")
    h.daemon._due("a")
    await integ.started.wait()
    h.daemon.request_stop()
    stopping = asyncio.create_task(h.daemon.stop())
    await asyncio.sleep(0)
    h.daemon.request_stop()  # the second SIGTERM
    await asyncio.wait_for(stopping, timeout=30)
    (run,) = h.store.runs.values()
    assert (run.status, run.errors) == ("failed", ["cancelled at shutdown"])


async def test_build_failure_keeps_the_others(tmp_path: Path) -> None:
    h = Harness(write_config(tmp_path / "c.toml", integration("a"), integration("bad")))
    real = h.builder.__call__

    def flaky(name: str, cfg: Any, config: Config, res: Any) -> Any:
        if name == "bad":
            raise ValueError("mouser_supplier 3 is not a supplier")
        return real(name, cfg, config, res)

    h.daemon._builder = flaky
    await h.daemon.start()
    jobs = {j.name: j for j in h.daemon.jobs()}
    assert jobs["bad"].extra["error"] == "mouser_supplier 3 is not a supplier"
    assert jobs["bad"].next_run is None and jobs["a"].next_run is not None
    await h.daemon.stop()


async def test_start_closes_runs_this_replica_left_unfinished(tmp_path: Path) -> None:
    h = Harness(write_config(tmp_path / "c.toml", integration("a")))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    await h.store.start_run(run_id="old", integration="a", trigger="schedule", dry_run=False,
                            replica="r1", started_at=t0)
    await h.store.start_run(run_id="elsewhere", integration="a", trigger="schedule",
                            dry_run=False, replica="r2", started_at=t0)
    await h.daemon.start()
    assert h.store.runs["old"].status == "interrupted"
    assert "interrupted" in h.store.runs["old"].message
    assert h.store.runs["elsewhere"].status == "running"  # another replica's business
    await h.daemon.stop()


async def test_taking_the_lease_closes_a_dead_replicas_run(tmp_path: Path) -> None:
    h = Harness(write_config(tmp_path / "c.toml", integration("a")), backend="postgresql")
    await h.store.start_run(run_id="dead", integration="a", trigger="schedule", dry_run=False,
                            replica="r2", started_at=datetime(2026, 1, 1, tzinfo=UTC))
    await h.daemon.start()
    h.daemon._due("a")
    await h.wait_idle()
    assert h.store.runs["dead"].status == "interrupted"
    assert "lost the lease" in h.store.runs["dead"].message
    await h.daemon.stop()


async def test_a_run_start_closes_abandoned_runs_only_when_there_may_be_one(
        tmp_path: Path) -> None:
    h = Harness(write_config(tmp_path / "c.toml", integration("a")), backend="postgresql")
    sweeps: list[str | None] = []
    abandon = h.store.abandon_runs

    async def counted(**kwargs: Any) -> int:
        sweeps.append(kwargs.get("integration"))
        return await abandon(**kwargs)

    h.store.abandon_runs = counted  # type: ignore[method-assign]
    await h.daemon.start()
    sweeps.clear()  # the start-up sweep of this replica's own runs
    for _ in range(3):
        h.daemon._due("a")
        await h.wait_idle()
    # The first lease this replica takes sweeps them all; the next starts saw none.
    assert sweeps == ["a"]
    assert [r.status for r in h.store.runs.values()] == ["ok"]  # then: ran this period
    await h.store.start_run(run_id="dead", integration="a", trigger="manual", dry_run=False,
                            replica="r2", started_at=datetime.now(UTC))
    h.daemon._due("a")
    await h.wait_idle()
    assert sweeps == ["a", "a"]
    assert h.store.runs["dead"].status == "interrupted"
    await h.daemon.stop()


async def test_old_runs_are_pruned_to_keep_runs(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    write_config(path, integration("a"))
    path.write_text(path.read_text().replace("[daemon]\n", "[daemon]\nkeep_runs = 7\n", 1))
    h = Harness(path)
    await h.daemon.start()
    for _ in range(100):  # the heartbeat task prunes first thing
        if h.store.pruned_to is not None:
            break
        await asyncio.sleep(0)
    assert h.store.pruned_to == 7
    for _ in range(100):
        if h.store.quotas_pruned_before is not None:
            break
        await asyncio.sleep(0)
    # Quota buckets (Mouser's are per minute) are kept for two days.
    pruned_before = h.store.quotas_pruned_before
    assert pruned_before is not None
    age = h.daemon.clock.now() - pruned_before
    assert timedelta(days=2) <= age < timedelta(days=2, seconds=60)
    await h.daemon.stop()
