"""Real daemon processes cut off every way the write-ahead audit must survive.

Each test ends with the same check: every figure the InSales simulator took is
in the audit, with its old and new value (``assert_audited``). The first stock
run writes 100 variants, then its second batch is held by the simulator (it
never reaches the shop) while the run is cut off.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from stocksyncd.state import RunRecord, SqlStateStore, open_store

from .conftest import (
    EVERY,
    LEASE_TTL,
    PrivateCluster,
    Replica,
    assert_audited,
    free_port,
    wait_for,
    write_config,
)

Control = Callable[..., Awaitable[Any]]


def one_replica(tmp_path: Path, sims: dict[str, Any], state_url: str,
                name: str = "alpha", shutdown_timeout: float = 5.0) -> Replica:
    port = free_port()
    config = write_config(tmp_path / f"{name}.toml", replica=name, port=port,
                          state_url=state_url, sims=sims, shutdown_timeout=shutdown_timeout)
    return Replica(name, config, port, tmp_path / f"{name}.log")


async def stock_runs(store: SqlStateStore) -> list[RunRecord]:
    return list(reversed(await store.recent_runs("stock", limit=1000)))


async def held(control: Control) -> bool:
    return bool((await control("GET", "/stats"))["held"])


async def cut_off_run(store: SqlStateStore, replica: Replica) -> RunRecord:
    """The one stock run that was cut off, with its changes."""
    [brief] = [r for r in await stock_runs(store) if r.status not in ("ok", "running")]
    run = await store.get_run(brief.run_id)
    assert run is not None, replica.tail()
    return run


def assert_cut_off_audit(run: RunRecord) -> None:
    """100 variants sent and answered; the held 50 planned (they may have gone out)."""
    statuses = [c.status for c in run.changes]
    assert statuses.count("sent") == 100, statuses
    assert statuses.count("planned") == 50, statuses
    assert run.changes_total == 150


async def test_sigterm_after_shutdown_timeout_keeps_the_audit(
    tmp_path: Path, sims: dict[str, Any], control: Control,
) -> None:
    state_url = f"sqlite:///{tmp_path}/state.db"
    daemon = one_replica(tmp_path, sims, state_url, shutdown_timeout=1.0)
    await control("POST", "/hold?after=1")
    daemon.start()
    try:
        await wait_for(lambda: held(control), timeout=20, what="the second write to be held")
        daemon.signal(signal.SIGTERM)
        assert daemon.proc is not None
        daemon.proc.wait(20)  # shutdown_timeout is 1 s: the run is cancelled then
        assert daemon.proc.returncode == 0, daemon.tail()
    finally:
        daemon.stop()
    stats = await control("GET", "/stats")
    store = await open_store(state_url)
    try:
        run = await cut_off_run(store, daemon)
        assert run.status == "failed" and "cancelled at shutdown" in run.message
        assert run.counts["written"] == 100
        assert_cut_off_audit(run)
        assert await assert_audited(store, stats) == 100
    finally:
        await store.close()


async def test_sigkill_then_restart_closes_the_run_as_interrupted(
    tmp_path: Path, sims: dict[str, Any], control: Control,
) -> None:
    state_url = f"sqlite:///{tmp_path}/state.db"
    daemon = one_replica(tmp_path, sims, state_url)
    await control("POST", "/hold?after=1")
    daemon.start()
    store = await open_store(state_url)
    try:
        await wait_for(lambda: held(control), timeout=20, what="the second write to be held")
        daemon.kill()
        # Killed: the run is still "running", and its audit already holds every write.
        [running] = [r for r in await stock_runs(store) if r.status == "running"]
        full = await store.get_run(running.run_id)
        assert full is not None
        assert_cut_off_audit(full)

        daemon.start()  # the restart closes it, then the next run writes the rest

        async def finished() -> bool:
            return any(r.status == "ok" and r.counts.get("written") for r in
                       await stock_runs(store))

        await wait_for(finished, timeout=30, what="a stock run after the restart")
        daemon.stop()
        run = await cut_off_run(store, daemon)
        assert run.run_id == running.run_id and run.status == "interrupted"
        assert_cut_off_audit(run)
        stats = await control("GET", "/stats")
        assert await assert_audited(store, stats) == 150
    finally:
        daemon.stop()
        await store.close()


@pytest.mark.parametrize("outage", ["frozen", "down"])
async def test_postgres_unreachable_longer_than_the_lease(
    tmp_path: Path, sims: dict[str, Any], control: Control, private_pg: PrivateCluster,
    outage: str,
) -> None:
    daemon = one_replica(tmp_path, sims, private_pg.url)
    await control("POST", "/hold?after=1")
    daemon.start()
    store = await open_store(private_pg.url)
    try:
        await wait_for(lambda: held(control), timeout=20, what="the second write to be held")
        [running] = [r for r in await stock_runs(store) if r.status == "running"]
        await store.close()
        private_pg.signal(signal.SIGSTOP if outage == "frozen" else signal.SIGKILL)
        if outage == "down":
            assert private_pg.proc is not None
            private_pg.proc.wait(10)

        # The run stops once the lease may have expired; /healthz answers 503 within
        # its timeout all along.
        async with aiohttp.ClientSession() as session:

            async def unhealthy() -> bool:
                started = time.monotonic()
                async with session.get(f"http://127.0.0.1:{daemon.port}/healthz",
                                       timeout=aiohttp.ClientTimeout(total=10)) as resp:
                    took = time.monotonic() - started
                    assert took < 4.0, took
                    return resp.status == 503

            await wait_for(unhealthy, timeout=15, what="/healthz to say 503")
            # Longer than the lease: the run loses it and stops.
            time_out = time.monotonic() + LEASE_TTL + 1
            while time.monotonic() < time_out:
                assert await unhealthy(), "healthy while nothing can be recorded"
                assert daemon.alive, daemon.tail()

            if outage == "frozen":
                private_pg.signal(signal.SIGCONT)
            else:
                private_pg.start()
            store = await open_store(private_pg.url)

            # Without a restart: the cut-off run is closed, the next run writes the rest.
            async def closed() -> RunRecord | None:
                run = await store.get_run(running.run_id)
                return run if run is not None and run.status != "running" else None

            run = await wait_for(closed, timeout=40, what="the cut-off run to be closed")
            assert run.status == "failed" and "lost the lease" in run.message, run

            async def written() -> bool:
                return any(r.status == "ok" and r.counts.get("written")
                           for r in await stock_runs(store))

            await wait_for(written, timeout=30, what="a stock run after the outage")

            async def healthy() -> bool:
                async with session.get(f"http://127.0.0.1:{daemon.port}/healthz") as resp:
                    return resp.status == 200

            await wait_for(healthy, timeout=30, what="/healthz to recover")
        assert daemon.alive
        daemon.stop()
        assert_cut_off_audit(run)
        stats = await control("GET", "/stats")
        assert stats["write_requests"] == 2
        assert await assert_audited(store, stats) == 150
    finally:
        daemon.stop()
        await store.close()


async def test_a_frozen_leader_sends_nothing_stale(
    replicas: dict[str, Replica], store: SqlStateStore, control: Control,
) -> None:
    # Writes take 1 s at the shop, and the second batch is told to come back in 3 s:
    # the leader is frozen while that batch waits in its rate limiter, ready to go
    # the moment it wakes up (no store round trip in between).
    await control("POST", "/slow?seconds=1")
    for replica in replicas.values():
        replica.start()

    async def writing() -> bool:
        return bool((await control("GET", "/stats"))["writing"])

    await wait_for(writing, timeout=20, what="the first InSales write")
    await control("POST", "/busy?seconds=3")

    async def told_to_wait() -> bool:
        return bool((await control("GET", "/stats"))["busy_answers"])

    await wait_for(told_to_wait, timeout=10, what="the second batch to be told to wait")
    leases = {lease.name: lease.holder for lease in await store.leases()}
    leader = replicas[leases["integration:stock"]]
    other = next(r for r in replicas.values() if r is not leader)
    leader.signal(signal.SIGSTOP)
    try:
        async def taken_over() -> bool:
            return any(r.replica == other.name and r.status == "ok" and r.counts["written"]
                       for r in await stock_runs(store))

        await wait_for(taken_over, timeout=LEASE_TTL + EVERY + 20,
                       what="the other replica to write in the leader's place")
        before = await control("GET", "/stats")
        # Frozen longer than the 3 s wait: its retry is due the moment it wakes.
    finally:
        leader.signal(signal.SIGCONT)

    async def leader_run_over() -> bool:
        return any(r.replica == leader.name and r.status not in ("ok", "running")
                   for r in await stock_runs(store))

    await wait_for(leader_run_over, timeout=20, what="the leader's run to end")
    # Runs go on every 2 s: had the leader sent its queued batch, the shop would
    # have seen it arrive (and the other replica would have had figures to put right).
    await asyncio.sleep(2 * EVERY)
    after = await control("GET", "/stats")
    for replica in replicas.values():
        replica.stop()
    assert after["write_arrivals"] == before["write_arrivals"], (before, after, leader.tail())
    assert after["writes"] == before["writes"]
    [cut] = [r for r in await stock_runs(store) if r.replica == leader.name
             and r.status not in ("ok", "running")]
    assert "lease" in cut.message, cut
    for code in after["variant_ids"]:
        assert after["quantities"][code] == int(code[-5:]) + 1, code
    assert await assert_audited(store, after) == sum(len(v) for v in after["writes"].values())


async def test_a_deleted_sqlite_file_stops_the_writes(
    tmp_path: Path, sims: dict[str, Any], control: Control,
) -> None:
    db = tmp_path / "state.db"
    daemon = one_replica(tmp_path, sims, f"sqlite:///{db}")
    await control("POST", "/slow?seconds=1")
    daemon.start()
    try:
        async def writing() -> bool:
            return bool((await control("GET", "/stats"))["writing"])

        await wait_for(writing, timeout=20, what="the first InSales write")
        db.unlink()  # while the first batch is in flight; the second is still to go

        async with aiohttp.ClientSession() as session:

            async def unhealthy() -> dict[str, Any] | None:
                async with session.get(f"http://127.0.0.1:{daemon.port}/healthz") as resp:
                    body: dict[str, Any] = await resp.json()
                    return body if resp.status == 503 else None

            body = await wait_for(unhealthy, timeout=10, what="/healthz to say 503")
        assert any("is gone" in reason for reason in body["reasons"]), body
        await asyncio.sleep(2 * EVERY)  # runs keep being due, and must not write
        stats = await control("GET", "/stats")
        assert stats["write_arrivals"] == 1, daemon.tail()
        assert daemon.alive
        assert not db.exists()  # not silently recreated
    finally:
        daemon.stop()
