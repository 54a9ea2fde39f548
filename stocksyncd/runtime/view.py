"""What the web layer may see of the daemon, and nothing more.

The web app (``stocksyncd.runtime.web``) is built from a ``DaemonView`` so that
it can be tested against a stand-in and never reaches into the scheduler.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from stocksyncd.config import Config
    from stocksyncd.integrations.base import Integration
    from stocksyncd.runtime.metrics import Metrics
    from stocksyncd.state.api import StateStore


@dataclass
class JobInfo:
    """One configured integration as the scheduler sees it."""

    name: str
    type: str
    enabled: bool
    dry_run: bool
    every_s: float | None  # None when scheduled by cron
    cron: str | None
    next_run: datetime | None
    running: bool  # a run is in flight on this replica
    lease_holder: str | None = None  # which replica holds the lease (PostgreSQL)
    extra: dict[str, Any] = field(default_factory=dict)


class DaemonView(Protocol):
    """The daemon as the web app sees it."""

    replica: str
    started_at: datetime

    @property
    def config(self) -> Config:
        """The configuration in force."""
        ...

    @property
    def state(self) -> StateStore:
        """The state store."""
        ...

    @property
    def metrics(self) -> Metrics:
        """The Prometheus metrics."""
        ...

    def jobs(self) -> list[JobInfo]:
        """Every configured integration, enabled or not, in config order."""
        ...

    def integration(self, name: str) -> Integration | None:
        """The live integration object (for review actions), or None."""
        ...

    async def trigger(self, name: str) -> str:
        """Start a run of ``name`` now (in the background); returns the run id.

        Raises ``KeyError`` for an unknown or disabled integration.
        """
        ...
