"""Long loops of CPU work a slice at a time, with a look at the event loop between slices.

A run's CPU work that is off its critical path (joining and reducing the
source, turning the index into its stored form) would otherwise hold the
event loop for tens of milliseconds while answers on the critical path
(InSales' pages and write results) wait to be read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TypeVar

T = TypeVar("T")

# Items handled between two looks at the event loop (about a millisecond's worth).
CPU_SLICE = 1000


async def in_slices(items: Sequence[T], size: int = CPU_SLICE) -> AsyncIterator[Sequence[T]]:
    """``items`` ``size`` at a time; the event loop runs after each slice is handled."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
        await asyncio.sleep(0)
