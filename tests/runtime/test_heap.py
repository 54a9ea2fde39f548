"""The GC settings applied once the daemon has started."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import Iterator

import pytest

from stocksyncd.runtime import heap
from stocksyncd.runtime.heap import GEN0_THRESHOLD, collection_paused, settle_heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    callbacks = list(gc.callbacks)
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    gc.callbacks[:] = callbacks


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


def test_collection_pauses_while_any_run_is_in_progress() -> None:
    assert gc.isenabled()
    first, second = collection_paused(), collection_paused()
    first.__enter__()
    assert not gc.isenabled()
    second.__enter__()  # a second run overlaps the first
    first.__exit__(None, None, None)
    assert not gc.isenabled()  # the second is still running
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_failing_run_resumes_collection() -> None:
    with pytest.raises(RuntimeError), collection_paused():
        raise RuntimeError("run failed")
    assert gc.isenabled()


def test_a_collector_disabled_elsewhere_stays_disabled() -> None:
    gc.disable()
    try:
        with collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_long_overlapping_runs_still_collect_young_objects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(heap, "MAX_PAUSE", 0.0)
    monkeypatch.setattr(heap._Pause, "full_due", time.monotonic() + 60)  # not due
    collected: list[int] = []
    monkeypatch.setattr(heap.gc, "collect", lambda generation=2: collected.append(generation))
    with collection_paused():
        with collection_paused():
            pass
        assert collected == [1]  # the inner run ended after the pause had gone on too long
        assert not gc.isenabled()
    assert gc.isenabled()
    assert collected == [1]


def test_the_last_run_to_end_collects_everything_at_most_every_full_every(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    collected: list[int] = []
    monkeypatch.setattr(heap._Pause, "full_due", 0.0)
    monkeypatch.setattr(heap.gc, "collect", lambda generation=2: collected.append(generation))
    with collection_paused(), collection_paused():
        pass
    assert collected == [2]  # the first time, and once for the two runs
    with collection_paused():
        pass
    assert collected == [2]  # not due yet
    assert heap._Pause.full_due >= time.monotonic() + heap.FULL_EVERY - 1


def test_a_long_full_collection_makes_the_next_one_wait_longer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(heap._Pause, "full_due", 0.0)  # restored afterwards
    monkeypatch.setattr(heap._Pause, "full_took", 0.0)
    clock = iter([100.0, 100.0, 105.0])  # due; the collection took 5 s
    monkeypatch.setattr(heap.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(heap.gc, "collect", lambda generation=2: 0)
    heap._collect_everything()
    assert heap._Pause.full_due == 105.0 + 5.0 / heap.FULL_SHARE  # 5 s in 5000 s
    assert heap._Pause.full_took == 5.0


def test_a_full_collection_waits_for_a_gap_in_the_schedule(
    restored_gc: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With 300 jobs of 10k variants it held the process 6.7 s and 17 runs
    # started late: it is done only when no run is due before it would end.
    next_run = [3.0]
    monkeypatch.setattr(heap._Pause, "until_next_run", heap._Pause.until_next_run)  # restored
    settle_heap(until_next_run=lambda: next_run[0])
    monkeypatch.setattr(heap._Pause, "full_due", 0.0)
    monkeypatch.setattr(heap._Pause, "full_took", 0.0)
    collected: list[int] = []
    monkeypatch.setattr(heap.gc, "collect", lambda generation=2: collected.append(generation))
    with collection_paused():
        pass
    assert collected == []  # a run is due in 3 s
    next_run[0] = heap.FULL_ROOM
    heap._Pause.full_took = 6.0  # the last one took 6 s: it needs 12 s of room
    with collection_paused():
        pass
    assert collected == []
    next_run[0] = 12.0
    with collection_paused():
        pass
    assert collected == [2]


def test_a_cycle_made_in_a_run_and_left_after_it_is_freed(
    restored_gc: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As a connection a run opens and closes after it: a closed asyncio socket
    # transport is a cycle in Python 3.11, which an idle daemon kept for hours.
    settle_heap()

    class Node:
        pass

    with collection_paused():
        node = Node()
        node.self = node  # type: ignore[attr-defined]
        gone = weakref.ref(node)
        gc.collect(1)  # what the young collections do meanwhile: it is old by now
    del node
    monkeypatch.setattr(heap._Pause, "full_due", 0.0)  # due
    with collection_paused():
        assert gone() is not None  # not while a run is in progress
    assert gone() is None


def test_a_closed_connection_is_freed_when_the_next_run_ends(
    restored_gc: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    settle_heap()

    async def connect_and_close() -> weakref.ref[asyncio.BaseTransport]:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        transport = weakref.ref(writer.transport)
        gc.collect(1)  # the connection outlives a young collection, as in a run
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        return transport

    transport = asyncio.run(connect_and_close())
    assert transport() is not None  # a cycle: reference counting does not free it
    monkeypatch.setattr(heap._Pause, "full_due", 0.0)  # due
    with collection_paused():
        pass
    assert transport() is None


def test_a_long_collection_is_logged_by_the_next_run(
    restored_gc: None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from loguru import logger

    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        settle_heap()
        monkeypatch.setattr(heap, "LONG_COLLECTION", 0.0)  # every collection is long
        gc.collect()
        assert lines == []  # not from inside the collector
        with collection_paused():
            pass
    finally:
        logger.remove(sink)
    assert lines and lines[0].startswith("the garbage collector held the process")
    assert "generation 2" in lines[0]
