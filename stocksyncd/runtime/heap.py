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
objects are freed by reference counting and no collection needs to see
them.

A daemon with hundreds of jobs always has a run in progress, so the pause
would never end. Once it has lasted ``MAX_PAUSE``, automatic collection
resumes until no run is in progress: young objects are collected in small
steps, as in any busy process. (A forced collection of everything made
since the pause began, once a minute, stalled the event loop for seconds
at a time with 300 jobs of 10k variants: runs started late.)
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterator

# Collections of the youngest generation every this many net allocations of
# container objects, instead of Python's default 700.
GEN0_THRESHOLD = 50_000


def settle_heap() -> None:
    """Once start-up is done: collect, freeze what is left, collect young objects less often."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)


# Runs that overlap for longer than this get automatic collection back until
# none is in progress: a lone run of a 10k job takes about a second.
MAX_PAUSE = 5.0


class _Pause:
    active = 0  # runs in progress
    since = 0.0  # monotonic time the pause began
    owned = False  # whether we disabled the collector (and so re-enable it)


def _resume_if_long() -> None:
    """Runs have overlapped for ``MAX_PAUSE``: collect automatically until none is left."""
    if _Pause.owned and time.monotonic() - _Pause.since > MAX_PAUSE:
        gc.enable()


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """No automatic cyclic collection while any run is in progress (see the module notes).

    Runs may overlap: the collector resumes when the last one ends, or once
    the pause has lasted ``MAX_PAUSE``. A collector someone else disabled
    stays disabled.
    """
    if _Pause.active == 0:
        _Pause.owned = gc.isenabled()
        _Pause.since = time.monotonic()
        if _Pause.owned:
            gc.disable()
    else:
        _resume_if_long()
    _Pause.active += 1
    try:
        yield
    finally:
        _Pause.active -= 1
        if _Pause.owned:
            if _Pause.active == 0:
                gc.enable()
            else:
                _resume_if_long()
