"""Stock that keeps changing: sales and deliveries in the sources, news from Mouser.

Every few seconds a handful of MoySklad and Kak2c figures move (mostly down
by a sale or two, sometimes up by a delivery), so each later run of the stock
jobs has something to write. Now and then a Mouser part changes its lifecycle
status, prices or availability, which the parts job picks up when its cursor
comes round to that part. Bad values planted on purpose are left alone.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from decimal import Decimal

from stocksyncd.demo.catalogue import DemoWorld
from stocksyncd.simulators.mouser import LIFECYCLES
from stocksyncd.simulators.moysklad import DEFAULT_STORE


@dataclass
class ChurnStep:
    """What one step changed (for tests and the curious)."""

    moysklad: int = 0
    kak2c: int = 0
    mouser: int = 0


class Churn:
    """Moves a few source figures per step; ``run`` steps every ``every`` seconds."""

    def __init__(self, world: DemoWorld, *, seed: int, every: float = 3.0,
                 per_step: int = 4, mouser_chance: float = 0.4) -> None:
        self.world = world
        self.every = every
        self.per_step = per_step
        self.mouser_chance = mouser_chance
        self.rng = random.Random(seed * 7919 + 1)
        self.steps = 0
        protected = world.protected_keys
        self._ms_ids = [world.moysklad.find(k) for k in world.moysklad_keys
                        if k not in protected]
        self._kak_ids = [str(world.kak2c.by_barcode(b)["id"]) for b in world.kak2c_keys
                         if b not in protected]
        self._mouser_pns = [pn for pn in _supplier_skus(world) if _known(world, pn)]

    async def run(self) -> None:
        """Step forever (until cancelled)."""
        while True:
            await asyncio.sleep(self.every)
            self.step()

    def step(self) -> ChurnStep:
        """Change a few figures now."""
        self.steps += 1
        done = ChurnStep()
        n = self.rng.randint(1, self.per_step)
        for pid in self.rng.sample(self._ms_ids, min(n, len(self._ms_ids))):
            rows = self.world.moysklad.stock.get(DEFAULT_STORE, {})
            current = rows[pid].stock if pid in rows else 0.0
            self.world.moysklad.set_stock(pid, max(0.0, current + self._move()))
            done.moysklad += 1
        n = self.rng.randint(1, self.per_step)
        for vid in self.rng.sample(self._kak_ids, min(n, len(self._kak_ids))):
            stock = self.world.kak2c.variants[vid]["stock"]
            raw = stock[0].get("stockTotal") if stock else 0
            current = raw if isinstance(raw, int | float) and not isinstance(raw, bool) else 0
            self.world.kak2c.set_stock(vid, max(0, int(current) + self._move()))
            done.kak2c += 1
        if self._mouser_pns and self.rng.random() < self.mouser_chance:
            self._mouser_news(self.rng.choice(self._mouser_pns))
            done.mouser += 1
        return done

    def _move(self) -> int:
        """A sale (most often) or a delivery."""
        if self.rng.random() < 0.75:
            return -self.rng.randint(1, 3)
        return self.rng.randint(5, 20)

    def _mouser_news(self, number: str) -> None:
        mouser = self.world.mouser
        part = mouser.part(number)
        roll = self.rng.random()
        if roll < 0.4:
            choices = [s for s in LIFECYCLES if s != part.get("LifecycleStatus")]
            mouser.set_lifecycle(number, self.rng.choice(choices))
        elif roll < 0.7:
            breaks = part.get("PriceBreaks") or []
            currency = str(breaks[0]["Currency"]) if breaks else "USD"
            base = Decimal(self.rng.randrange(50, 5000)) / 100
            mouser.set_prices(number, [
                (1, base), (10, (base * Decimal("0.8")).quantize(Decimal("0.01"))),
                (100, (base * Decimal("0.6")).quantize(Decimal("0.01"))),
            ], currency)
        else:
            mouser.set_stock(number, self.rng.randrange(0, 20000))


def _supplier_skus(world: DemoWorld) -> list[str]:
    inv = world.inventree
    return sorted(str(sp["SKU"]) for sp in inv.supplier_parts.values()
                  if sp["supplier"] == inv.mouser_supplier)


def _known(world: DemoWorld, number: str) -> bool:
    try:
        world.mouser.part(number)
    except KeyError:
        return False
    return True
