"""The health judgement, table-driven."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from stocksyncd.runtime.web.health import (
    JobHealthInput,
    RunBrief,
    cron_interval,
    judge,
    overdue_after,
)

START = datetime(2026, 1, 1, tzinfo=UTC)


def ago(now: datetime, seconds: float) -> datetime:
    return now - timedelta(seconds=seconds)


def runs(now: datetime, *statuses: str, every: float = 60, dry_run: bool = False
         ) -> list[RunBrief]:
    """Runs newest first, one ``every`` seconds apart, the newest ``every`` ago."""
    return [RunBrief(s, dry_run, ago(now, every * (i + 1)), ago(now, every * (i + 1) + 1))
            for i, s in enumerate(statuses)]


@dataclass
class Case:
    name: str
    uptime: float  # seconds since the daemon started
    statuses: tuple[str, ...] = ()
    every: float | None = 60.0
    enabled: bool = True
    dry_run: bool = False
    runs_dry: bool = False
    run_spacing: float = 60.0
    expect: str = "ok"
    healthy: bool = True


CASES = [
    Case("fresh daemon, no runs yet", 30, expect="waiting"),
    Case("recent success", 3600, ("ok",)),
    Case("three failures in a row", 3600, ("failed", "failed", "failed"), expect="failing",
         healthy=False),
    Case("two failures then ok is only shown", 3600, ("failed", "failed", "ok"),
         expect="failing"),
    Case("aborted runs are not failures, but overdue catches them", 3600,
         ("aborted",) * 10, expect="overdue", healthy=False),
    Case("no success within the grace after start", 400, expect="overdue", healthy=False),
    Case("hourly job inside 3 x interval", 3 * 3600 - 10, ("ok",), every=3600,
         run_spacing=3 * 3600 - 20),
    Case("hourly job past 3 x interval", 4 * 3600, ("failed",), every=3600,
         run_spacing=3 * 3600 + 100, expect="overdue", healthy=False),
    Case("disabled integration never unhealthy", 99999, ("failed",) * 5, enabled=False,
         expect="disabled"),
    Case("running run is not counted", 300, ("running", "failed", "failed"),
         expect="failing"),
    Case("dry-run-only integration counts its ok dry runs", 3600, ("ok",), dry_run=True,
         runs_dry=True),
    Case("manual dry runs of a live job are not successes", 3600, ("ok",) * 3,
         runs_dry=True, run_spacing=200, expect="overdue", healthy=False),
    Case("cron without known spacing skips overdue", 99999, every=None, expect="waiting"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_judge(case: Case) -> None:
    now = START + timedelta(seconds=case.uptime)
    job = JobHealthInput(
        name="job", enabled=case.enabled, dry_run=case.dry_run, interval_s=case.every,
        runs=runs(now, *case.statuses, every=case.run_spacing, dry_run=case.runs_dry),
    )
    report = judge([job], now=now, started_at=START, failures_unhealthy=3)
    verdict = report.integrations["job"]
    assert (verdict.status, report.healthy) == (case.expect, case.healthy)
    assert bool(report.reasons) == (not case.healthy)


def test_stored_last_success_older_than_the_window_still_counts() -> None:
    now = START + timedelta(hours=10)
    stored = now - timedelta(seconds=100)
    job = JobHealthInput("job", True, False, 60.0, runs=[], stored_last_success=stored)
    verdict = judge([job], now=now, started_at=START, failures_unhealthy=3).integrations["job"]
    assert verdict.last_success == stored
    assert verdict.status == "waiting"


def test_successes_from_another_replica_keep_it_healthy() -> None:
    # The shared run history holds runs made elsewhere; their success is what counts.
    now = START + timedelta(hours=5)
    job = JobHealthInput("job", True, False, 60.0, runs=runs(now, "ok"), lease_holder="r2")
    report = judge([job], now=now, started_at=START, failures_unhealthy=3)
    assert report.healthy
    assert report.integrations["job"].to_json()["lease_holder"] == "r2"


def test_overdue_threshold() -> None:
    assert overdue_after(60) == 360  # interval + 5 min wins for short intervals
    assert overdue_after(3600) == 3 * 3600


def test_cron_interval_uses_the_widest_spacing() -> None:
    now = datetime(2026, 1, 7, 12, tzinfo=UTC)  # a Wednesday
    assert cron_interval("*/5 * * * *", now) == 300
    assert cron_interval("0 9 * * 1-5", now) == 3 * 86400
    assert cron_interval("not a cron", now) is None
