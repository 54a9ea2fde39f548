"""Seeded fuzzing of the InvenTree client: malformed answers end in the project's own
errors or in typed values within bounds, never in a crash."""

from __future__ import annotations

import random
from decimal import Decimal

import aiohttp

from stocksyncd.clients.inventree import InvenTreeClient
from stocksyncd.clients.inventree.client import server_root
from stocksyncd.clients.inventree.models import MAX_FIGURE
from stocksyncd.clock import FakeClock
from stocksyncd.errors import StockSyncError
from stocksyncd.http.limits import MIB, Limits
from stocksyncd.http.retry import RetryPolicy
from stocksyncd.http.transport import ExchangeRecord, Transport
from stocksyncd.simulators.inventree import DEFAULT_TOKEN, InvenTreeSimulator

from .mutate import mutate_answer

CASES = 210


class Bodies:
    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}

    def observe(self, record: ExchangeRecord) -> None:
        if record.status == 200 and record.body:
            self.bodies.setdefault(record.url.split("?", 1)[0], record.body)


def bounded(value: Decimal | None) -> bool:
    return value is None or (value.is_finite() and abs(value) < MAX_FIGURE)


async def read_all(client: InvenTreeClient, part: int, supplier_part: int) -> None:
    """What the supplier sync reads of one part; every figure must be within bounds."""
    parts = [p async for p in client.iter_parts()]
    assert all(isinstance(p.pk, int) for p in parts)
    await client.get_part(part)
    for sp in await client.supplier_parts(part=part):
        assert bounded(sp.available)
    for pb in await client.price_breaks(supplier_part):
        assert bounded(pb.quantity) and bounded(pb.price)


async def test_inventree_answers_fuzzed(session: aiohttp.ClientSession, clock: FakeClock) -> None:
    sim = InvenTreeSimulator.small_catalogue(3)
    url = await sim.start()
    observer = Bodies()
    try:
        def client() -> InvenTreeClient:
            transport = Transport(
                session, api="inventree", base_url=server_root(url + "/api/"), clock=clock,
                headers=InvenTreeClient.headers(DEFAULT_TOKEN), retry=RetryPolicy(attempts=5),
                observer=observer, limits=Limits(max_response_bytes=MIB),
            )
            return InvenTreeClient(transport, page_size=50)

        part = next(iter(sim.parts))
        sp_row = sim.add_supplier_part(part=part, supplier=sim.mouser_supplier, SKU="595-FUZZ",
                                       available=120)
        supplier_part = sp_row["pk"]
        sim.add_price_break(supplier_part, 1, "0.55")
        sim.add_price_break(supplier_part, 10, "0.41")
        await read_all(client(), sp_row["part"], supplier_part)  # clean: learn the answers
        paths = [p.removeprefix(url) for p in observer.bodies]
        outcomes = {"ok": 0, "error": 0}
        for n in range(CASES):
            rng = random.Random(1500 + n)
            path = rng.choice(paths)
            case, fault = mutate_answer(observer.bodies[url + path], rng, match=path,
                                        method="GET", cap=MIB)
            sim.inject(fault)
            try:
                await read_all(client(), sp_row["part"], supplier_part)
                outcomes["ok"] += 1
            except StockSyncError as exc:
                assert str(exc), case
                outcomes["error"] += 1
            sim.faults.clear()
        assert outcomes["ok"] and outcomes["error"], outcomes
    finally:
        await sim.stop()
