"""The health judgement, as a pure function of what the state store and scheduler say.

Runs come from the shared run history, so on a multi-replica PostgreSQL setup an
integration whose runs happen on another replica is judged by those runs.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from stocksyncd.i18n import _
from stocksyncd.state.api import FAILED_STATUSES

# Overdue after max(3 x interval, interval + 5 min) without a success.
OVERDUE_FACTOR = 3
OVERDUE_SLACK_S = 300.0
# /healthz answers within this many seconds, whatever the state store does (a
# frozen PostgreSQL accepts connections and never answers).
HEALTH_TIMEOUT = 3.0


@dataclass(frozen=True)
class RunBrief:
    """What health needs to know about one run."""

    status: str  # running | ok | aborted | failed | interrupted
    dry_run: bool
    finished_at: datetime | None
    started_at: datetime


@dataclass(frozen=True)
class JobHealthInput:
    """One integration: its schedule and its recent runs, newest first."""

    name: str
    enabled: bool
    dry_run: bool
    interval_s: float | None  # every, or the cron fire spacing; None: no overdue check
    runs: Sequence[RunBrief] = ()
    stored_last_success: datetime | None = None  # older than ``runs`` may reach
    lease_holder: str | None = None


@dataclass
class JobHealth:
    """The verdict on one integration."""

    status: str  # ok | failing | overdue | disabled | waiting
    last_run: datetime | None
    last_success: datetime | None
    lease_holder: str | None
    unhealthy: bool = False
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        """The /healthz shape."""
        return {
            "status": self.status,
            "last_run": _iso(self.last_run),
            "last_success": _iso(self.last_success),
            "lease_holder": self.lease_holder,
            **({"reason": self.reason} if self.reason else {}),
        }


@dataclass
class HealthReport:
    """The verdict on the daemon."""

    healthy: bool
    integrations: dict[str, JobHealth] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def counts_as_success(run: RunBrief, job_dry_run: bool) -> bool:
    """An ok run counts; a manual dry run of a live integration does not."""
    return run.status == "ok" and (job_dry_run or not run.dry_run)


def overdue_after(interval_s: float) -> float:
    """Seconds without a success after which an integration is overdue."""
    return max(OVERDUE_FACTOR * interval_s, interval_s + OVERDUE_SLACK_S)


def judge_job(job: JobHealthInput, *, now: datetime, started_at: datetime,
              failures_unhealthy: int) -> JobHealth:
    """The status of one integration."""
    finished = [r for r in job.runs if r.status != "running"]
    last_run = next((r.finished_at or r.started_at for r in finished), None)
    last_success = next(
        (r.finished_at or r.started_at for r in finished if counts_as_success(r, job.dry_run)),
        None,
    )
    if last_success is None or (job.stored_last_success is not None
                                and job.stored_last_success > last_success):
        last_success = job.stored_last_success or last_success
    verdict = JobHealth("ok", last_run, last_success, job.lease_holder)
    if not job.enabled:
        verdict.status = "disabled"
        return verdict
    recent = finished[:failures_unhealthy]
    if len(recent) == failures_unhealthy and all(r.status in FAILED_STATUSES for r in recent):
        verdict.status, verdict.unhealthy = "failing", True
        verdict.reason = _("{name}: the last {n} runs failed").format(
            name=job.name, n=failures_unhealthy)
        return verdict
    if job.interval_s is not None:
        since = max(started_at, last_success) if last_success is not None else started_at
        limit = overdue_after(job.interval_s)
        if now - since > timedelta(seconds=limit):
            verdict.status, verdict.unhealthy = "overdue", True
            text = _("{name}: no successful run since {since} (allowed {limit}s)")
            verdict.reason = text.format(name=job.name, since=since.isoformat(),
                                         limit=f"{limit:.0f}")
            return verdict
    if not finished:
        verdict.status = "waiting"
    elif finished[0].status != "ok":
        verdict.status = "failing"  # worth showing, not yet worth a 503
        verdict.reason = _("{name}: last run {status}").format(
            name=job.name, status=finished[0].status)
    return verdict


def judge(jobs: Sequence[JobHealthInput], *, now: datetime, started_at: datetime,
          failures_unhealthy: int, recording_problem: str | None = None) -> HealthReport:
    """The status of the daemon: unhealthy when any enabled integration is.

    Also unhealthy while runs cannot be recorded (``recording_problem``): the
    daemon writes nothing upstream then, whatever the run history says.
    """
    report = HealthReport(healthy=True)
    if recording_problem is not None:
        report.healthy = False
        report.reasons.append(_("runs cannot be recorded, nothing is written: {problem}")
                              .format(problem=recording_problem))
    for job in jobs:
        verdict = judge_job(job, now=now, started_at=started_at,
                            failures_unhealthy=failures_unhealthy)
        report.integrations[job.name] = verdict
        if verdict.unhealthy:
            report.healthy = False
            report.reasons.append(verdict.reason)
    return report


def cron_interval(expr: str, now: datetime, fires: int = 10) -> float | None:
    """The widest spacing between the next ``fires`` fire times of a cron expression.

    The widest, so that a weekday-only schedule is not overdue on a Monday morning.
    """
    from apscheduler.triggers.cron import CronTrigger

    try:
        trigger = CronTrigger.from_crontab(expr, timezone="UTC")
        times: list[datetime] = []
        prev: datetime | None = None
        point = now
        for _ in range(fires):
            nxt = trigger.get_next_fire_time(prev, point)
            if nxt is None:
                break
            times.append(nxt)
            prev = point = nxt
    except (ValueError, TypeError):
        return None
    spacings = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    widest = max(spacings, default=0.0)
    return widest if widest > 0 else None
