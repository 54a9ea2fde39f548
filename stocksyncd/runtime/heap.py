"""Garbage-collector settings for a long-running process.

After start-up the heap holds some 10^5 objects that live as long as the
process (modules, classes, the libraries' tables). Python's cyclic collector
rescans all of them on every full collection, and a stock run allocates
enough (pages, the InSales index, the plan) to trigger several: measured on
a 10k-variant run, a third of its CPU went to rescanning start-up objects.
Freezing them (``gc.freeze``) leaves them out of every later collection, and
a larger first-generation threshold makes young collections rarer while the
amount of cyclic garbage waiting stays small (plain garbage is freed by
reference counting at once). See docs/benchmarks.md for the numbers.
"""

from __future__ import annotations

import gc

# Collections of the youngest generation every this many net allocations of
# container objects, instead of Python's default 700.
GEN0_THRESHOLD = 50_000


def settle_heap() -> None:
    """Once start-up is done: collect, freeze what is left, collect young objects less often."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
