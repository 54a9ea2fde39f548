"""What the runtime knows about an integration, and what an integration may ask of it.

The runtime schedules, records and reports; an integration only turns a
``RunContext`` into a ``RunResult``. Integrations never read config files,
create sessions or talk to the scheduler.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

import aiohttp
from loguru import logger

from stocksyncd.clock import Clock
from stocksyncd.http.ratelimit import RateLimiter
from stocksyncd.http.transport import RequestObserver

if TYPE_CHECKING:
    from loguru import Logger

    from stocksyncd.state.api import StateStore

RunStatus = Literal["ok", "aborted", "failed"]

# Where one audited write stands (SPEC §2.6, write-ahead): stored as ``planned``
# before its request goes out, then ``sent`` once the request is answered,
# ``confirmed`` when a later read shows the new value upstream, ``refused`` when
# the upstream said no, ``unconfirmed`` when no read showed it within the bound.
# A dry run's changes stay ``planned`` forever.
ChangeStatus = Literal["planned", "sent", "confirmed", "refused", "unconfirmed"]


@dataclass
class RunCounts:
    """The numbers every run reports (SPEC §2.6)."""

    source: int = 0
    target: int = 0
    matched: int = 0
    changed: int = 0
    written: int = 0
    skipped: int = 0  # could not be written: bad values, conflicts
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    # Keys found on one side only (``not_in_target``, ``not_in_source``): nothing
    # is wrong with them, they are simply not linked, so they are not "skipped".
    unmatched: int = 0
    unmatched_by_reason: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str, n: int = 1) -> None:
        """Count ``n`` items skipped for ``reason``."""
        if n <= 0:
            return
        self.skipped += n
        self.skipped_by_reason[reason] = self.skipped_by_reason.get(reason, 0) + n

    def unmatch(self, reason: str, n: int = 1) -> None:
        """Count ``n`` keys found on one side only, for ``reason``."""
        if n <= 0:
            return
        self.unmatched += n
        self.unmatched_by_reason[reason] = self.unmatched_by_reason.get(reason, 0) + n


@dataclass
class Change:
    """One audited write: which object, by which key, which field, old -> new."""

    ref: str  # the written object's id upstream (variant id, supplier part pk)
    key: str  # the match key (sku, barcode, part name)
    field: str  # e.g. "quantity", "quantity_at_warehouse0", "note", "price_breaks"
    old: str | None
    new: str | None
    applied: bool = True  # False when planned only (dry run) or refused upstream
    status: ChangeStatus = "confirmed"
    # Set by the write-ahead audit when it stores the change, so later status
    # updates find the same row.
    audit_id: int | None = None


@dataclass
class RunResult:
    """The outcome of one run of one integration."""

    integration: str
    run_id: str = ""
    status: RunStatus = "ok"
    dry_run: bool = False
    counts: RunCounts = field(default_factory=RunCounts)
    conflicts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    message: str = ""
    started_at: datetime | None = None
    duration_s: float = 0.0
    requests: dict[str, int] = field(default_factory=dict)  # HTTP requests by API
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``sync --json`` shape (SPEC §3.1), plus changes and details."""
        return {
            "integration": self.integration,
            "run_id": self.run_id,
            "status": self.status,
            "dry_run": self.dry_run,
            "counts": asdict(self.counts),
            "conflicts": list(self.conflicts),
            "errors": list(self.errors),
            "message": self.message,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "duration_s": round(self.duration_s, 3),
            "requests": dict(self.requests),
            "changes": [asdict(c) for c in self.changes],
            "details": self.details,
        }


# Seconds from the fence check to a write request on the wire: what ``may_take``
# asks of the lease. The request is checked again right before it goes out when
# it waits for rate budget (the runtime's fenced limiter), so this is the time
# to the wire, not to the answer (which may take the whole timeout).
TIME_TO_WIRE = 1.0


class WriteAhead(Protocol):
    """The write-ahead audit and the write fence of one run.

    Every upstream write follows the same three steps::

        await ctx.audit.planned(changes, may_take=seconds)   # fence + store
        ... send the request ...
        await ctx.audit.settle(changes, "sent")               # or "refused"

    and later ``settle(..., "confirmed")`` (or ``"unconfirmed"``) when a read
    shows (or never shows) the new values. A run cut off at any point, SIGKILL
    included, so leaves every change it may have sent in the audit.
    """

    async def planned(self, changes: Sequence[Change], *, may_take: float) -> None:
        """Store ``changes`` as ``planned`` before their request goes out.

        Raises ``WriteFenced`` instead, storing nothing, when this replica may not
        write for the next ``may_take`` seconds (its lease would not outlast the
        request) or the store cannot record.
        """
        ...

    async def settle(self, changes: Sequence[Change], status: ChangeStatus,
                     reason: str = "") -> None:
        """Move stored ``changes`` to ``status`` (``reason``: why refused/unconfirmed)."""
        ...


@dataclass
class MemoryWriteAhead:
    """A write-ahead audit kept in the run's memory, with no fence.

    For code that builds a ``RunContext`` by hand (tests, tools). The runtime
    always gives a run the durable, fenced one of the state store.
    """

    changes: list[Change] = field(default_factory=list)
    reasons: dict[int, str] = field(default_factory=dict)  # audit_id -> reason

    async def planned(self, changes: Sequence[Change], *, may_take: float) -> None:
        """Keep ``changes`` as planned."""
        for change in changes:
            change.status = "planned"
            change.audit_id = len(self.changes)
            self.changes.append(change)

    async def settle(self, changes: Sequence[Change], status: ChangeStatus,
                     reason: str = "") -> None:
        """Move ``changes`` to ``status``."""
        for change in changes:
            change.status = status
            if reason and change.audit_id is not None:
                self.reasons[change.audit_id] = reason


@dataclass
class RunContext:
    """What one run gets from the runtime."""

    run_id: str
    dry_run: bool
    state: StateStore
    clock: Clock
    trigger: str = "schedule"  # schedule | manual | cli
    log: Logger = field(default_factory=lambda: logger)
    audit: WriteAhead = field(default_factory=MemoryWriteAhead)


class Integration(Protocol):
    """A configured job the runtime can run."""

    name: str
    type: str

    async def run(self, ctx: RunContext) -> RunResult:
        """Do one run. Raise only for failures the runtime should record as ``failed``."""
        ...

    async def close(self) -> None:
        """Release whatever the integration holds (not the sessions: the runtime owns those)."""
        ...


class ReviewActions(Protocol):
    """Optional: an integration whose review entries offer actions (mouser-inventree)."""

    async def create_supplier_part(self, entry_id: int, hit: int) -> str:
        """Create the upstream object from hit number ``hit`` of entry ``entry_id``.

        Returns a short human message ("created supplier part 42 (SKU ...)");
        raises ``StockSyncError`` with a clear message when it cannot.
        """
        ...


class Resources(Protocol):
    """What the runtime lends to integration factories."""

    clock: Clock
    observer: RequestObserver | None
    # The state store, for actions that happen outside a run (review page buttons).
    state: StateStore | None

    def session(self, upstream: str, *, limit_per_host: int = 10,
                proxy: str | None = None) -> aiohttp.ClientSession:
        """The one shared session for ``upstream`` (created on first use, owned by the runtime)."""
        ...

    def limiter(self, key: str, factory: Callable[[], RateLimiter]) -> RateLimiter:
        """A rate limiter shared by everyone asking for ``key`` (e.g. ``insales:<shop>``)."""
        ...
