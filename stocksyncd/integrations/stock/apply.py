"""Sending a plan to InSales: batches of at most 100, a few at a time, failures per variant."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from stocksyncd.clients.insales import MAX_GROUP_UPDATE, InSalesClient, VariantWrite
from stocksyncd.errors import ApiError
from stocksyncd.integrations.stock.index import latest
from stocksyncd.integrations.stock.plan import PlannedWrite


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
) -> ApplyOutcome:
    """Send every batch (``concurrency`` at once; the shop limiter paces them further).

    A batch that still fails after retries fails all its variants; the other
    batches go on, since each write is idempotent and stands on its own.
    """
    outcome = ApplyOutcome()
    chunks = batches(writes)
    outcome.batches = len(chunks)
    gate = asyncio.Semaphore(max(1, concurrency))

    async def send(chunk: list[PlannedWrite]) -> None:
        async with gate:
            try:
                result = await client.variants_group_update(
                    [VariantWrite(w.variant_id, field_name, w.new) for w in chunk]
                )
            except ApiError as exc:
                first, last = chunk[0].variant_id, chunk[-1].variant_id
                outcome.errors.append(
                    f"insales: update of {len(chunk)} variants ({first}..{last}) failed: {exc}"
                )
                for w in chunk:
                    outcome.failed[w.variant_id] = str(exc)
                return
        if result.server_time:
            outcome.server_time = latest([result.server_time], outcome.server_time)
        accepted = set(result.ok)
        for w in chunk:
            if w.variant_id in accepted:
                outcome.written.append(w)
            else:
                reason = result.failed.get(w.variant_id, "refused")
                outcome.failed[w.variant_id] = reason
                outcome.errors.append(
                    f"insales: variant {w.variant_id} ({w.key}) refused: {reason}"
                )

    await asyncio.gather(*(send(chunk) for chunk in chunks))
    outcome.written.sort(key=lambda w: w.variant_id)
    return outcome
