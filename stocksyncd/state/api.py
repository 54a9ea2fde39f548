"""What the rest of stocksyncd may ask of the state store.

One implementation (``stocksyncd.state.sql``) serves SQLite and PostgreSQL
through SQLAlchemy; everything else codes against this protocol, so tests can
run the same suite over both backends.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from stocksyncd.errors import StockSyncError

if TYPE_CHECKING:
    from stocksyncd.integrations.base import Change, ChangeStatus, RunResult

# Every status a stored run may have. ``interrupted``: the process running it
# stopped (killed, crashed, lost its lease) before it could finish it; its
# changes stay as they stood. ``sync --json`` only ever reports the first three.
RUN_STATUSES = ("running", "ok", "aborted", "failed", "interrupted")
# Finished runs that did not succeed.
FAILED_STATUSES = ("failed", "interrupted")


class StoreUnavailable(StockSyncError):
    """The state store cannot record now: unreachable, too slow, or its file is gone."""


@dataclass
class ChangeRecord:
    """One audited write of a finished run."""

    ref: str
    key: str
    field: str
    old: str | None
    new: str | None
    applied: bool
    status: str = "confirmed"  # a ChangeStatus: planned | sent | confirmed | refused | unconfirmed
    reason: str = ""  # why refused or unconfirmed


@dataclass
class LeaseFence:
    """The lease a write must hold: its name and the replica that must hold it."""

    name: str
    holder: str


@dataclass
class RunRecord:
    """One run as stored: what ``start_run`` began and ``finish_run`` completed."""

    run_id: str
    integration: str
    trigger: str
    dry_run: bool
    replica: str
    started_at: datetime
    finished_at: datetime | None = None  # None while the run is in flight
    status: str = "running"  # one of RUN_STATUSES
    duration_s: float = 0.0
    counts: dict[str, Any] = field(default_factory=dict)  # RunCounts as a dict
    conflicts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    message: str = ""
    requests: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    changes: list[ChangeRecord] = field(default_factory=list)  # only from ``get_run``
    changes_total: int = 0


@dataclass
class RunPage:
    """One page of ``list_runs``: the runs and how many match in all."""

    runs: list[RunRecord]
    total: int


@dataclass
class ChangeHit:
    """A stored change found by ``search_changes``, with the run it belongs to."""

    run_id: str
    integration: str
    started_at: datetime
    status: str
    dry_run: bool
    change: ChangeRecord


@dataclass
class ChangePage:
    """One page of ``search_changes``: the hits, newest first, and how many in all."""

    hits: list[ChangeHit]
    total: int


@dataclass
class Lease:
    """Who runs an integration right now (PostgreSQL failover)."""

    name: str
    holder: str
    expires_at: datetime
    acquired_at: datetime


@dataclass
class ReplicaInfo:
    """A daemon process that has reported in."""

    replica: str
    seen_at: datetime
    started_at: datetime
    version: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReviewEntry:
    """One result of the Mouser -> InvenTree job, shown on the review page.

    ``kind`` is one of: ``lifecycle`` (status changed, data has old/new),
    ``updated`` (price breaks/availability/packaging/link changed),
    ``unknown_sku`` (Mouser no longer knows the SKU), ``hits`` (name search
    results, data["hits"] is a list of dicts), ``error`` (message says what).
    """

    integration: str
    part_pk: int
    part_name: str
    kind: str
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None  # assigned by the store
    created_at: datetime | None = None  # assigned by the store
    run_id: str | None = None


class StateStore(Protocol):
    """Durable state: runs, cursors, quotas, leases, review entries."""

    url: str  # redacted
    backend: str  # "sqlite" | "postgresql"

    async def close(self) -> None:
        """Dispose of connections."""
        ...

    # -- runs ---------------------------------------------------------------
    async def start_run(self, *, run_id: str, integration: str, trigger: str, dry_run: bool,
                        replica: str, started_at: datetime) -> None:
        """Record that a run began (status ``running``)."""
        ...

    async def finish_run(self, result: RunResult, *, finished_at: datetime) -> None:
        """Store the outcome of the run ``result.run_id`` began, with its changes."""
        ...

    async def recent_runs(self, integration: str | None = None, limit: int = 20, *,
                          details: bool = True) -> list[RunRecord]:
        """Newest first, without changes (``changes_total`` is filled).

        ``details=False``: without ``details`` either (a stock run's list of
        keys left alone can be hundreds of KB), for the checks every run start makes.
        """
        ...

    async def get_run(self, run_id: str) -> RunRecord | None:
        """One run with all its changes."""
        ...

    async def list_runs(self, *, integration: str | None = None, status: str | None = None,
                        since: datetime | None = None, until: datetime | None = None,
                        offset: int = 0, limit: int = 50) -> RunPage:
        """Runs started in [since, until), newest first, without changes; filters optional."""
        ...

    async def search_changes(self, term: str, *, integration: str | None = None,
                             offset: int = 0, limit: int = 100) -> ChangePage:
        """Every stored change whose key or ref is exactly ``term``, newest run first."""
        ...

    async def last_success(self, integration: str, *,
                           include_dry_runs: bool = True) -> datetime | None:
        """When the integration last finished with status ``ok`` (dry runs only if asked)."""
        ...

    async def plan_changes(self, run_id: str, changes: Sequence[Change], *,
                           fence: LeaseFence | None = None, valid_for: float = 0.0) -> None:
        """Store ``changes`` of run ``run_id`` as ``planned`` before they are sent.

        Sets each change's ``audit_id`` and ``status``. With ``fence``, in the
        same transaction: raise ``WriteFenced`` (storing nothing) unless
        ``fence.holder`` holds the lease ``fence.name`` for at least ``valid_for``
        more seconds by its stored expiry.
        """
        ...

    async def settle_changes(self, changes: Sequence[Change], status: ChangeStatus,
                             reason: str = "") -> None:
        """Move stored changes (by ``audit_id``) to ``status``."""
        ...

    def recording_problem(self) -> str | None:
        """Why the store cannot record right now (its last write failed), or None."""
        ...

    async def abandon_runs(self, *, message: str, finished_at: datetime,
                           replica: str | None = None, integration: str | None = None,
                           except_replica: str | None = None) -> int:
        """Close runs still marked ``running`` whose process is gone, as ``interrupted``.

        Their changes stay as they stood (``planned``: may have been sent).

        Filters: runs of ``replica``, of ``integration``, not of ``except_replica``.
        Returns how many runs were closed.
        """
        ...

    async def prune_runs(self, *, keep_per_integration: int = 0,
                         older_than: datetime | None = None,
                         max_bytes: int | None = None) -> int:
        """Delete runs beyond the newest ``keep_per_integration`` of each integration,
        started before ``older_than``, or beyond ``max_bytes`` of estimated history
        (newest kept first); never a run in flight nor an integration's newest run.
        Returns how many were deleted; 0 / None bounds are not applied."""
        ...

    # -- small durable values (cursors, the InSales index) ----------------------
    async def get_value(self, scope: str, key: str) -> Any | None:
        """A JSON-able value stored under (scope, key), or None."""
        ...

    async def set_value(self, scope: str, key: str, value: Any) -> None:
        """Store a JSON-able value (upsert)."""
        ...

    async def delete_value(self, scope: str, key: str) -> None:
        """Forget a value."""
        ...

    # -- quotas (shared by replicas, survive restarts) ------------------------------
    async def quota_take(self, key: str, bucket: str, limit: int, n: int = 1) -> bool:
        """Atomically add ``n`` to the use of (key, bucket) if it stays <= limit."""
        ...

    async def quota_used(self, key: str, bucket: str) -> int:
        """Units used in (key, bucket); 0 when unknown."""
        ...

    async def quota_exhaust(self, key: str, bucket: str, limit: int) -> None:
        """Mark (key, bucket) as used up (the upstream said the quota is gone)."""
        ...

    async def prune_quotas(self, *, before: datetime) -> int:
        """Delete quota buckets last touched before ``before``; returns how many."""
        ...

    # -- leases (exactly one replica runs an integration at a time) -------------------
    async def try_acquire_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take the lease if it is free, expired, or already ours; True when we hold it."""
        ...

    async def renew_lease(self, name: str, holder: str, ttl: float) -> bool:
        """Extend our lease; False when it is no longer ours."""
        ...

    async def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up (only if ours)."""
        ...

    async def leases(self) -> list[Lease]:
        """Every lease that has not expired."""
        ...

    async def heartbeat(self, replica: str, *, started_at: datetime, version: str,
                        info: dict[str, Any] | None = None) -> None:
        """Report this replica alive."""
        ...

    async def replicas(self, *, seen_within: float) -> list[ReplicaInfo]:
        """Replicas that reported within ``seen_within`` seconds."""
        ...

    # -- review entries (Mouser -> InvenTree results) ------------------------------
    async def add_review(self, entry: ReviewEntry) -> int:
        """Store an entry; returns its id."""
        ...

    async def list_reviews(self, integration: str | None = None, *, kind: str | None = None,
                           limit: int = 200) -> list[ReviewEntry]:
        """Newest first."""
        ...

    async def get_review(self, entry_id: int) -> ReviewEntry | None:
        """One entry."""
        ...

    async def update_review(self, entry_id: int, *, message: str | None = None,
                            data: dict[str, Any] | None = None, kind: str | None = None) -> None:
        """Change an entry in place (e.g. mark a hit as created)."""
        ...

    async def delete_review(self, entry_id: int) -> bool:
        """Delete an entry; False when it did not exist."""
        ...
