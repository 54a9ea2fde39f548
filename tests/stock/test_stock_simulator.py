"""The InSales simulator's own promises: determinism and scale."""

from __future__ import annotations

from stocksyncd.clock import FakeClock
from stocksyncd.simulators.insales import InSalesSimulator, format_time, parse_time


def test_catalogue_is_deterministic_and_has_the_awkward_cases() -> None:
    a, b = InSalesSimulator(clock=FakeClock()), InSalesSimulator(clock=FakeClock())
    a.catalogue(2000, seed=5, duplicate_barcodes=3)
    b.catalogue(2000, seed=5, duplicate_barcodes=3)
    assert a.variants() == b.variants()
    variants = a.variants()
    assert len(variants) == 2000
    barcodes = [v["barcode"] for v in variants if v["barcode"]]
    assert len(barcodes) - len(set(barcodes)) == 3
    assert any(v["barcode"] is None for v in variants)
    assert any(v["sku"] is None for v in variants)
    assert any(v["quantity"] is None for v in variants)


def test_catalogue_with_warehouses_sums_quantity() -> None:
    sim = InSalesSimulator(clock=FakeClock())
    sim.catalogue(50, seed=1, with_warehouses=True)
    v = next(v for v in sim.variants() if v["quantity"] is not None)
    assert "quantity_at_warehouse0" in v and "quantity_at_warehouse1" in v
    sim.set_quantity(v["id"], 3, warehouse=1)
    assert sim.variant(v["id"])["quantity"] == float(v["quantity_at_warehouse0"]) + 3


def test_time_format_round_trips() -> None:
    ms = 1_767_225_600_123
    text = format_time(ms)
    assert text.endswith("+03:00") and ".123" in text
    assert parse_time(text) == ms
    assert parse_time("2017-09-04 00:00:00 +03:00") == parse_time("2017-09-04T00:00:00+03:00")
    assert parse_time("nonsense") is None
