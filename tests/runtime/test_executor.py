"""One run of one integration: recorded, bounded, never crashing the caller."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from stocksyncd.clock import FakeClock
from stocksyncd.config import Kak2cInSalesConfig
from stocksyncd.http.transport import ExchangeRecord
from stocksyncd.integrations.base import Change, RunContext, RunResult
from stocksyncd.redact import register_secrets
from stocksyncd.runtime.executor import Executor, new_run_id, run_deadline
from stocksyncd.runtime.resources import IntegrationObserver

from .fakes import FakeMetrics, GatedIntegration, MemoryStore


def _executor(clock: FakeClock, debug_dir: Path | None = None) -> tuple[Executor, MemoryStore,
                                                                        FakeMetrics]:
    store, metrics = MemoryStore(), FakeMetrics()
    return (Executor(state=store, clock=clock, replica="r1", metrics=metrics,  # type: ignore[arg-type]
                     debug_dir=debug_dir), store, metrics)


async def test_ok_run_is_recorded(clock: FakeClock) -> None:
    ex, store, metrics = _executor(clock)
    integ = GatedIntegration("shop")
    integ.release.set()
    result = await ex.run(integ, trigger="cli", dry_run=True, deadline=60)
    assert result.status == "ok" and result.dry_run and result.run_id
    assert result.started_at == clock.now()
    rec = store.runs[result.run_id]
    assert (rec.status, rec.trigger, rec.replica, rec.dry_run) == ("ok", "cli", "r1", True)
    assert metrics.started == ["shop"] and metrics.finished == [result]
    assert integ.contexts[0].run_id == result.run_id and integ.contexts[0].trigger == "cli"


async def test_exception_becomes_failed_and_is_redacted(clock: FakeClock) -> None:
    register_secrets(["s3cr3t-password"])
    ex, store, _ = _executor(clock)
    integ = GatedIntegration("shop", error=RuntimeError("login s3cr3t-password refused"))
    integ.release.set()
    result = await ex.run(integ, trigger="schedule", dry_run=False, deadline=60)
    assert result.status == "failed"
    assert result.errors == ["RuntimeError: login *** refused"]
    assert store.runs[result.run_id].status == "failed"


async def test_deadline_fails_the_run(clock: FakeClock) -> None:
    ex, store, _ = _executor(clock)
    result = await ex.run(GatedIntegration("slow"), trigger="schedule", dry_run=False,
                          deadline=0)
    assert result.status == "failed"
    assert result.errors == ["run exceeded its deadline of 0s"]
    assert store.runs[result.run_id].finished_at is not None


async def test_cancellation_is_recorded_then_propagates(clock: FakeClock) -> None:
    ex, store, metrics = _executor(clock)
    integ = GatedIntegration("shop")
    task = asyncio.create_task(ex.run(integ, trigger="schedule", dry_run=False, deadline=60,
                                      run_id="run-1"))
    await integ.started.wait()
    task.cancel("cancelled at shutdown")
    with pytest.raises(asyncio.CancelledError):
        await task
    assert store.runs["run-1"].status == "failed"
    assert store.runs["run-1"].errors == ["cancelled at shutdown"]
    assert metrics.finished[0].status == "failed"


async def test_requests_counted_and_debug_dump_written(clock: FakeClock, tmp_path: Path) -> None:
    register_secrets(["tok-abcdef"])
    ex, _, metrics = _executor(clock, debug_dir=tmp_path)
    observer = IntegrationObserver(metrics)  # type: ignore[arg-type]
    integ = GatedIntegration("shop")
    integ.release.set()

    async def run_with_requests(ctx: object) -> object:
        observer.observe(ExchangeRecord("insales", "GET", "https://x/a", 200, 0.1,
                                        body=b'{"token": "tok-abcdef", "n": 1}'))
        observer.observe(ExchangeRecord("kak2c", "POST", "https://y/b", None, 0.2,
                                        error="timeout"))
        return await GatedIntegration.run(integ, ctx)  # type: ignore[arg-type]

    integ.run = run_with_requests  # type: ignore[method-assign, assignment]
    result = await ex.run(integ, trigger="cli", dry_run=False, deadline=60, observer=observer)
    assert result.requests == {"insales": 1, "kak2c": 1}
    assert len(metrics.observed) == 2
    index = orjson.loads((tmp_path / "shop" / "index.json").read_bytes())
    assert index["run_id"] == result.run_id
    assert [e["status"] for e in index["exchanges"]] == [200, None]
    body = (tmp_path / "shop" / index["exchanges"][0]["file"]).read_text()
    assert "tok-abcdef" not in body and '"n": 1' in body
    # The next run replaces the files of the previous one.
    second = await ex.run(integ, trigger="cli", dry_run=False, deadline=60, observer=observer)
    index = orjson.loads((tmp_path / "shop" / "index.json").read_bytes())
    assert index["run_id"] == second.run_id
    assert len(list((tmp_path / "shop").iterdir())) == 3


def test_run_ids_are_unique_and_sortable() -> None:
    ids = [new_run_id() for _ in range(50)]
    assert len(set(ids)) == 50
    assert ids[0][:12] <= ids[-1][:12]


def test_run_deadline() -> None:
    base = {"type": "kak2c-insales", "shop": "m", "login": "l", "password": "p"}
    assert run_deadline(Kak2cInSalesConfig(**base), "kak2c-insales") == 600.0  # type: ignore[arg-type]
    hourly = Kak2cInSalesConfig(**base, every="1h")  # type: ignore[arg-type]
    assert run_deadline(hourly, "kak2c-insales") == 7200.0
    cron = Kak2cInSalesConfig(**base, cron="0 * * * *")  # type: ignore[arg-type]
    assert run_deadline(cron, "kak2c-insales") == 3600.0


class Conflicted(GatedIntegration):
    """Reports the conflicts it is given, run after run."""

    def __init__(self, conflicts: list[list[str]]) -> None:
        super().__init__("shop")
        self.release.set()
        self.plan = conflicts

    async def run(self, ctx):  # type: ignore[no-untyped-def]
        result = await super().run(ctx)
        result.conflicts = self.plan[self.runs - 1]
        return result


async def test_conflicts_warn_when_they_appear_not_on_every_run(clock: FakeClock) -> None:
    from loguru import logger

    ex, _, _ = _executor(clock)
    integ = Conflicted([["A", "B"], ["A", "B"], ["A", "B", "C"], ["A"]])
    levels: list[tuple[str, str]] = []
    sink = logger.add(lambda m: levels.append((m.record["level"].name, m.record["message"])),
                      level="INFO")
    try:
        for _ in range(4):
            await ex.run(integ, trigger="schedule", dry_run=False, deadline=60)
    finally:
        logger.remove(sink)
    warnings = [msg for level, msg in levels if level == "WARNING"]
    new = [w for w in warnings if w.startswith("new conflicts")]
    # Run 1 finds A and B, run 3 adds C; runs 2 and 4 (nothing new) stay at INFO.
    assert new == ["new conflicts, not written: A, B", "new conflicts, not written: C"]
    assert len(warnings) == 4  # each of those two runs: its summary line and the list
    assert sum(level == "INFO" and "shop: ok" in msg for level, msg in levels) == 2


class _WritingIntegration:
    """Writes two batches through the audit, then waits (to be cut off)."""

    name = "shop"
    type = "kak2c-insales"

    def __init__(self) -> None:
        self.wrote = asyncio.Event()

    async def run(self, ctx: RunContext) -> RunResult:
        sent = [Change(ref="1", key="A", field="quantity", old="0", new="5")]
        await ctx.audit.planned(sent, may_take=1)
        await ctx.audit.settle(sent, "sent")
        maybe = [Change(ref="2", key="B", field="quantity", old="0", new="7")]
        await ctx.audit.planned(maybe, may_take=1)
        self.wrote.set()
        await asyncio.Event().wait()  # the request never answers
        raise AssertionError("unreachable")

    async def close(self) -> None:
        return None


async def test_a_cut_off_run_keeps_what_its_audit_holds(clock: FakeClock) -> None:
    ex, store, _ = _executor(clock)
    integ = _WritingIntegration()
    task = asyncio.create_task(ex.run(integ, trigger="schedule", dry_run=False, deadline=60))
    await integ.wrote.wait()
    task.cancel("cancelled at shutdown")
    with pytest.raises(asyncio.CancelledError):
        await task
    [result] = store.results.values()
    assert result.status == "failed" and result.message == "cancelled at shutdown"
    assert [(c.ref, c.status) for c in result.changes] == [("1", "sent"), ("2", "planned")]
    assert result.counts.written == 1
    assert result.details["unsettled_changes"] == 1


async def test_a_run_that_cannot_record_stops_writing_and_is_closed_later(
    clock: FakeClock,
) -> None:
    ex, store, _ = _executor(clock)
    integ = _WritingIntegration()
    store.fail_with = OSError("connection refused")
    result = await ex.run(integ, trigger="schedule", dry_run=False, deadline=60)
    assert result.status == "failed"
    assert result.errors[0].startswith("WriteFenced: the state store could not record")
    assert not integ.wrote.is_set()
    assert store.runs[result.run_id].status == "running"  # the end was not recorded
    assert list(ex.unrecorded) == [result.run_id]
    assert await ex.record_unrecorded() == 1  # still out
    store.fail_with = None
    assert await ex.record_unrecorded() == 0
    assert store.runs[result.run_id].status == "failed"
