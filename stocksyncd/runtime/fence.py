"""The durable write-ahead audit and the write fence every run gets from the runtime.

Two checks stand between a run and an upstream write (SPEC §2.6):

* ``planned`` stores the batch's changes before the request goes out, in the
  same transaction that checks the lease's stored expiry (PostgreSQL); our own
  view of the lease, kept on the monotonic clock by the renewer, is checked
  first and renewed on the spot when it would not cover the batch;
* at the wire: the limiter every request passes through checks our view of the
  lease again right before the bytes leave, after any wait for rate budget. A
  process frozen (SIGSTOP, swapped out) after ``planned`` therefore finds its
  lease gone when it wakes up, and sends nothing.

What cannot be fenced is a pause between that last check and the socket write
(a few microseconds of CPU): only the upstream could refuse a stale writer, and
InSales has no fencing token.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field

from stocksyncd.clock import Clock
from stocksyncd.errors import WriteFenced
from stocksyncd.http.ratelimit import RateLimiter
from stocksyncd.integrations.base import Change, ChangeStatus
from stocksyncd.state.api import LeaseFence, StateStore

# Seconds of lease kept in hand beyond what a write may take: the network's
# delivery of the request, and the distance between two replicas' clocks.
MARGIN = 0.5
# What a request needs left when its bytes go out (it is applied on arrival).
WIRE_MARGIN = 1.0


@dataclass
class HeldLease:
    """This replica's view of the lease of one run, on the monotonic clock.

    ``valid_until`` is when the lease surely ends: the start of the last
    successful renewal plus the lease's TTL (the store computed the stored
    expiry after that start). ``lost`` says why writing must stop for good.
    """

    name: str
    holder: str
    ttl: float
    clock: Clock
    renew: Callable[[], Awaitable[bool]]
    valid_until: float = 0.0
    lost: str | None = None

    def left(self) -> float:
        """Seconds the lease surely lasts from now."""
        return self.valid_until - self.clock.monotonic()

    def kept(self, attempt_started: float) -> None:
        """A renewal that began at ``attempt_started`` (monotonic) succeeded."""
        self.valid_until = max(self.valid_until, attempt_started + self.ttl)

    def lose(self, why: str) -> None:
        """Stop every later write of the run."""
        if self.lost is None:
            self.lost = why

    async def ensure(self, seconds: float) -> None:
        """Make sure the lease lasts ``seconds`` more, renewing it now if needed."""
        if self.lost is not None:
            raise WriteFenced(f"lease {self.name} lost: {self.lost}; not writing")
        if self.left() >= seconds:
            return
        if seconds > self.ttl:
            raise WriteFenced(f"a write that may take {seconds:.1f}s cannot be fenced by lease "
                              f"{self.name} of {self.ttl:g}s (daemon.lease_ttl): not writing")
        started = self.clock.monotonic()
        try:
            renewed = await self.renew()
        except Exception as exc:
            raise WriteFenced(f"lease {self.name} could not be renewed before a write "
                              f"({str(exc) or type(exc).__name__}): not writing") from exc
        if not renewed:
            self.lose("another replica took it over")
            raise WriteFenced(f"lease {self.name} was taken over by another replica: not writing")
        self.kept(started)
        if self.left() < seconds:
            raise WriteFenced(f"lease {self.name} lasts {self.left():.1f}s, less than the "
                              f"{seconds:.1f}s the write may take: not writing")

    def check_wire(self) -> None:
        """Right before a request goes out: raise unless the lease surely outlasts its arrival."""
        if self.lost is not None:
            raise WriteFenced(f"lease {self.name} lost: {self.lost}; request not sent")
        if self.left() < WIRE_MARGIN:
            raise WriteFenced(f"lease {self.name} lasts {max(self.left(), 0.0):.1f}s, too little "
                              "to send a write: request not sent")


# The lease whose validity the current task's requests need (set by ``planned``).
_WIRE: contextvars.ContextVar[HeldLease | None] = contextvars.ContextVar(
    "stocksyncd_wire_fence", default=None)


@dataclass
class StoreWriteAhead:
    """``WriteAhead`` on the state store, fenced by the run's lease when there is one."""

    state: StateStore
    run_id: str
    lease: HeldLease | None = None
    changes: list[Change] = field(default_factory=list)  # everything stored, in order

    async def planned(self, changes: Sequence[Change], *, may_take: float) -> None:
        """Check the fence and store ``changes`` as ``planned``; ``WriteFenced`` otherwise."""
        if not changes:
            return
        fence: LeaseFence | None = None
        need = max(0.0, may_take) + MARGIN
        if self.lease is not None:
            await self.lease.ensure(need)
            fence = LeaseFence(self.lease.name, self.lease.holder)
        try:
            await self.state.plan_changes(self.run_id, changes, fence=fence, valid_for=need)
        except WriteFenced:
            raise
        except Exception as exc:
            raise WriteFenced(f"the state store could not record the batch before sending "
                              f"it ({str(exc) or type(exc).__name__}): not writing") from exc
        for change in changes:
            change.status, change.applied = "planned", False
        self.changes.extend(changes)
        if self.lease is not None:
            _WIRE.set(self.lease)
            # A pause while the store answered may have eaten the lease.
            if self.lease.left() < may_take:
                await self._not_sent(changes, "the lease ran out while the batch was recorded")
                raise WriteFenced(f"lease {self.lease.name} ran out while the batch was "
                                  "recorded: not writing")

    async def settle(self, changes: Sequence[Change], status: ChangeStatus,
                     reason: str = "") -> None:
        """Move ``changes`` to ``status``; the in-memory copy moves even if the store fails.

        A failure here is raised: the run stops writing, since it can no longer
        record what it did.
        """
        for change in changes:
            change.status = status
            change.applied = status in ("sent", "confirmed", "unconfirmed")
        try:
            await self.state.settle_changes(changes, status, reason)
        except Exception as exc:
            raise WriteFenced(f"the state store could not record the answer to a write "
                              f"({str(exc) or type(exc).__name__}): not writing") from exc

    async def _not_sent(self, changes: Sequence[Change], why: str) -> None:
        # On failure they stay "planned" (may have been sent): the safe claim.
        with contextlib.suppress(WriteFenced):
            await self.settle(changes, "refused", f"not sent: {why}")


class FencedLimiter:
    """A limiter that checks the current run's lease after the wait, before the request."""

    def __init__(self, inner: RateLimiter) -> None:
        self.inner = inner

    def slot(self, weight: float = 1.0) -> AbstractAsyncContextManager[None]:
        """The inner slot, then the wire check of the lease (if the task writes under one)."""
        return self._slot(weight)

    @asynccontextmanager
    async def _slot(self, weight: float) -> AsyncIterator[None]:
        async with self.inner.slot(weight):
            lease = _WIRE.get()
            if lease is not None:
                lease.check_wire()
            yield

    def observe(self, headers: Mapping[str, str]) -> None:
        """Pass on to the inner limiter."""
        self.inner.observe(headers)

    def block_for(self, seconds: float) -> None:
        """Pass on to the inner limiter."""
        self.inner.block_for(seconds)

    def __getattr__(self, name: str) -> object:
        # Metrics and tests read the inner limiter's counters (``waited``, ``used``).
        return getattr(self.inner, name)

