"""Sending a plan to InSales: batches of at most 100, a few at a time, failures per variant."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from stocksyncd.clients.insales import MAX_GROUP_UPDATE, InSalesClient, VariantWrite
from stocksyncd.errors import ApiError, WriteFenced
from stocksyncd.integrations.base import Change, MemoryWriteAhead, WriteAhead
from stocksyncd.integrations.stock.index import latest
from stocksyncd.integrations.stock.keys import show_quantity
from stocksyncd.integrations.stock.plan import PlannedWrite

# Seconds one batch may take to reach InSales, for the write fence: the lease must
# outlast it. The request is checked again right before it goes out.
BATCH_MAY_TAKE = 1.0


@dataclass
class ApplyOutcome:
    """Which planned writes InSales accepted, and why the others were not."""

    written: list[PlannedWrite] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)  # variant id -> reason
    errors: list[str] = field(default_factory=list)
    batches: int = 0
    server_time: str | None = None  # the latest Date among the answers to accepted batches


def batches(
    writes: Sequence[PlannedWrite], size: int = MAX_GROUP_UPDATE
) -> list[list[PlannedWrite]]:
    """Consecutive chunks of at most ``size`` writes."""
    return [list(writes[i:i + size]) for i in range(0, len(writes), size)]


async def apply_writes(
    client: InSalesClient,
    writes: Sequence[PlannedWrite],
    *,
    field_name: str,
    concurrency: int,
    audit: WriteAhead | None = None,
) -> ApplyOutcome:
    """Send every batch (``concurrency`` at once; the shop limiter paces them further).

    Each batch is stored in ``audit`` as planned before it goes out and settled
    with the answer. A batch that still fails after retries fails all its
    variants; the other batches go on, since each write is idempotent and stands
    on its own. ``WriteFenced`` stops every later batch and is raised at the end.
    """
    outcome = ApplyOutcome()
    chunks = batches(writes)
    outcome.batches = len(chunks)
    gate = asyncio.Semaphore(max(1, concurrency))
    ahead = audit if audit is not None else MemoryWriteAhead()
    fenced: list[WriteFenced] = []

    async def send(chunk: list[PlannedWrite]) -> None:
        async with gate:
            if fenced:
                return
            changes = {w.variant_id: Change(ref=str(w.variant_id), key=w.key, field=field_name,
                                            old=show_quantity(w.old), new=str(w.new),
                                            applied=False, status="planned")
                       for w in chunk}
            try:
                await ahead.planned(list(changes.values()), may_take=BATCH_MAY_TAKE)
                result = await client.variants_group_update(
                    [VariantWrite(w.variant_id, field_name, w.new) for w in chunk]
                )
            except WriteFenced as exc:
                # Planned rows of a request the fence stopped stay "planned": the
                # conservative claim, since the fence may have hit mid-retry.
                fenced.append(exc)
                return
            except ApiError as exc:
                first, last = chunk[0].variant_id, chunk[-1].variant_id
                outcome.errors.append(
                    f"insales: update of {len(chunk)} variants ({first}..{last}) failed: {exc}"
                )
                for w in chunk:
                    outcome.failed[w.variant_id] = str(exc)
                # A failed request may still have been applied (a timeout after
                # the shop took it): its rows stay "planned".
                return
        if result.server_time:
            outcome.server_time = latest([result.server_time], outcome.server_time)
        accepted = set(result.ok)
        refused: dict[str, list[Change]] = {}
        for w in chunk:
            if w.variant_id in accepted:
                outcome.written.append(w)
            else:
                reason = result.failed.get(w.variant_id, "refused")
                outcome.failed[w.variant_id] = reason
                outcome.errors.append(
                    f"insales: variant {w.variant_id} ({w.key}) refused: {reason}"
                )
                refused.setdefault(reason, []).append(changes[w.variant_id])
        try:
            sent = [changes[v] for v in accepted if v in changes]
            if sent:
                await ahead.settle(sent, "sent")
            for reason, group in refused.items():
                await ahead.settle(group, "refused", reason)
        except WriteFenced as exc:
            fenced.append(exc)

    await asyncio.gather(*(send(chunk) for chunk in chunks))
    outcome.written.sort(key=lambda w: w.variant_id)
    if fenced:
        raise fenced[0]
    return outcome
