"""The contract between a stock source (MoySklad, Kak2c) and the InSales stock pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from stocksyncd.integrations.base import RunContext


# The per-item records of a run (this, the planner's TargetVariant and
# PlannedWrite, InSales' Variant) are NamedTuples: a run builds one per item,
# 100k at a time, and a tuple is made several times faster than a frozen
# dataclass.
class SourceItem(NamedTuple):
    """One stock figure as the source reports it, before any cleaning.

    ``key`` and ``quantity`` are raw (the planner normalises keys and judges
    values: None, negative and non-numeric quantities are its business).
    """

    key: str | None
    quantity: object
    ref: str  # the source's id for this item, for reports
    name: str = ""  # the source's name for the item, for reports


class StockSource(Protocol):
    """Where stock comes from. ``fetch`` returns every item or raises (rule 1)."""

    api: str  # "moysklad" | "kak2c": for reports and request counting

    async def fetch(self, ctx: RunContext) -> list[SourceItem]:
        """All items with their stock; raise ``ApiError`` when the data is incomplete."""
        ...

    def requests_made(self) -> int:
        """HTTP requests sent so far (for run reports and benchmarks)."""
        ...
