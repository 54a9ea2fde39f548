"""Two daemon processes, one PostgreSQL schema: each period's run happens once; a
replica killed mid-run is replaced within the lease expiry, with nothing written twice,
every write in the audit, and no Mouser part repeated or skipped."""

from __future__ import annotations

import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from stocksyncd.state import RunRecord, SqlStateStore

from .conftest import EVERY, LEASE_TTL, Replica, assert_audited, wait_for

pytestmark = pytest.mark.postgres

Control = Callable[..., Awaitable[Any]]


async def runs_of(store: SqlStateStore, name: str) -> list[RunRecord]:
    """Every run of ``name``, oldest first."""
    return list(reversed(await store.recent_runs(name, limit=1000)))


def assert_written_once(stats: dict[str, Any], variants: int) -> None:
    """Every variant got its Kak2c quantity, in exactly one applied write."""
    ids = stats["variant_ids"]
    assert len(ids) == variants
    for code, vid in ids.items():
        expected = int(code[-5:]) + 1
        assert stats["writes"].get(str(vid)) == [expected], code
        assert stats["quantities"][code] == expected, code


def assert_cursor_walk(searches: list[str], parts: list[str]) -> None:
    """Mouser was asked about the parts in cursor order, each once per lap."""
    assert searches, "no Mouser search happened"
    assert searches == [parts[i % len(parts)] for i in range(len(searches))]


def assert_cursor_chain(runs: list[RunRecord], parts: int) -> None:
    """Each completed run moved the shared cursor on by exactly one part (pks 10, 20, ...)."""
    cursors = [r.details.get("cursor") for r in runs if r.status == "ok"]
    order = [10 * (i + 1) for i in range(parts)]
    assert cursors == [order[(i + 1) % parts] for i in range(len(cursors))], cursors


async def test_each_period_runs_once_across_two_replicas(
    replicas: dict[str, Replica], store: SqlStateStore, control: Control,
    sims: dict[str, Any],
) -> None:
    for replica in replicas.values():
        replica.start()
        time.sleep(0.7)  # different start times: the timers are out of phase

    async def both_seen() -> bool:
        seen = await store.replicas(seen_within=60)
        return {r.replica for r in seen} == {"alpha", "beta"}

    await wait_for(both_seen, timeout=20, what="both replicas to report in")

    periods = 5

    async def enough_runs() -> list[RunRecord] | None:
        assert all(r.alive for r in replicas.values()), [r.tail() for r in replicas.values()]
        runs = [r for r in await runs_of(store, "stock") if r.status != "running"]
        return runs if len(runs) >= periods + 1 else None

    start = time.monotonic()
    await wait_for(enough_runs, timeout=periods * EVERY * 3 + 10, what=f"{periods} periods")
    elapsed = time.monotonic() - start
    for replica in replicas.values():
        replica.stop()  # drained: nothing in flight when we count

    stock = await runs_of(store, "stock")
    parts = await runs_of(store, "parts")
    stats = await control("GET", "/stats")

    # Every run the store recorded is one the simulators saw, and vice versa.
    assert all(r.status == "ok" for r in stock), [(r.status, r.errors) for r in stock]
    assert stats["kak2c_listings"] == len(stock)
    assert len(stats["mouser_searches"]) == len([r for r in parts if r.status == "ok"])
    # Both replicas were up and shared the work, yet no two runs fell into one period:
    # consecutive scheduled runs start at least half a period apart and at most
    # about one and a half periods apart (a tick that found the period done).
    scheduled = [r for r in stock if r.trigger == "schedule"]
    gaps = [(b.started_at - a.started_at).total_seconds()
            for a, b in itertools.pairwise(scheduled)]
    assert gaps and min(gaps) >= EVERY * 0.5 - 0.05, gaps
    assert max(gaps) <= EVERY * 1.5 + 1.0, gaps
    assert len(stock) <= elapsed / EVERY + 2, (len(stock), elapsed)
    for runs in (stock, parts):
        steps = [(b.started_at - a.started_at).total_seconds()
                 for a, b in itertools.pairwise(runs)]
        assert min(steps) >= EVERY * 0.5 - 0.05, steps
    # The first run wrote everything; the later ones found nothing to change.
    assert_written_once(stats, sims["variants"])
    assert stats["write_requests"] == 2  # 100 + 50 variants
    assert [r.counts["written"] for r in stock] == [sims["variants"]] + [0] * (len(stock) - 1)
    # The shared cursor walked the parts once each, whichever replica ran.
    assert_cursor_walk(stats["mouser_searches"], sims["parts"])
    assert_cursor_chain(parts, len(sims["parts"]))


async def test_killed_leader_is_replaced_within_the_lease_expiry(
    replicas: dict[str, Replica], store: SqlStateStore, control: Control,
    sims: dict[str, Any],
) -> None:
    # The first stock run writes 100 variants, then its second write hangs.
    await control("POST", "/hold?after=1")
    for replica in replicas.values():
        replica.start()

    async def held() -> bool:
        return bool((await control("GET", "/stats"))["held"])

    await wait_for(held, timeout=20, what="the second InSales write to be held")
    leases = {lease.name: lease.holder for lease in await store.leases()}
    victim = replicas[leases["integration:stock"]]
    survivor = next(r for r in replicas.values() if r is not victim)

    # The survivor's /healthz names the replica holding the lease.
    async with aiohttp.ClientSession() as session:

        async def shown() -> dict[str, Any] | None:
            return await survivor.healthz(session)

        health = await wait_for(shown, timeout=15, what="the survivor's /healthz")
        async with session.get(f"http://127.0.0.1:{survivor.port}/") as resp:
            page = await resp.text()
    assert f'<td data-label="Lease">{victim.name}</td>' in page
    shown_leases = {lease["name"]: lease["holder"] for lease in health["leases"]}
    assert shown_leases["integration:stock"] == victim.name
    assert health["integrations"]["stock"]["lease_holder"] == victim.name

    victim.kill()
    killed_at = time.monotonic()
    parts_before = len([r for r in await runs_of(store, "parts") if r.status == "ok"])

    async def taken_over() -> RunRecord | None:
        assert survivor.alive, survivor.tail()
        for run in await runs_of(store, "stock"):
            if run.replica == survivor.name and run.status == "ok" and run.counts["written"]:
                return run
        return None

    run = await wait_for(taken_over, timeout=LEASE_TTL + EVERY + 15,
                         what="the survivor to complete the stock run")
    took = time.monotonic() - killed_at
    assert took <= LEASE_TTL + EVERY + 2.0, took

    async def parts_moved_on() -> bool:
        ok = [r for r in await runs_of(store, "parts") if r.status == "ok"]
        return len(ok) >= parts_before + 3

    await wait_for(parts_moved_on, timeout=EVERY * 3 * 3 + 10,
                   what="three more Mouser parts after the kill")
    survivor.stop()

    stats = await control("GET", "/stats")
    stock = await runs_of(store, "stock")
    # The killed run never finished: the survivor closed it when it took the lease,
    # and wrote only what it had not written.
    killed = [r for r in stock if r.replica == victim.name and r.status != "ok"]
    assert len(killed) == 1
    assert killed[0].status == "interrupted" and "lost the lease" in killed[0].message
    assert run.counts["written"] == sims["variants"] - 100
    assert_written_once(stats, sims["variants"])
    # The killed run's audit holds its sent batch and the held one (may have gone out).
    cut = await store.get_run(killed[0].run_id)
    assert cut is not None
    assert sorted(c.status for c in cut.changes) == ["planned"] * 50 + ["sent"] * 100
    assert await assert_audited(store, stats) == sims["variants"]
    assert stats["write_requests"] == 2  # the held one never reached the shop
    # No Mouser part repeated or skipped across the takeover; a part whose run died
    # with its replica is the only one that may be asked about again.
    parts = await runs_of(store, "parts")
    searches = list(stats["mouser_searches"])
    if any(r.replica == victim.name and "lost the lease" in r.message for r in parts):
        repeats = [i for i in range(1, len(searches)) if searches[i] == searches[i - 1]]
        assert len(repeats) <= 1, searches
        for i in reversed(repeats):
            del searches[i]
    assert_cursor_walk(searches, sims["parts"])
    ok_parts = [r for r in parts if r.status == "ok"]
    assert len(searches) == len(ok_parts)
    assert_cursor_chain(parts, len(sims["parts"]))
