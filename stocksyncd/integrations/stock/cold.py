"""How many stock runs of one process may be cold at once.

A run is cold when it has no index of the shop in memory: the first run of
a job, the first after a failed one, or after the job moved to this replica.
It reads the shop in full (or loads the stored index) and stores the index
again, several times the work of a quiet run. At start-up every job is cold
at once: 300 jobs of 10k variants, spread over their first minute, asked for
several cores' worth of work from a daemon that has one, and once every run
was slow the state store's timeouts failed them, so the next runs were cold
again and the daemon never caught up. So cold runs wait for one of
``COLD_RUNS`` slots: they start on time, take longer while the queue lasts,
and each finishes quickly once it has its slot; quiet runs never wait.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from weakref import WeakKeyDictionary

# Enough to overlap the round trips of a few full reads, few enough that each
# gets its share of one event loop.
COLD_RUNS = 4

_slots: WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = WeakKeyDictionary()


def _slot() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slot = _slots.get(loop)
    if slot is None:
        slot = _slots[loop] = asyncio.Semaphore(COLD_RUNS)
    return slot


@contextlib.asynccontextmanager
async def cold_slot(cold: bool) -> AsyncIterator[None]:
    """Hold one of this process's cold-run slots while a cold run lasts (nothing if warm)."""
    if not cold:
        yield
        return
    async with _slot():
        yield
