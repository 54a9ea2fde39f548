"""The rules that make replicas share work: one run per period, a lost lease stops a run."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from stocksyncd.config import Config, load_config
from stocksyncd.integrations.base import Integration, Resources, RunContext, RunResult
from stocksyncd.runtime.daemon import Daemon
from stocksyncd.runtime.scheduler import JobSpec, period_of, ran_this_period
from stocksyncd.state import RunRecord, SqlStateStore

from .conftest import wait_for

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def run(ago: float, *, status: str = "ok", trigger: str = "schedule",
        replica: str = "other") -> RunRecord:
    return RunRecord(run_id=f"r{ago}", integration="job", trigger=trigger, dry_run=False,
                     replica=replica, started_at=NOW - timedelta(seconds=ago), status=status)


@pytest.mark.parametrize(("runs", "done"), [
    ([], False),
    ([run(29)], True),  # another replica ran it less than half a period ago
    ([run(31)], False),  # our own previous tick, or a replica out of phase by > 1/2
    ([run(-2)], True),  # another host's clock is ahead of ours
    ([run(5, status="failed")], False),  # failed work is done again
    ([run(5, status="running")], False),  # its replica died mid-run
    ([run(5, trigger="manual")], False),  # an operator's extra run
    ([run(5, status="failed"), run(20)], True),
])
def test_ran_this_period(runs: list[RunRecord], done: bool) -> None:
    found = ran_this_period(runs, now=NOW, period=60.0)
    assert (found is not None) is done


def test_period_of_interval_and_cron() -> None:
    every = JobSpec("a", 60.0, None, 0.0, True)
    cron = JobSpec("b", None, "0 * * * *", 0.0, True)
    assert period_of(every, None, NOW) == 60.0
    assert period_of(cron, NOW + timedelta(hours=1), NOW) == 3600.0
    assert period_of(cron, None, NOW) is None


class Blocking:
    """An integration whose run waits until released (or cancelled)."""

    def __init__(self, name: str, type_: str) -> None:
        self.name = name
        self.type = type_
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.runs = 0

    async def run(self, ctx: RunContext) -> RunResult:
        self.runs += 1
        self.started.set()
        await self.release.wait()
        return RunResult(integration=self.name)

    async def close(self) -> None:
        pass


def config(tmp_path: Path, pg_url: str, replica: str) -> Path:
    path = tmp_path / f"{replica}.toml"
    path.write_text(f"""
[daemon]
state_url = "{pg_url}"
replica = "{replica}"
lease_ttl = "0.9s"
shutdown_timeout = "2s"
[web]
enabled = false
[shops.main]
url = "https://shop.myinsales.ru"
api_key = "key-1234"
password = "pass-1234"
[integrations.job]
type = "kak2c-insales"
shop = "main"
login = "l"
password = "kak2c-pass"
every = "1m"
run_at_start = false
""")
    return path


class Replica:
    def __init__(self, tmp_path: Path, pg_url: str, name: str) -> None:
        self.built: list[Blocking] = []
        self.daemon = Daemon(load_config(config(tmp_path, pg_url, name)), builder=self.build,
                             web_factory=None, configure_logging=False, handle_signals=False,
                             start_delay=3600)

    def build(self, name: str, cfg: Any, config: Config, res: Resources) -> Integration:
        obj = Blocking(name, cfg.type)
        self.built.append(obj)
        return obj

    async def idle(self) -> None:
        await asyncio.gather(*self.daemon._tasks, return_exceptions=True)


@pytest.mark.postgres
async def test_second_replica_skips_a_period_already_run(tmp_path: Path, pg_url: str,
                                                         store: SqlStateStore) -> None:
    a, b = Replica(tmp_path, pg_url, "a"), Replica(tmp_path, pg_url, "b")
    await a.daemon.start()
    await b.daemon.start()
    try:
        a.built[0].release.set()
        b.built[0].release.set()
        a.daemon._due("job")
        await a.idle()
        b.daemon._due("job")  # the same period on another replica's timer
        await b.idle()
        assert (a.built[0].runs, b.built[0].runs) == (1, 0)
        await b.daemon.trigger("job")  # an operator's run is never skipped
        await b.idle()
        assert b.built[0].runs == 1
        runs = await store.recent_runs("job")
        assert sorted((r.replica, r.trigger, r.status) for r in runs) == [
            ("a", "schedule", "ok"), ("b", "manual", "ok")]
    finally:
        await a.daemon.stop()
        await b.daemon.stop()


@pytest.mark.postgres
async def test_a_run_that_loses_its_lease_stops(tmp_path: Path, pg_url: str,
                                                store: SqlStateStore) -> None:
    a = Replica(tmp_path, pg_url, "a")
    await a.daemon.start()
    try:
        integ = a.built[0]
        a.daemon._due("job")
        await asyncio.wait_for(integ.started.wait(), 5)
        # Another replica took the lease over (as after a long stall of ours).
        async with store.engine.begin() as conn:
            await conn.execute(sa.text(
                "UPDATE leases SET holder = 'b' WHERE name = 'integration:job'"))

        async def stopped() -> list[RunRecord]:
            return [r for r in await store.recent_runs("job") if r.status != "running"]

        runs = await wait_for(stopped, timeout=5, what="the run to stop")
        assert runs[0].status == "failed"
        assert "lost the lease" in runs[0].errors[0]
        await a.idle()
        assert not a.daemon._running  # the daemon goes on: only the run stopped
        assert (await store.leases())[0].holder == "b"  # and it left b's lease alone
    finally:
        await a.daemon.stop()
