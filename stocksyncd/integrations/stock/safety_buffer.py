"""The safety buffer: publish a little less than the source holds, so the shop sells out
before the warehouse does (orders in flight, a miscounted shelf).

``units`` are subtracted from every figure, or ``share`` of it (the figure
left is rounded down); when both are set the larger cut wins. A figure never
goes below 0. The run records every figure it plans to write before and after
the buffer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from stocksyncd.integrations.stock.plan import SourceStock

MAX_RECORDED = 1000  # figures recorded per run, before and after (the counts are complete)


def buffered(value: int, units: int, share: float) -> int:
    """``value`` as published with the buffer; never below 0."""
    if value <= 0:
        return value if value == 0 else 0
    by_share = math.floor(value * (1.0 - share)) if share > 0 else value
    return max(0, min(value - units, by_share))


@dataclass
class BufferReport:
    """What the buffer did to one run's source figures."""

    units: int
    share: float
    before: dict[str, int] = field(default_factory=dict)  # key -> figure without the buffer

    def details(self, writes: Iterable[tuple[str, int]]) -> dict[str, Any]:
        """The run's record: settings, how many figures the buffer lowered, and for each
        planned write (key, figure published) the figure before and after the buffer."""
        figures: dict[str, list[int]] = {}
        before = self.before
        for key, new in writes:
            if len(figures) >= MAX_RECORDED:
                break
            figures[key] = [before.get(key, new), new]
        return {"units": self.units, "share": self.share, "lowered": len(before),
                "figures_before_after": figures}


def apply_buffer(stock: SourceStock, units: int, share: float) -> BufferReport | None:
    """Lower every figure of ``stock`` in place; None when no buffer is configured."""
    if units <= 0 and share <= 0:
        return None
    report = BufferReport(units, share)
    values, before = stock.values, report.before
    for key, value in values.items():
        lowered = buffered(value, units, share)
        if lowered != value:
            before[key] = value
            values[key] = lowered
    return report
