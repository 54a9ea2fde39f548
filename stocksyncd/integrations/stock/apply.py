"""Sending a plan to InSales: batches of at most 100, a few at a time, each audited first.

Every batch is stored in the write-ahead audit (``planned``) before its
request goes out, and settled after (``sent``: InSales took it into its
queue; ``refused``). When the audit refuses (``WriteFenced``) no further
batch goes out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from stocksyncd.clients.insales import MAX_GROUP_UPDATE, InSalesClient, VariantWrite
from stocksyncd.errors import ApiError, FatalApiError, WriteFenced
from stocksyncd.integrations.base import TIME_TO_WIRE, Change, WriteAhead
from stocksyncd.integrations.stock.keys import show_quantity
from stocksyncd.integrations.stock.plan import PlannedWrite


@dataclass
class ApplyOutcome:
    """Which planned writes InSales took, and why the others were not."""

    sent: list[tuple[PlannedWrite, Change]] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)  # variant id -> InSales' reason
    failed: dict[int, str] = field(default_factory=dict)  # variant id -> why its batch failed
    changes: list[Change] = field(default_factory=list)  # every change audited, in plan order
    errors: list[str] = field(default_factory=list)
    batches: int = 0
    fenced: WriteFenced | None = None  # the audit refused: nothing more was sent


def batches(
    writes: Sequence[PlannedWrite], size: int = MAX_GROUP_UPDATE
) -> list[list[PlannedWrite]]:
    """Consecutive chunks of at most ``size`` writes."""
    return [list(writes[i:i + size]) for i in range(0, len(writes), size)]


def as_change(w: PlannedWrite, field_name: str, applied: bool) -> Change:
    """The audit's view of one planned write."""
    return Change(ref=str(w.variant_id), key=w.key, field=field_name,
                  old=show_quantity(w.old), new=str(w.new), applied=applied, status="planned")


async def apply_writes(
    client: InSalesClient,
    writes: Sequence[PlannedWrite],
    *,
    field_name: str,
    concurrency: int,
    audit: WriteAhead,
) -> ApplyOutcome:
    """Send every batch (``concurrency`` at once; the shop limiter paces them further).

    A batch that still fails after retries fails all its variants; the other
    batches go on, since each write is idempotent and stands on its own.
    """
    outcome = ApplyOutcome()
    chunks = batches(writes)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def send(chunk: list[PlannedWrite]) -> None:
        async with gate:
            if outcome.fenced is not None:
                return
            changes = [as_change(w, field_name, False) for w in chunk]
            try:
                await audit.planned(changes, may_take=TIME_TO_WIRE)
            except WriteFenced as exc:
                outcome.fenced = exc
                return
            outcome.changes += changes
            outcome.batches += 1
            try:
                result = await client.variants_group_update(
                    [VariantWrite(w.variant_id, field_name, w.new) for w in chunk])
            except WriteFenced as exc:
                # Stopped right before the wire (the lease ran short while the
                # request waited for budget): its rows stay "planned".
                outcome.fenced = exc
                return
            except ApiError as exc:
                first, last = chunk[0].variant_id, chunk[-1].variant_id
                outcome.errors.append(
                    f"insales: update of {len(chunk)} variants ({first}..{last}) failed: {exc}")
                for w in chunk:
                    outcome.failed[w.variant_id] = str(exc)
                if isinstance(exc, FatalApiError):
                    await audit.settle(changes, "refused", str(exc))
                # Otherwise (a timeout, a 5xx after retries) the shop may still
                # have taken the request: its rows stay "planned", the honest claim.
                return
        taken, refused = [], []
        for w, change in zip(chunk, changes, strict=True):
            reason = result.failed.get(w.variant_id)
            if reason is None:
                change.applied = True
                taken.append(change)
                outcome.sent.append((w, change))
            else:
                refused.append(change)
                outcome.refused[w.variant_id] = reason
        if taken:
            await audit.settle(taken, "sent")
        for change in refused:
            await audit.settle([change], "refused", outcome.refused[int(change.ref)])

    await asyncio.gather(*(send(chunk) for chunk in chunks))
    order = {w.variant_id: n for n, w in enumerate(writes)}
    outcome.changes.sort(key=lambda c: order[int(c.ref)])
    outcome.sent.sort(key=lambda pair: pair[0].variant_id)
    return outcome
