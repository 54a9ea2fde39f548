"""Count the reference cycles a piece of code leaves behind.

The daemon collects cyclic garbage rarely (runtime/heap.py): whatever a
routine step leaves in cycles piles up for hours, so the steps of a quiet
run must leave none.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


class Cycles:
    """How many objects only the cyclic collector could free (set on exit)."""

    found = -1


@contextmanager
def cyclic_garbage() -> Iterator[Cycles]:
    """Measure the cyclic garbage made inside the block (the collector is off meanwhile)."""
    cycles = Cycles()
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield cycles
        cycles.found = gc.collect()
    finally:
        if enabled:
            gc.enable()
