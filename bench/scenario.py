"""Deterministic benchmark data: one InSales shop and its MoySklad / Kak2c mirrors.

The InSales catalogue comes from ``InSalesSimulator.catalogue``. The sources
mirror it: every InSales variant with a key and a tracked quantity has a
source item with the same key and the same stock, except ``changed_share`` of
them whose stock differs. So a run must write exactly those.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from stocksyncd.simulators.insales import InSalesSimulator
from stocksyncd.simulators.kak2c import Kak2cSimulator
from stocksyncd.simulators.moysklad import MoySkladSimulator

INSALES_KEY = "bench-key"
INSALES_PASSWORD = "bench-password"
MOYSKLAD_TOKEN = "bench-moysklad-token"
KAK2C_LOGIN = "bench@example.com"
KAK2C_PASSWORD = "bench-password"


@dataclass
class Facts:
    """What the scenario holds, for the report and the lower bound."""

    variants: int = 0
    products: int = 0
    source_items: int = 0
    matched: int = 0
    changed: int = 0


@dataclass
class Mirror:
    """A source mirror: key -> (source id, current stock)."""

    ids: dict[str, str] = field(default_factory=dict)
    stock: dict[str, int] = field(default_factory=dict)


def shop(sim: InSalesSimulator, n_variants: int, seed: int) -> list[dict[str, object]]:
    """Fill the InSales simulator; returns its variants."""
    sim.catalogue(n_variants, seed=seed)
    return sim.variants()


def _changed_keys(keys: list[str], share: float, rng: random.Random) -> set[str]:
    return set(rng.sample(keys, round(len(keys) * share)))


def moysklad_mirror(
    sim: MoySkladSimulator, variants: list[dict[str, object]], share: float, seed: int
) -> tuple[Mirror, Facts]:
    """One MoySklad product per InSales SKU (tracked quantity), ``share`` of them changed."""
    rng = random.Random(seed + 7)
    pairs = [(str(v["sku"]), int(v["quantity"])) for v in variants  # type: ignore[call-overload]
             if v.get("sku") and v.get("quantity") is not None]
    changed = _changed_keys([k for k, _ in pairs], share, rng)
    mirror = Mirror()
    for i, (sku, qty) in enumerate(pairs):
        stock = qty + 1 + rng.randint(0, 5) if sku in changed else qty
        pid = f"00000000-0000-4000-8000-{i:012d}"
        sim.add_product(sku, stock=float(stock), id=pid, name=f"Item {sku}")
        mirror.ids[sku] = pid
        mirror.stock[sku] = stock
    facts = Facts(variants=len(variants), source_items=len(pairs), matched=len(pairs),
                  changed=len(changed))
    return mirror, facts


def kak2c_mirror(
    sim: Kak2cSimulator, variants: list[dict[str, object]], share: float, seed: int
) -> tuple[Mirror, Facts]:
    """Kak2c variants by InSales barcode (tracked quantity), 1-4 per product, ``share`` changed."""
    rng = random.Random(seed + 11)
    pairs = [(str(v["barcode"]), int(v["quantity"]))  # type: ignore[call-overload]
             for v in variants if v.get("barcode") and v.get("quantity") is not None]
    changed = _changed_keys([k for k, _ in pairs], share, rng)
    mirror = Mirror()
    i = 0
    while i < len(pairs):
        group = pairs[i:i + rng.randint(1, 4)]
        made = []
        for barcode, qty in group:
            stock = qty + 1 + rng.randint(0, 5) if barcode in changed else qty
            variant = sim.make_variant(barcode, stock)
            made.append(variant)
            mirror.ids[barcode] = str(variant["id"])
            mirror.stock[barcode] = stock
        sim.add_product(made)
        i += len(group)
    facts = Facts(variants=len(variants), source_items=len(pairs), matched=len(pairs),
                  changed=len(changed))
    return mirror, facts


def mutate_moysklad(sim: MoySkladSimulator, mirror: Mirror, share: float, seed: int) -> int:
    """Change the stock of ``share`` of the mirrored products; returns how many."""
    rng = random.Random(seed)
    keys = sorted(_changed_keys(list(mirror.ids), share, rng))
    for key in keys:
        mirror.stock[key] += 1 + rng.randint(0, 5)
        sim.set_stock(mirror.ids[key], float(mirror.stock[key]))
    return len(keys)


def mutate_kak2c(sim: Kak2cSimulator, mirror: Mirror, share: float, seed: int) -> int:
    """Change the stock of ``share`` of the mirrored variants; returns how many."""
    rng = random.Random(seed)
    keys = sorted(_changed_keys(list(mirror.ids), share, rng))
    for key in keys:
        mirror.stock[key] += 1 + rng.randint(0, 5)
        sim.set_stock(mirror.ids[key], mirror.stock[key])
    return len(keys)
