"""Prometheus metrics: one registry per ``Metrics`` so tests and reloads stay isolated.

Labels are integration names, API names, statuses and skip reasons only;
never SKUs or barcodes, which would explode the series count.
"""

from __future__ import annotations

import contextlib
import platform
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from stocksyncd import __version__
from stocksyncd.http.transport import ExchangeRecord
from stocksyncd.integrations.base import RunResult

RUN_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
HTTP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """Every ``stocksyncd_*`` metric; also a ``RequestObserver`` for HTTP exchanges."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.runs = Counter("stocksyncd_runs", "Finished runs by integration and status",
                            ["integration", "status"], registry=r)
        self.run_duration = Histogram("stocksyncd_run_duration_seconds", "Run duration",
                                      ["integration"], buckets=RUN_BUCKETS, registry=r)
        self.written = Counter("stocksyncd_variants_written", "Objects written upstream",
                               ["integration"], registry=r)
        self.skipped = Counter("stocksyncd_items_skipped", "Items skipped, by reason",
                               ["integration", "reason"], registry=r)
        self.unconfirmed = Counter(
            "stocksyncd_writes_unconfirmed",
            "Writes the upstream took but never showed in a read, even after one rewrite",
            ["integration"], registry=r)
        self.unmatched = Gauge("stocksyncd_keys_unmatched_last_run",
                               "Keys found on one side only in the last run, by reason",
                               ["integration", "reason"], registry=r)
        self.conflicts = Gauge("stocksyncd_conflicts_last_run", "Conflicting keys in the last run",
                               ["integration"], registry=r)
        self.http_requests = Counter("stocksyncd_http_requests",
                                     "HTTP requests by API and status (error: no response)",
                                     ["api", "status"], registry=r)
        self.http_duration = Histogram("stocksyncd_http_request_duration_seconds",
                                       "HTTP request duration", ["api"], buckets=HTTP_BUCKETS,
                                       registry=r)
        self.last_success = Gauge("stocksyncd_last_success_timestamp_seconds",
                                  "When the integration last finished with status ok",
                                  ["integration"], registry=r)
        self.last_run = Gauge("stocksyncd_last_run_timestamp_seconds",
                              "When the integration last finished a run", ["integration"],
                              registry=r)
        self.in_progress = Gauge("stocksyncd_run_in_progress", "1 while a run is in flight",
                                 ["integration"], registry=r)
        self.quota_left = Gauge("stocksyncd_mouser_quota_left", "Mouser calls left today",
                                ["integration"], registry=r)
        self.up = Gauge("stocksyncd_integration_up", "1 when configured and enabled, else 0",
                        ["integration"], registry=r)
        self.build = Gauge("stocksyncd_build_info", "Version of the running daemon",
                           ["version", "python"], registry=r)
        self.build.labels(__version__, platform.python_version()).set(1)

    def observe(self, record: ExchangeRecord) -> None:
        """Count one HTTP attempt (``RequestObserver``)."""
        status = str(record.status) if record.status is not None else "error"
        self.http_requests.labels(record.api, status).inc()
        self.http_duration.labels(record.api).observe(max(0.0, record.duration_s))

    def run_started(self, integration: str) -> None:
        """Mark a run of ``integration`` as in flight."""
        self.in_progress.labels(integration).set(1)

    def record_run(self, result: RunResult) -> None:
        """Account for a finished run."""
        name = result.integration
        self.runs.labels(name, result.status).inc()
        self.run_duration.labels(name).observe(max(0.0, result.duration_s))
        if result.counts.written:
            self.written.labels(name).inc(result.counts.written)
        else:
            self.written.labels(name)  # so the series exists from the first run
        for reason, n in result.counts.skipped_by_reason.items():
            if n > 0:
                self.skipped.labels(name, reason).inc(n)
        unconfirmed = result.counts.skipped_by_reason.get("unconfirmed", 0)
        if unconfirmed > 0:
            self.unconfirmed.labels(name).inc(unconfirmed)
        else:
            self.unconfirmed.labels(name)  # so the series exists from the first run
        self.conflicts.labels(name).set(len(result.conflicts))
        if result.status != "failed":  # a failed run may not have seen both sides
            for reason, n in result.counts.unmatched_by_reason.items():
                self.unmatched.labels(name, reason).set(n)
        quota_left = result.details.get("mouser_quota_left")
        if isinstance(quota_left, int):
            self.set_quota_left(name, quota_left)
        finished = (result.started_at.timestamp() + result.duration_s
                    if result.started_at is not None else time.time())
        self.last_run.labels(name).set(finished)
        if result.status == "ok":
            self.last_success.labels(name).set(finished)
        self.in_progress.labels(name).set(0)

    def set_quota_left(self, integration: str, value: int) -> None:
        """Mouser calls left in the current daily window."""
        self.quota_left.labels(integration).set(max(0, value))

    def set_up(self, integration: str, enabled: bool) -> None:
        """Whether ``integration`` is configured and enabled."""
        self.up.labels(integration).set(1 if enabled else 0)

    def forget(self, integration: str) -> None:
        """Drop the per-integration gauges of an integration removed by a reload."""
        for gauge in (self.conflicts, self.last_success, self.last_run, self.in_progress,
                      self.quota_left, self.up):
            with contextlib.suppress(KeyError):
                gauge.remove(integration)
        for labels in [k for k in self._unmatched_labels() if k[0] == integration]:
            with contextlib.suppress(KeyError):
                self.unmatched.remove(*labels)

    def _unmatched_labels(self) -> list[tuple[str, str]]:
        return [(s.labels["integration"], s.labels["reason"])
                for m in self.unmatched.collect() for s in m.samples]

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
