"""Stand-ins for the runtime tests: an in-memory state store, integrations, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from stocksyncd.clock import Clock
from stocksyncd.config import Config
from stocksyncd.errors import WriteFenced
from stocksyncd.http.transport import ExchangeRecord
from stocksyncd.integrations.base import (
    Change,
    ChangeStatus,
    Integration,
    Resources,
    RunContext,
    RunResult,
)
from stocksyncd.state.api import Lease, LeaseFence, ReplicaInfo, RunRecord


class MemoryStore:
    """The parts of ``StateStore`` the runtime uses, in memory."""

    url = "memory://"

    def __init__(self, backend: str = "sqlite") -> None:
        self.backend = backend
        self.runs: dict[str, RunRecord] = {}
        self.results: dict[str, RunResult] = {}
        self.lease_holders: dict[str, str] = {}
        self.lease_calls: list[tuple[str, str, str]] = []
        self.heartbeats = 0
        self.live_replicas: list[str] = []  # other replicas reporting in (fair share)
        self.pruned_to: int | None = None
        self.pruned_older_than: datetime | None = None
        self.pruned_max_bytes: int | None = None
        self.quotas_pruned_before: datetime | None = None
        self.closed = False
        self.planned: dict[int, Change] = {}  # audit id -> change, as the audit left it
        self.fail_with: Exception | None = None  # raised by every write while set

    def recording_problem(self) -> str | None:
        return None if self.fail_with is None else str(self.fail_with)

    async def plan_changes(self, run_id: str, changes: Sequence[Change], *,
                           fence: LeaseFence | None = None, valid_for: float = 0.0) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        if fence is not None and self.lease_holders.get(fence.name) != fence.holder:
            raise WriteFenced(f"lease {fence.name} is not held by {fence.holder}")
        for change in changes:
            change.audit_id, change.status = len(self.planned), "planned"
            self.planned[change.audit_id] = change

    async def settle_changes(self, changes: Sequence[Change], status: ChangeStatus,
                             reason: str = "") -> None:
        if self.fail_with is not None:
            raise self.fail_with
        for change in changes:
            change.status = status

    async def close(self) -> None:
        self.closed = True

    async def start_run(self, *, run_id: str, integration: str, trigger: str, dry_run: bool,
                        replica: str, started_at: datetime) -> None:
        self.runs[run_id] = RunRecord(run_id=run_id, integration=integration, trigger=trigger,
                                      dry_run=dry_run, replica=replica, started_at=started_at)

    async def finish_run(self, result: RunResult, *, finished_at: datetime) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        rec = self.runs[result.run_id]
        rec.status = result.status
        rec.finished_at = finished_at
        rec.errors = list(result.errors)
        self.results[result.run_id] = result

    async def recent_runs(self, integration: str | None = None, limit: int = 20, *,
                          details: bool = True) -> list[RunRecord]:
        runs = [r for r in self.runs.values() if integration in (None, r.integration)]
        return sorted(runs, key=lambda r: r.started_at, reverse=True)[:limit]

    async def abandon_runs(self, *, message: str, finished_at: datetime,
                           replica: str | None = None, integration: str | None = None,
                           except_replica: str | None = None) -> int:
        closed = 0
        for rec in self.runs.values():
            if rec.status != "running" or replica not in (None, rec.replica):
                continue
            if integration not in (None, rec.integration) or rec.replica == except_replica:
                continue
            rec.status, rec.finished_at, rec.message = "interrupted", finished_at, message
            closed += 1
        return closed

    async def prune_runs(self, *, keep_per_integration: int = 0,
                         older_than: datetime | None = None,
                         max_bytes: int | None = None) -> int:
        self.pruned_to = keep_per_integration
        self.pruned_older_than = older_than
        self.pruned_max_bytes = max_bytes
        return 0

    async def prune_quotas(self, *, before: datetime) -> int:
        self.quotas_pruned_before = before
        return 0

    async def try_acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        self.lease_calls.append(("acquire", name, holder))
        current = self.lease_holders.get(name)
        if current not in (None, holder):
            return False
        self.lease_holders[name] = holder
        return True

    async def renew_lease(self, name: str, holder: str, ttl: float) -> bool:
        return self.lease_holders.get(name) == holder

    async def release_lease(self, name: str, holder: str) -> None:
        self.lease_calls.append(("release", name, holder))
        if self.lease_holders.get(name) == holder:
            del self.lease_holders[name]

    async def leases(self) -> list[Lease]:
        return []

    async def heartbeat(self, replica: str, *, started_at: datetime, version: str,
                        info: dict[str, Any] | None = None) -> None:
        self.heartbeats += 1

    async def replicas(self, *, seen_within: float) -> list[ReplicaInfo]:
        return [ReplicaInfo(replica=r, seen_at=datetime.now(UTC), started_at=datetime.now(UTC),
                            version="") for r in self.live_replicas]


class FakeMetrics:
    """Records what the runtime reports."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[RunResult] = []
        self.observed: list[ExchangeRecord] = []
        self.up: dict[str, bool] = {}
        self.forgotten: list[str] = []

    def observe(self, record: ExchangeRecord) -> None:
        self.observed.append(record)

    def run_started(self, name: str) -> None:
        self.started.append(name)

    def record_run(self, result: RunResult) -> None:
        self.finished.append(result)

    def set_up(self, integration: str, enabled: bool) -> None:
        self.up[integration] = enabled

    def set_quota_left(self, integration: str, value: int) -> None:
        pass

    def forget(self, integration: str) -> None:
        self.forgotten.append(integration)


class GatedIntegration:
    """Runs until ``release`` is set; counts its runs; may raise."""

    def __init__(self, name: str, type_: str = "kak2c-insales", *,
                 error: BaseException | None = None) -> None:
        self.name = name
        self.type = type_
        self.error = error
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.runs = 0
        self.closed = False
        self.contexts: list[RunContext] = []

    async def run(self, ctx: RunContext) -> RunResult:
        self.runs += 1
        self.contexts.append(ctx)
        self.started.set()
        await self.release.wait()
        if self.error is not None:
            raise self.error
        result = RunResult(integration=self.name)
        result.counts.source = 3
        result.counts.matched = 2
        return result

    async def close(self) -> None:
        self.closed = True


class FakeBuilder:
    """A ``registry.build`` stand-in that hands out ``GatedIntegration``s."""

    def __init__(self, *, released: bool = True) -> None:
        self.released = released
        self.built: list[GatedIntegration] = []
        self.configs: list[Any] = []

    def __call__(self, name: str, cfg: Any, config: Config, res: Resources) -> Integration:
        obj = GatedIntegration(name, cfg.type)
        if self.released:
            obj.release.set()
        self.built.append(obj)
        self.configs.append(cfg)
        return obj

    def latest(self, name: str) -> GatedIntegration:
        return [b for b in self.built if b.name == name][-1]


async def memory_store_factory(url: str, *, clock: Clock) -> MemoryStore:
    """A ``StateFactory`` returning a fresh ``MemoryStore``."""
    return MemoryStore()
