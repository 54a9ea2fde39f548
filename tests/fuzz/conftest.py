"""The InSales shop every fuzz and regression test of this folder writes to."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from stocksyncd.clock import FakeClock
from stocksyncd.simulators.insales import InSalesSimulator


@pytest.fixture
async def shop(clock: FakeClock) -> AsyncIterator[InSalesSimulator]:
    sim = InSalesSimulator(clock=clock)
    await sim.start()
    yield sim
    await sim.stop()
