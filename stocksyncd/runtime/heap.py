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

While a run is in progress automatic collection is paused
(``collection_paused``): everything a run builds stays alive until it
ends, so a collection in the middle only walks live objects (10-30 ms per
10k variants, measured) and frees nothing; once the run is over its
objects are freed by reference counting.

Not all of them: some libraries leave reference cycles, which only the
collector frees. In Python 3.11 every closed socket transport is one
(asyncio's transport keeps a bound method of itself; fixed in 3.12,
python/cpython#100348 and #106503), and an every-minute
job closes its idle connections between runs. A connection is opened in a
run and closed after it, so its cycle is old by then; with collections as
rare as above an idle daemon kept them for hours (RSS grew about 1 MiB an
hour, measured over two). So at most every ``FULL_EVERY`` seconds, at the
moment the last run in progress ends, everything is collected: at 100k
variants a walk of 0.1-0.2 s. The walk grows with the heap (5.6-6.7 s for
300 jobs of 10k variants, measured), and runs wait behind it, so it is done
only when no run is due before it would be over (``FULL_ROOM``, or twice the
last one), and at most ``FULL_SHARE`` of the time. A daemon always busy with
many jobs leaves it to Python's own collector; what it would free there is
small beside the heap.
"""

from __future__ import annotations

import contextlib
import gc
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

from loguru import logger

# Collections of the youngest generation every this many net allocations of
# container objects, instead of Python's default 700.
GEN0_THRESHOLD = 50_000


def settle_heap(until_next_run: Callable[[], float] | None = None) -> None:
    """Once start-up is done: collect, freeze what is left, collect young objects less often.

    ``until_next_run``: seconds until the next scheduled run (a daemon's
    schedule); without it, a full collection never waits for room.
    """
    _Pause.until_next_run = until_next_run or (lambda: math.inf)
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
    if _note_long_collections not in gc.callbacks:
        gc.callbacks.append(_note_long_collections)


# A collection that held the process this long is logged (a warning): every run and the web
# page wait behind it, so an operator seeing late runs can tell the cause. The
# callback only notes it: logging from inside a collection could meet the log
# handler's own lock; the next run's start or end reports it.
LONG_COLLECTION = 2.0  # the young collections of 300 busy jobs take about 1 s: not news
_started = 0.0
_long: list[tuple[float, int, int]] = []  # (seconds, generation, objects freed)


def _note_long_collections(phase: str, info: dict[str, Any]) -> None:
    global _started  # one collection at a time: the collector is not reentrant
    if phase == "start":
        _started = time.monotonic()
    elif (took := time.monotonic() - _started) >= LONG_COLLECTION:
        _long.append((took, info["generation"], info["collected"]))


def _report_long_collections() -> None:
    while _long:
        took, generation, freed = _long.pop(0)
        logger.warning("the garbage collector held the process {:.1f}s (generation {}, {} "
                       "objects freed)", took, generation, freed)


# Runs that overlap for longer than this still get their young objects
# collected, at the end of each run: cyclic garbage cannot pile up without bound.
# Such a collection walks every object made since the last one that is still
# alive; with 300 jobs of 10k variants a run is always in progress, and once a
# minute that walk (the indexes of the jobs that ran cold meanwhile) stalled the
# event loop for seconds. Every 5 s it walks the same objects in smaller steps.
# (Leaving collection to the automatic collector instead lets its full
# collections walk the whole heap of indexes: one of two replicas stalled past
# the state store's 10 s timeout, measured.)
MAX_PAUSE = 5.0


# A full collection when the last run in progress ends, at most this often, and
# less often when it is long: the collections take at most FULL_SHARE of the time.
# Only when no run is due for FULL_ROOM seconds, or twice the last one's length.
FULL_EVERY = 600.0
FULL_SHARE = 0.001
FULL_ROOM = 10.0


class _Pause:
    active = 0  # runs in progress
    since = 0.0  # monotonic time the pause began (or last collected)
    owned = False  # whether we disabled the collector (and so re-enable it)
    full_due = 0.0  # monotonic time from which the next full collection may run
    full_took = 0.0  # how long the last one took
    until_next_run: Callable[[], float] = staticmethod(lambda: math.inf)


def _collect_everything() -> None:
    """Free the cycles left since the last full collection, if due and there is room."""
    if time.monotonic() < _Pause.full_due:
        return
    if _Pause.until_next_run() < max(FULL_ROOM, 2 * _Pause.full_took):
        return  # a run is due soon: it would wait behind the walk
    started = time.monotonic()
    gc.collect()
    ended = time.monotonic()
    _Pause.full_took = ended - started
    _Pause.full_due = ended + max(FULL_EVERY, _Pause.full_took / FULL_SHARE)


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """No automatic cyclic collection while any run is in progress (see the module notes).

    Runs may overlap: the collector resumes when the last one ends, and
    collects everything then when that is due (module notes). A collector
    someone else disabled stays disabled (and collects nothing here).
    """
    _report_long_collections()
    if _Pause.active == 0:
        _Pause.owned = gc.isenabled()
        _Pause.since = time.monotonic()
        if _Pause.owned:
            gc.disable()
    _Pause.active += 1
    try:
        yield
    finally:
        _Pause.active -= 1
        if _Pause.owned:
            if _Pause.active == 0:
                gc.enable()
                _collect_everything()
            elif time.monotonic() - _Pause.since > MAX_PAUSE:
                gc.collect(1)
                _Pause.since = time.monotonic()
        _report_long_collections()
