"""A stand-in daemon view and an in-memory state store for the web app tests."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from stocksyncd.clock import FakeClock
from stocksyncd.config import Config
from stocksyncd.errors import StockSyncError
from stocksyncd.runtime.metrics import Metrics
from stocksyncd.runtime.view import JobInfo
from stocksyncd.runtime.web import create_app
from stocksyncd.state.api import ChangeRecord, Lease, ReplicaInfo, ReviewEntry, RunRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


class FakeState:
    """The parts of ``StateStore`` the web app reads, kept in lists."""

    url = "sqlite:///:memory:"
    backend = "sqlite"

    def __init__(self) -> None:
        self.runs: list[RunRecord] = []  # newest first
        self.reviews: dict[int, ReviewEntry] = {}
        self.lease_list: list[Lease] = []
        self.replica_list: list[ReplicaInfo] = []
        self._next_id = 1
        self.problem: str | None = None  # what recording_problem says

    def recording_problem(self) -> str | None:
        return self.problem

    def add_run(self, run: RunRecord) -> None:
        run.changes_total = run.changes_total or len(run.changes)
        self.runs.insert(0, run)

    async def recent_runs(self, integration: str | None = None, limit: int = 20, *,
                          details: bool = True) -> list[RunRecord]:
        found = [r for r in self.runs if integration is None or r.integration == integration]
        return [replace(r, changes=[]) for r in found[:limit]]

    async def get_run(self, run_id: str) -> RunRecord | None:
        return next((r for r in self.runs if r.run_id == run_id), None)

    async def last_success(self, integration: str, *,
                           include_dry_runs: bool = True) -> datetime | None:
        return next((r.finished_at for r in self.runs
                     if r.integration == integration and r.status == "ok"
                     and (include_dry_runs or not r.dry_run)), None)

    async def leases(self) -> list[Lease]:
        return list(self.lease_list)

    async def replicas(self, *, seen_within: float) -> list[ReplicaInfo]:
        return list(self.replica_list)

    async def add_review(self, entry: ReviewEntry) -> int:
        entry.id = self._next_id
        entry.created_at = entry.created_at or T0
        self._next_id += 1
        self.reviews[entry.id] = entry
        return entry.id

    async def list_reviews(self, integration: str | None = None, *, kind: str | None = None,
                           limit: int = 200) -> list[ReviewEntry]:
        found = [e for e in sorted(self.reviews.values(), key=lambda e: -(e.id or 0))
                 if (integration is None or e.integration == integration)
                 and (kind is None or e.kind == kind)]
        return found[:limit]

    async def get_review(self, entry_id: int) -> ReviewEntry | None:
        return self.reviews.get(entry_id)

    async def update_review(self, entry_id: int, *, message: str | None = None,
                            data: dict[str, Any] | None = None, kind: str | None = None) -> None:
        entry = self.reviews[entry_id]
        if message is not None:
            entry.message = message
        if data is not None:
            entry.data = data
        if kind is not None:
            entry.kind = kind

    async def delete_review(self, entry_id: int) -> bool:
        return self.reviews.pop(entry_id, None) is not None


class FakeMouser:
    """A mouser-inventree integration that records review actions."""

    name = "parts"
    type = "mouser-inventree"

    def __init__(self, state: FakeState) -> None:
        self.state = state
        self.calls: list[tuple[int, int]] = []
        self.fail_with: Exception | None = None

    async def create_supplier_part(self, entry_id: int, hit: int) -> str:
        self.calls.append((entry_id, hit))
        if self.fail_with is not None:
            raise self.fail_with
        entry = self.state.reviews[entry_id]
        hits = [dict(h) for h in entry.data["hits"]]
        hits[hit]["created"] = "supplier part 42"
        await self.state.update_review(entry_id, data={**entry.data, "hits": hits})
        return f"created supplier part 42 (SKU {hits[hit]['mouser_pn']})"

    async def close(self) -> None:
        return None


def make_config(token: str = "", failures_unhealthy: int = 3) -> Config:
    """A config with one job of each type."""
    return Config(
        daemon={"failures_unhealthy": failures_unhealthy, "replica": "r1"},
        web={"token": token},
        shops={"main": {"url": "https://shop.example", "api_key": "k", "password": "p"}},
        integrations={
            "warehouse": {"type": "moysklad-insales", "shop": "main", "token": "t"},
            "fulfilment": {"type": "kak2c-insales", "shop": "main", "login": "l",
                           "password": "p", "every": "1m"},
            "parts": {"type": "mouser-inventree", "inventree_url": "https://inv.example",
                      "inventree_token": "t", "mouser_api_key": "k", "mouser_supplier": 3},
        },
    )


@dataclass
class FakeView:
    """A ``DaemonView`` over the fakes."""

    config: Config
    state: FakeState
    metrics: Metrics
    job_list: list[JobInfo]
    replica: str = "r1"
    started_at: datetime = T0
    live: dict[str, Any] = field(default_factory=dict)
    triggered: list[str] = field(default_factory=list)

    def jobs(self) -> list[JobInfo]:
        return list(self.job_list)

    def integration(self, name: str) -> Any:
        return self.live.get(name)

    async def trigger(self, name: str) -> str:
        job = next((j for j in self.job_list if j.name == name and j.enabled), None)
        if job is None:
            raise KeyError(name)
        self.triggered.append(name)
        return f"run-{name}-manual"


def default_jobs() -> list[JobInfo]:
    """The three configured integrations as the scheduler reports them."""
    return [
        JobInfo("warehouse", "moysklad-insales", True, False, 3600.0, None,
                T0 + timedelta(hours=1), False),
        JobInfo("fulfilment", "kak2c-insales", True, False, 60.0, None,
                T0 + timedelta(minutes=1), True, lease_holder="r1"),
        JobInfo("parts", "mouser-inventree", False, True, 120.0, None, None, False),
    ]


def make_run(run_id: str, integration: str, status: str = "ok", *, at: datetime = T0,
             changes: list[ChangeRecord] | None = None, **kw: Any) -> RunRecord:
    """A finished run starting at ``at``."""
    return RunRecord(run_id=run_id, integration=integration, trigger="schedule",
                     dry_run=kw.pop("dry_run", False), replica="r1", started_at=at,
                     finished_at=at + timedelta(seconds=5), status=status, duration_s=5.0,
                     changes=changes or [], **kw)


@pytest.fixture
def fake_clock() -> FakeClock:
    """Now is ten minutes after the daemon started."""
    clock = FakeClock(T0)
    clock.advance(600)
    return clock


@pytest.fixture
def state() -> FakeState:
    """An empty in-memory store."""
    return FakeState()


@pytest.fixture
def view(state: FakeState) -> FakeView:
    """A daemon without a token."""
    view = FakeView(make_config(), state, Metrics(), default_jobs())
    view.live["parts"] = FakeMouser(state)
    return view


Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[[FakeView], Awaitable[Client]]


@pytest.fixture
def make_client(aiohttp_client: Any, fake_clock: FakeClock) -> ClientFactory:
    """Serve the app for a view and return a test client."""

    async def factory(view: FakeView) -> Client:
        client: Client = await aiohttp_client(create_app(view, clock=fake_clock))
        return client

    return factory


async def csrf_from(client: Client, path: str = "/", **kw: Any) -> str:
    """The CSRF token of the form on ``path``."""
    resp = await client.get(path, **kw)
    match = CSRF_RE.search(await resp.text())
    assert match, f"no CSRF field on {path}"
    return match.group(1)


class Refused(StockSyncError):
    """What the fake integration raises when told to fail."""
