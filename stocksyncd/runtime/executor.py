"""Run one integration once: record it, bound it, log it, never let it crash the caller.

Used by the scheduler and by ``stocksyncd sync NAME``. The one supervised
catch-all lives here: every ``Exception`` becomes a ``failed`` result;
cancellation (shutdown) is recorded as failed and then re-raised, never
swallowed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from loguru import logger

from stocksyncd.clock import Clock
from stocksyncd.config import IntegrationBase, effective_every
from stocksyncd.i18n import using
from stocksyncd.i18n.formats import fmt_duration
from stocksyncd.integrations.base import Change, Integration, RunContext, RunResult
from stocksyncd.redact import redact
from stocksyncd.runtime.debugdump import dump_run
from stocksyncd.runtime.fence import HeldLease, StoreWriteAhead
from stocksyncd.runtime.heap import collection_paused
from stocksyncd.runtime.resources import IntegrationObserver
from stocksyncd.state.api import StateStore

if TYPE_CHECKING:
    from loguru import Logger

# A run may not outlast two intervals, and is never cut before ten minutes
# (a full MoySklad run takes about 1.5 min). Cron jobs get an hour.
MIN_DEADLINE = 600.0
CRON_DEADLINE = 3600.0


class RunMetrics(Protocol):
    """The part of ``Metrics`` the executor feeds."""

    def run_started(self, name: str) -> None:
        """A run of ``name`` began."""
        ...

    def record_run(self, result: RunResult) -> None:
        """A run finished."""
        ...


def new_run_id() -> str:
    """A unique id that sorts by start time: 12 hex digits of ms, then random."""
    return f"{time.time_ns() // 1_000_000:012x}{uuid.uuid4().hex[:20]}"


def run_deadline(cfg: IntegrationBase, type_: str) -> float:
    """Seconds one run may take before it is stopped and recorded as failed."""
    every = effective_every(cfg, type_)
    if every is None:
        return CRON_DEADLINE
    return max(MIN_DEADLINE, 2 * every)


def audited_changes(audited: list[Change], reported: list[Change]) -> list[Change]:
    """The run's changes: every one stored ahead, then those the result adds.

    The audit's copies are the truth of what may have gone out; the result's
    own records of the same writes (built after the fact) would repeat them.
    """
    if not audited:
        return reported
    seen = {(c.ref, c.field) for c in audited}
    return [*audited, *(c for c in reported if c.audit_id is None
                        and (c.ref, c.field) not in seen)]


def summary_line(result: RunResult) -> str:
    """One line for the log: integration, status, counts, duration."""
    c = result.counts
    with using("en"):  # logs stay English, whoever pressed "Run now"
        duration = fmt_duration(result.duration_s)
    text = (
        f"{result.integration}: {result.status}{' (dry run)' if result.dry_run else ''} "
        f"source={c.source} target={c.target} matched={c.matched} changed={c.changed} "
        f"written={c.written} skipped={c.skipped} conflicts={len(result.conflicts)} "
        f"errors={len(result.errors)} in {duration}"
    )
    if result.message:
        text += f": {result.message}"
        # The message says what happened to the run; the first error says why.
        if result.errors and result.errors[0] not in result.message:
            text += f" ({result.errors[0]})"
    elif result.errors:
        text += f": {result.errors[0]}"
    return text


def failure_text(exc: BaseException) -> str:
    """What a failed run reports: the failures themselves, never "unhandled errors in a
    TaskGroup" (an ``ExceptionGroup`` is opened up to the errors inside it)."""
    leaves: list[BaseException] = []

    def walk(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                walk(inner)
        elif not isinstance(error, asyncio.CancelledError):
            leaves.append(error)

    walk(exc)
    if not leaves:
        leaves = [exc]
    first = leaves[0]
    text = f"{type(first).__name__}: {first}" if str(first) else type(first).__name__
    if len(leaves) > 1:
        text += f" (and {len(leaves) - 1} more failure{'s' if len(leaves) > 2 else ''})"
    return text


class Executor:
    """Runs integrations once, with everything a run owes the operator."""

    def __init__(
        self,
        *,
        state: StateStore,
        clock: Clock,
        replica: str,
        metrics: RunMetrics | None = None,
        debug_dir: Path | None = None,
        after_run: Callable[[RunResult], Awaitable[None]] | None = None,
    ) -> None:
        self.state = state
        self.clock = clock
        self.replica = replica
        self.metrics = metrics
        self.debug_dir = debug_dir
        # Told about every recorded run (notifications); must not raise.
        self.after_run = after_run
        # Conflicts persist until someone fixes the data: warn when they change,
        # not on every run of a one-minute job.
        self._conflicts_seen: dict[str, frozenset[str]] = {}
        # Runs that ended while the store could not record them, by run id, with
        # when they ended: recorded by ``record_unrecorded`` once it is back.
        self.unrecorded: dict[str, tuple[RunResult, datetime]] = {}

    async def run(
        self,
        integration: Integration,
        *,
        trigger: str,
        dry_run: bool,
        deadline: float,
        observer: IntegrationObserver | None = None,
        run_id: str | None = None,
        lease: HeldLease | None = None,
    ) -> RunResult:
        """Run ``integration`` once and return its recorded result.

        Its writes go through a write-ahead audit on the store, fenced by
        ``lease`` when replicas share the store.

        Raises only ``CancelledError`` (after recording the run as failed) and
        errors of the state store when even ``start_run`` fails.
        """
        name = integration.name
        run_id = run_id or new_run_id()
        started_at = self.clock.now()
        t0 = self.clock.monotonic()
        run_log = logger.bind(integration=name, run_id=run_id)
        if observer is not None:
            observer.begin(keep_bodies=self.debug_dir is not None)
        await self.state.start_run(
            run_id=run_id, integration=name, trigger=trigger, dry_run=dry_run,
            replica=self.replica, started_at=started_at,
        )
        if self.metrics is not None:
            self.metrics.run_started(name)
        run_log.debug("run started ({}, {})", trigger, "dry run" if dry_run else "live")
        audit = StoreWriteAhead(self.state, run_id, lease)
        ctx = RunContext(
            run_id=run_id, dry_run=dry_run, state=self.state, clock=self.clock,
            trigger=trigger, log=run_log, audit=audit,
        )
        cancelled: asyncio.CancelledError | None = None
        timer = asyncio.timeout(deadline)
        try:
            async with timer:
                with collection_paused():
                    result = await integration.run(ctx)
        except asyncio.CancelledError as exc:
            reason = str(exc.args[0]) if exc.args and exc.args[0] else "cancelled"
            result = RunResult(integration=name, status="failed", errors=[reason],
                               message=reason)
            cancelled = exc
        except Exception as exc:  # noqa: BLE001 - the one supervised boundary of a run
            if isinstance(exc, TimeoutError) and timer.expired():
                text = f"run exceeded its deadline of {deadline:.0f}s"
            else:
                text = failure_text(exc)
                run_log.opt(exception=exc).debug("run failed with a traceback")
            result = RunResult(integration=name, status="failed", errors=[text], message=text)

        result.changes = audited_changes(audit.changes, result.changes)
        if audit.changes and result.status == "failed" and not result.counts.written:
            # A cut-off run's result is empty: what it wrote is what the audit holds.
            result.counts.written = sum(c.applied for c in audit.changes)
        unsettled = sum(c.status == "planned" for c in audit.changes)
        if unsettled:
            result.details["unsettled_changes"] = unsettled
        result.integration = name
        result.run_id = run_id
        result.dry_run = dry_run
        result.started_at = started_at
        result.duration_s = max(0.0, self.clock.monotonic() - t0)
        result.errors = [redact(e) for e in result.errors]
        result.message = redact(result.message)
        capture = observer.end() if observer is not None else None
        if capture is not None and not result.requests:
            result.requests = dict(capture.requests)

        # Recorded however the run ended: a cancellation now (the lease lost just as
        # the run returned, a second stop signal) waits for the record, then counts.
        record = asyncio.ensure_future(self._record(result, self.clock.now(), run_log))
        try:
            await asyncio.shield(record)
        except asyncio.CancelledError as exc:
            await record
            cancelled = cancelled or exc
        if self.metrics is not None:
            self.metrics.record_run(result)
        # A run cut off by a shutdown is not news for the owner (and its task may be
        # cancelled again while telling).
        if self.after_run is not None and cancelled is None:
            await self.after_run(result)
        if capture is not None and self.debug_dir is not None:
            try:
                await dump_run(self.debug_dir, name, run_id, capture.records,
                               dropped=capture.dropped)
            except OSError as exc:
                run_log.warning("could not write the debug dump to {}: {}", self.debug_dir, exc)

        line = summary_line(result)
        conflicts = frozenset(result.conflicts)
        new_conflicts = conflicts - self._conflicts_seen.get(name, frozenset())
        if result.status != "failed":
            self._conflicts_seen[name] = conflicts
        if result.status == "failed":
            run_log.error(line)
        elif result.status == "aborted" or new_conflicts:
            run_log.warning(line)
            if new_conflicts:
                shown = ", ".join(sorted(new_conflicts)[:10])
                more = f" and {len(new_conflicts) - 10} more" if len(new_conflicts) > 10 else ""
                run_log.warning("new conflicts, not written: {}{}", shown, more)
        else:
            run_log.info(line)
        if cancelled is not None:
            raise cancelled
        return result

    async def _record(self, result: RunResult, finished_at: datetime, run_log: Logger) -> None:
        try:
            await self.state.finish_run(result, finished_at=finished_at)
        except Exception as exc:  # noqa: BLE001 - a store outage must not kill the caller
            run_log.error("could not record the end of the run: {}; retrying once the state "
                          "store answers", exc)
            self.unrecorded[result.run_id] = (result, finished_at)

    async def record_unrecorded(self) -> int:
        """Record the ends of runs the store missed; how many are still waiting.

        The run stays ``running`` in the store until then; its changes are
        already there (stored ahead), so only the outcome is written.
        """
        for run_id, (result, finished_at) in list(self.unrecorded.items()):
            try:
                await self.state.finish_run(result, finished_at=finished_at)
            except Exception as exc:  # noqa: BLE001 - still out: try again later
                logger.bind(integration=result.integration, run_id=run_id).debug(
                    "the end of the run is still not recorded: {}", exc)
                break
            del self.unrecorded[run_id]
            logger.bind(integration=result.integration, run_id=run_id).warning(
                "recorded the end of the run now that the state store answers: {}",
                result.status)
        return len(self.unrecorded)
