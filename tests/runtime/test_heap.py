"""The GC settings applied once the daemon has started."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from stocksyncd.runtime.heap import GEN0_THRESHOLD, settle_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settle_heap_freezes_start_up_objects_and_raises_gen0(restored_gc: None) -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    permanent = [object() for _ in range(10)]  # stands for start-up state
    settle_heap()
    assert gc.get_freeze_count() > len(permanent)
    assert gc.get_threshold()[0] == GEN0_THRESHOLD
    # Objects made later are still collected, cycles included.
    cycle: list[object] = []
    cycle.append(cycle)
    del cycle
    assert gc.collect() >= 1
