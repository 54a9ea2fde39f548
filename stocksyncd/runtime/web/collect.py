"""Read what the pages and /healthz show from the daemon view and the state store."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from stocksyncd.runtime.view import DaemonView, JobInfo
from stocksyncd.runtime.web.health import (
    HealthReport,
    JobHealthInput,
    RunBrief,
    cron_interval,
    judge,
)
from stocksyncd.runtime.web.pages import StatusData
from stocksyncd.state.api import ChangeRecord, Lease, RunRecord

RECENT_RUNS = 30
CHANGE_RUNS = 5  # runs whose changes appear under "recent changes"
RECENT_CHANGES = 50


def job_interval(job: JobInfo, now: datetime) -> float | None:
    """The expected spacing of runs; None when it cannot be known (no overdue check)."""
    if job.every_s is not None:
        return job.every_s
    if job.cron:
        return cron_interval(job.cron, now)
    return None


async def _health_input(view: DaemonView, job: JobInfo, limit: int,
                        holders: dict[str, str], now: datetime) -> JobHealthInput:
    # The last success comes from the whole stored history, not only the runs
    # fetched here: a few aborted runs must not hide the ok ones before them. A
    # manual dry run of a live integration is not a success of that integration.
    runs, stored = await asyncio.gather(
        view.state.recent_runs(job.name, limit=limit),
        view.state.last_success(job.name, include_dry_runs=job.dry_run),
    )
    return JobHealthInput(
        name=job.name,
        enabled=job.enabled,
        dry_run=job.dry_run,
        interval_s=job_interval(job, now),
        runs=[RunBrief(r.status, r.dry_run, r.finished_at, r.started_at) for r in runs],
        stored_last_success=stored,
        # On a shared store the lease table is the truth; the daemon's own view
        # of other replicas' leases is only refreshed with its heartbeat.
        lease_holder=(holders.get(job.name) if view.state.backend == "postgresql"
                      else job.lease_holder or holders.get(job.name)),
    )


async def health(view: DaemonView, now: datetime) -> tuple[HealthReport, list[Lease]]:
    """Judge every integration from the shared run history."""
    failures = view.config.daemon.failures_unhealthy
    problem = view.state.recording_problem()
    if problem is not None:
        # Asking the store would only wait for it: judge by the schedule alone.
        unread = [JobHealthInput(name=j.name, enabled=j.enabled, dry_run=j.dry_run,
                                 interval_s=None, lease_holder=j.lease_holder)
                  for j in view.jobs()]
        return judge(unread, now=now, started_at=view.started_at, failures_unhealthy=failures,
                     recording_problem=problem), []
    leases = await view.state.leases()
    # The daemon names an integration's lease "integration:<name>".
    holders = {lease.name.removeprefix("integration:"): lease.holder for lease in leases}
    jobs = view.jobs()
    inputs = await asyncio.gather(
        *(_health_input(view, j, max(failures, 10), holders, now) for j in jobs)
    )
    report = judge(inputs, now=now, started_at=view.started_at,
                   failures_unhealthy=failures)
    return report, leases


def health_json(view: DaemonView, report: HealthReport, leases: list[Lease]) -> dict[str, Any]:
    """The /healthz body."""
    return {
        "status": "ok" if report.healthy else "unhealthy",
        "replica": view.replica,
        "started_at": view.started_at.isoformat(),
        "reasons": report.reasons,
        "integrations": {name: v.to_json() for name, v in report.integrations.items()},
        "leases": [
            {"name": lease.name, "holder": lease.holder,
             "expires_at": lease.expires_at.isoformat()}
            for lease in leases
        ],
    }


async def status_data(view: DaemonView, now: datetime) -> StatusData:
    """Everything ``GET /`` shows."""
    report, leases = await health(view, now)
    runs = await view.state.recent_runs(limit=RECENT_RUNS)
    changes: list[tuple[RunRecord, ChangeRecord]] = []
    with_changes = [r for r in runs if r.changes_total > 0][:CHANGE_RUNS]
    for brief in with_changes:
        full = await view.state.get_run(brief.run_id)
        if full is None:
            continue
        for change in full.changes[: RECENT_CHANGES - len(changes)]:
            changes.append((full, change))
        if len(changes) >= RECENT_CHANGES:
            break
    seen_within = max(3 * view.config.daemon.lease_ttl, 90.0)
    replicas = await view.state.replicas(seen_within=seen_within)
    return StatusData(
        replica=view.replica, started_at=view.started_at, backend=view.state.backend,
        jobs=view.jobs(), health=report, runs=runs, changes=changes, leases=leases,
        replicas=replicas,
    )
