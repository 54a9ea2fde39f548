"""Seeded fuzzing of the Mouser client: malformed answers end in the project's own
errors, in a per-part ``PayloadError``, or in typed values within bounds; never in a
crash, and never in "Mouser no longer knows this SKU" from a damaged answer."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal

import aiohttp
import orjson

from stocksyncd.clients.mouser import MouserClient, MouserPart
from stocksyncd.clock import FakeClock
from stocksyncd.errors import PayloadError, StockSyncError
from stocksyncd.http.limits import MIB, Limits
from stocksyncd.http.retry import RetryPolicy
from stocksyncd.http.transport import ExchangeRecord, Transport
from stocksyncd.numbers import MAX_STOCK
from stocksyncd.simulators.mouser import MouserSimulator, catalogue

from .mutate import mutate_answer

CASES = 210  # per API; the issue asks for at least 200
KEY = "3f2a9c4e-1b7d-4e8a-9c0f-5d6e7f8a9b0c"
CATALOGUE = catalogue(12, seed=1)
SKUS = [str(p["MouserPartNumber"]) for p in CATALOGUE[:3]]
PATH = "/search/partnumber"


class Bodies:
    def __init__(self) -> None:
        self.body = b""

    def observe(self, record: ExchangeRecord) -> None:
        if record.status == 200 and record.body and not self.body:
            self.body = record.body


def check_part(part: MouserPart) -> None:
    assert part.in_stock is None or 0 <= part.in_stock < MAX_STOCK
    for pb in part.price_breaks:
        assert isinstance(pb.price, Decimal) and pb.price.is_finite() and pb.price >= 0
        assert isinstance(pb.quantity, int) and 0 < pb.quantity < MAX_STOCK
    if part.price_error is not None:
        assert part.price_breaks == []  # an unreadable list is applied not at all


def well_formed_without(body: bytes, sku: str) -> bool:
    """Whether ``body`` is a complete, well-formed answer that lacks ``sku``."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    results = doc.get("SearchResults") if isinstance(doc, dict) else None
    if not isinstance(results, dict) or doc.get("Errors") not in ([], None):
        return False
    parts = results.get("Parts")
    count = results.get("NumberOfResult")
    if not isinstance(parts, list) or type(count) is not int:
        return False
    return all(isinstance(p, dict) and p.get("MouserPartNumber") != sku for p in parts)


async def test_mouser_answers_fuzzed(session: aiohttp.ClientSession) -> None:
    clock = FakeClock(datetime(2026, 3, 10, 12, 0, tzinfo=UTC))
    sim = MouserSimulator(CATALOGUE, api_keys={KEY}, clock=clock)
    await sim.start()
    observer = Bodies()
    try:
        def client() -> MouserClient:
            transport = Transport(session, api="mouser", base_url=sim.base_url, clock=clock,
                                  retry=RetryPolicy(attempts=2, base_delay=1.0), timeout=5.0,
                                  observer=observer, limits=Limits(max_response_bytes=MIB))
            return MouserClient(transport, KEY)

        clean = await client().lookup_many(SKUS)  # learn the clean answer
        assert all(isinstance(v, MouserPart) for v in clean.values()), clean
        outcomes = {"parts": 0, "item_errors": 0, "unknown": 0, "run_errors": 0}
        for n in range(CASES):
            rng = random.Random(2600 + n)
            case, fault = mutate_answer(observer.body, rng, match=PATH, method="POST", cap=MIB)
            sim.inject(fault)
            try:
                found = await client().lookup_many(SKUS)
            except StockSyncError as exc:
                assert str(exc), case
                outcomes["run_errors"] += 1
            else:
                assert set(found) == set(SKUS), case
                for sku, value in found.items():
                    if isinstance(value, MouserPart):
                        check_part(value)
                        outcomes["parts"] += 1
                    elif isinstance(value, PayloadError):
                        assert str(value), case
                        outcomes["item_errors"] += 1
                    else:
                        assert value is None, case
                        # "Unknown SKU" only from an answer that is whole and lacks it.
                        assert well_formed_without(fault.body or b"", sku), case
                        outcomes["unknown"] += 1
            sim.faults.clear()
        assert outcomes["parts"] and outcomes["run_errors"] and outcomes["item_errors"], outcomes
    finally:
        await sim.stop()
