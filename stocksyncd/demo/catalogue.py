"""The demo's world: five simulators holding one consistent, deliberately imperfect dataset.

The InSales shop is the target of both stock jobs. Its variants are split in
two: MoySklad keeps the stock of the first part (matched by SKU = article),
the Kak2c fulfilment warehouse the rest (matched by barcode). Both sources
also hold items the shop does not sell, and a few bad values the jobs must
refuse: a negative figure (clamped to 0), null and ``"abc"`` (skipped), an
article used by two MoySklad products with different stock (ambiguous), and
barcodes carried by two InSales variants (a conflict, never written).

The InvenTree server is the simulator's small shop floor, lined up with the
Mouser catalogue so that about half of its parts have a Mouser supplier part
whose SKU Mouser knows, and the others are found by name.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from stocksyncd.simulators.base import Simulator
from stocksyncd.simulators.insales import InSalesSimulator
from stocksyncd.simulators.inventree import DEFAULT_CURRENCIES, DEFAULT_TOKEN, InvenTreeSimulator
from stocksyncd.simulators.kak2c import Kak2cSimulator
from stocksyncd.simulators.mouser import CURRENCIES, MouserSimulator
from stocksyncd.simulators.mouser import catalogue as mouser_catalogue
from stocksyncd.simulators.moysklad import DEFAULT_STORE, MoySkladSimulator

# Credentials the simulators accept; they exist only inside this process.
INSALES_API_KEY = "demo-insales-key"
INSALES_PASSWORD = "demo-insales-password"
MOYSKLAD_TOKEN = "demo-moysklad-token"
KAK2C_LOGIN = "demo@example.com"
KAK2C_PASSWORD = "demo-kak2c-password"
MOUSER_API_KEY = "00000000-demo-key-0000-000000000000"
INVENTREE_TOKEN = DEFAULT_TOKEN

DEFAULT_VARIANTS = 360
MOYSKLAD_SHARE = 0.55  # the first 55% of the shop's variants take their stock from MoySklad
DUPLICATE_BARCODES = 2
EXTRA_MOYSKLAD = 25  # products MoySklad has and the shop does not
EXTRA_KAK2C = 15
MOUSER_PARTS = 60
INVENTREE_MOUSER_PARTS = 24  # InvenTree parts named after Mouser catalogue entries
# Mouser's own limits are 30 calls a minute and 1000 a day; the demo keeps the
# per-minute limit but allows a long session without running out for the day.
MOUSER_CALLS_PER_DAY = 100_000


@dataclass
class BadValue:
    """A source figure the demo made wrong on purpose, and what the job should do."""

    source: str
    key: str
    value: Any
    expect: str


@dataclass
class DemoWorld:
    """The running simulators and what the demo put into them."""

    seed: int
    insales: InSalesSimulator
    moysklad: MoySkladSimulator
    kak2c: Kak2cSimulator
    mouser: MouserSimulator
    inventree: InvenTreeSimulator
    moysklad_keys: list[str] = field(default_factory=list)  # articles that are shop SKUs
    kak2c_keys: list[str] = field(default_factory=list)  # barcodes that are shop barcodes
    bad_values: list[BadValue] = field(default_factory=list)
    duplicate_barcodes: list[str] = field(default_factory=list)
    ambiguous_articles: list[str] = field(default_factory=list)
    started: list[Simulator] = field(default_factory=list)

    @property
    def simulators(self) -> list[tuple[str, Simulator]]:
        """Every simulator with a display name, in start order."""
        return [("InSales", self.insales), ("MoySklad", self.moysklad), ("Kak2c", self.kak2c),
                ("Mouser", self.mouser), ("InvenTree", self.inventree)]

    @property
    def protected_keys(self) -> set[str]:
        """Keys whose bad or conflicting values should stay as they are (churn skips them)."""
        return ({b.key for b in self.bad_values} | set(self.duplicate_barcodes)
                | set(self.ambiguous_articles))

    async def start(self) -> None:
        """Start every simulator on a free port of 127.0.0.1."""
        for _, sim in self.simulators:
            await sim.start(0, "127.0.0.1")
            self.started.append(sim)

    async def stop(self) -> None:
        """Stop the simulators that were started (in reverse order)."""
        while self.started:
            await self.started.pop().stop()

    def describe(self) -> list[str]:
        """One line per simulator: where it listens and what it holds."""
        shop_variants = self.insales.variants()
        ms_products = len(self.moysklad.products)
        kak_variants = len(self.kak2c.variants)
        inv = self.inventree
        mouser_sps = sum(1 for sp in inv.supplier_parts.values()
                         if sp["supplier"] == inv.mouser_supplier)
        return [
            f"InSales    {self.insales.url}  {len(self.insales.products)} products, "
            f"{len(shop_variants)} variants, {len(self.duplicate_barcodes)} duplicated barcodes",
            f"MoySklad   {self.moysklad.base_url}  {ms_products} products "
            f"({len(self.moysklad_keys)} shop SKUs), "
            f"{len(self.ambiguous_articles)} article used twice",
            f"Kak2c      {self.kak2c.base_url}  {len(self.kak2c.products)} products, "
            f"{kak_variants} variants ({len(self.kak2c_keys)} shop barcodes)",
            f"Mouser     {self.mouser.base_url}  {len(self.mouser.parts)} catalogue parts",
            f"InvenTree  {inv.url}  {len(inv.parts)} parts, {mouser_sps} Mouser supplier parts",
            "Bad source values, on purpose:",
            *(f"  {b.source} {b.key} = {b.value!r} ({b.expect})" for b in self.bad_values),
        ]


def build_world(seed: int = 1, *, variants: int = DEFAULT_VARIANTS,
                mouser_per_minute: int = 30) -> DemoWorld:
    """Create (not start) the five simulators with the demo dataset for ``seed``."""
    rng = random.Random(seed)

    insales = InSalesSimulator(api_key=INSALES_API_KEY, password=INSALES_PASSWORD)
    insales.catalogue(variants, seed=seed, duplicate_barcodes=DUPLICATE_BARCODES)
    shop = insales.variants()
    split = int(len(shop) * MOYSKLAD_SHARE)
    barcode_uses: dict[str, int] = {}
    for v in shop:
        if v["barcode"]:
            barcode_uses[v["barcode"]] = barcode_uses.get(v["barcode"], 0) + 1
    duplicates = sorted(b for b, n in barcode_uses.items() if n > 1)

    # MoySklad: stock by article for the first part of the shop, plus products it alone has.
    moysklad = MoySkladSimulator(token=MOYSKLAD_TOKEN)
    ms_skus = [v["sku"] for v in shop[:split] if v["sku"]]
    moysklad.catalogue(len(ms_skus) + EXTRA_MOYSKLAD, seed=seed, keys=ms_skus,
                       unstocked_share=0.03)

    # Kak2c: stock by barcode for the rest, both product shapes, plus its own items.
    kak2c = Kak2cSimulator(login=KAK2C_LOGIN, password=KAK2C_PASSWORD)
    kak_barcodes = [v["barcode"] for v in shop[split:] if v["barcode"]]
    kak2c.catalogue(len(kak_barcodes) + EXTRA_KAK2C, seed=seed, keys=kak_barcodes,
                    shape="mixed")

    # Mouser and InvenTree: the small shop floor named after Mouser catalogue entries.
    parts = mouser_catalogue(MOUSER_PARTS, seed=seed)
    pairs = [(p["MouserPartNumber"], p["ManufacturerPartNumber"]) for p in parts
             if p["MouserPartNumber"] != "N/A"][:INVENTREE_MOUSER_PARTS]
    mouser = MouserSimulator(parts, api_keys={MOUSER_API_KEY}, per_minute=mouser_per_minute,
                             per_day=MOUSER_CALLS_PER_DAY)
    # Mouser quotes some parts in SEK: the demo's InvenTree lists that currency too.
    inventree = InvenTreeSimulator.small_catalogue(
        seed, mouser_parts=pairs, token=INVENTREE_TOKEN,
        currencies=(*DEFAULT_CURRENCIES, *sorted(set(CURRENCIES) - set(DEFAULT_CURRENCIES))),
    )

    world = DemoWorld(
        seed=seed, insales=insales, moysklad=moysklad, kak2c=kak2c, mouser=mouser,
        inventree=inventree, moysklad_keys=ms_skus, kak2c_keys=kak_barcodes,
        duplicate_barcodes=duplicates,
    )
    _spoil_sources(world, rng)
    return world


def _spoil_sources(world: DemoWorld, rng: random.Random) -> None:
    """Put the bad values and the ambiguous article into the sources."""
    duplicates = set(world.duplicate_barcodes)
    ms_keys = [k for k in world.moysklad_keys if k]
    ms_picks = rng.sample(ms_keys, 2)
    negative, ambiguous = ms_picks
    world.moysklad.set_stock(world.moysklad.find(negative), -4.0)
    world.bad_values.append(BadValue("MoySklad", negative, -4, "clamped to 0"))
    # A second product with the same article and a different figure: ambiguous.
    row = world.moysklad.stock.get(DEFAULT_STORE, {}).get(world.moysklad.find(ambiguous))
    figure = (row.stock if row is not None else 0.0) + 7.0
    world.moysklad.add_product(ambiguous, stock=figure, name=f"Item {ambiguous} (second card)")
    world.ambiguous_articles.append(ambiguous)

    kak_keys = [k for k in world.kak2c_keys if k not in duplicates]
    for barcode, value, expect in zip(rng.sample(kak_keys, 3), (None, "abc", -3),
                                      ("skipped", "skipped", "clamped to 0"), strict=True):
        variant = world.kak2c.by_barcode(barcode)
        world.kak2c.set_stock(str(variant["id"]), value)
        world.bad_values.append(BadValue("Kak2c", barcode, value, expect))
