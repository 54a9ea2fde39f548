"""The shop always converges to the source, whatever happens in it meanwhile (seeded, randomized).

Hundreds of runs against the InSales simulator while another actor edits
quantities, adds products with new and with duplicated keys, changes keys,
deletes and restores products, between runs and at random moments during
them (mid-scan, during our writes), some of it showing up to 50 s after
its ``updated_at`` (a save committed late), and InSales' queue applies our writes
late (or, on an account that answers per variant, refuses variants of
products deleted after the scan). Checked throughout: a key duplicated in
the shop since before a run began, or ambiguous in the source, is never
written; every write sent was in the write-ahead audit before it went out. Checked after every quiet
period (two runs with no one else acting, plus the queue's delay): the shop
holds the source's figure on every variant whose key it holds once.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from stock_fakes import DictState, ListSource

from stocksyncd.clock import FakeClock
from stocksyncd.integrations.base import MemoryWriteAhead, RunContext
from stocksyncd.integrations.stock.model import SourceItem
from stocksyncd.integrations.stock.pipeline import StockSyncIntegration
from stocksyncd.simulators.insales import InSalesSimulator

Factory = Callable[..., StockSyncIntegration]
KEYS = [f"46{n:011d}" for n in range(60)]


class Actor:
    """Someone else working in the shop; remembers since when each key is held twice."""

    def __init__(self, sim: InSalesSimulator, clock: FakeClock, rng: random.Random) -> None:
        self.sim, self.clock, self.rng = sim, clock, rng
        self.twice_since: dict[str, float] = {}
        self.acts = Counter[str]()

    def live_keys(self) -> Counter[str]:
        return Counter(v["barcode"] for v in self.sim.variants() if v["barcode"])

    def note(self) -> None:
        """After any change in the shop: which keys are held twice, and since when."""
        held = self.live_keys()
        now = self.clock.time()
        for key in [k for k in self.twice_since if held[k] < 2]:
            del self.twice_since[key]
        for key, n in held.items():
            if n >= 2:
                self.twice_since.setdefault(key, now)

    def act(self) -> None:
        """One random change in the shop; one in four shows up to 50 s after its stamp."""
        if self.rng.random() < 0.25:
            self.acts["late"] += 1
            with self.sim.committed_late(self.rng.uniform(0.0, 50.0)):
                self._act()
        else:
            self._act()

    def _act(self) -> None:
        sim, rng = self.sim, self.rng
        variants = sim.variants()
        roll = rng.random()
        if roll < 0.4 and variants:
            self.acts["quantity"] += 1
            sim.set_quantity(rng.choice(variants)["id"], rng.randint(0, 40))
        elif roll < 0.55:
            held = list(self.live_keys())
            twin = held and rng.random() < 0.5
            self.acts["add twin" if twin else "add"] += 1
            key = rng.choice(held) if twin else rng.choice(KEYS)
            sim.add_product([{"barcode": key, "quantity": rng.randint(0, 40)}
                             for _ in range(rng.randint(1, 2))])
        elif roll < 0.7 and variants:
            self.acts["key"] += 1
            sim.update_variant(rng.choice(variants)["id"], barcode=rng.choice(KEYS))
        elif roll < 0.85 and sim.products:
            self.acts["delete"] += 1
            sim.delete_product(rng.choice(sorted(sim.products)))
        elif sim.trash:
            self.acts["restore"] += 1
            sim.restore_product(rng.choice(sorted(sim.trash)))
        self.note()

    def delete_owner(self, variant_id: int) -> None:
        """Delete the product holding ``variant_id``, if it is still in the shop."""
        try:
            pid = self.sim.variant(variant_id)["product_id"]
        except KeyError:
            return
        self.acts["delete written"] += 1
        self.sim.delete_product(pid)
        self.note()

    def maybe(self, share: float) -> None:
        """With probability ``share``, a few changes a few seconds apart."""
        if self.rng.random() < share:
            for _ in range(self.rng.randint(1, 3)):
                self.clock.advance(self.rng.uniform(0.0, 3.0))
                self.act()


@pytest.mark.parametrize(("seed", "queue_delay", "concurrency", "per_variant"), [
    (1, 0.0, 4, False), (2, 45.0, 1, False), (3, 100.0, 4, False), (4, 20.0, 2, True),
])
async def test_the_shop_converges_and_the_rules_hold_whatever_happens(
    sim: InSalesSimulator, make_integration: Factory, state: DictState, clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch, seed: int, queue_delay: float, concurrency: int,
    per_variant: bool,
) -> None:
    rng = random.Random(seed)
    sim.queue_delay = queue_delay
    # An account that answers per variant and refuses variants of trashed products.
    sim.reject_trashed = per_variant
    for n in range(40):
        sim.add_product([{"barcode": KEYS[(n * 7 + k) % len(KEYS)], "quantity": rng.randint(0, 9)}
                         for k in range(rng.randint(1, 3))])
    actor = Actor(sim, clock, rng)
    actor.note()
    clock.advance(3600)
    source_values = {key: rng.randint(0, 40) for key in KEYS}
    ambiguous: set[str] = set()

    def source_items() -> list[SourceItem]:
        items = [SourceItem(k, q, k) for k, q in source_values.items()]
        items += [SourceItem(k, source_values[k] + 1, k + "/2") for k in sorted(ambiguous)]
        return items

    source = ListSource(source_items())
    integration = make_integration(source, zero_guard=1.0, write_concurrency=concurrency,
                                   full_refresh=900)
    audit = MemoryWriteAhead()
    sent: list[tuple[int, int]] = []
    run_started = 0.0
    violations: list[str] = []

    real_update = integration.client.variants_group_update
    real_page = integration.client.products_page

    async def update(writes: Any) -> Any:
        audited = {(int(c.ref), int(c.new or 0)) for c in audit.changes if c.status == "planned"}
        keys = {int(c.ref): c.key for c in audit.changes}
        for w in writes:
            sent.append((w.id, w.value))
            if (w.id, w.value) not in audited:
                violations.append(f"write {w.id}={w.value} sent without being in the audit")
            key = keys.get(w.id, "")
            if key in ambiguous:
                violations.append(f"ambiguous key {key} written")
            since = actor.twice_since.get(key)
            if since is not None and since < run_started:
                violations.append(f"key {key}, held twice since {since}, written at "
                                  f"{clock.time()} by a run begun at {run_started}")
        if busy:
            actor.maybe(0.3)
            if writes and rng.random() < 0.05:
                actor.delete_owner(writes[0].id)  # a product we are writing to, right now
        answer = await real_update(writes)
        if busy:
            actor.maybe(0.3)
        return answer

    async def page(**kwargs: Any) -> Any:
        if busy:
            actor.maybe(0.1)
        return await real_page(**kwargs)

    monkeypatch.setattr(integration.client, "variants_group_update", update)
    monkeypatch.setattr(integration.client, "products_page", page)

    async def run(label: str) -> None:
        nonlocal run_started
        clock.advance(60)
        run_started = clock.time()
        ctx = RunContext(run_id=label, dry_run=False, state=state,  # type: ignore[arg-type]
                         clock=clock, audit=audit)
        result = await integration.run(ctx)
        assert result.status == "ok", (label, result.errors, result.message)
        refused["deleted_in_target"] += result.counts.skipped_by_reason.get(
            "deleted_in_target", 0)
        assert set(result.conflicts) >= ambiguous

    refused = Counter[str]()
    runs = checks = 0
    for episode in range(30):
        busy = True
        for n in range(rng.randint(1, 4)):
            for key in rng.sample(KEYS, rng.randint(0, 8)):
                source_values[key] = rng.randint(0, 40)
            if rng.random() < 0.2:
                ambiguous.symmetric_difference_update({rng.choice(KEYS)})
            source.items = source_items()
            actor.maybe(0.7)
            await run(f"e{episode}b{n}")
            runs += 1
        busy = False
        await run(f"e{episode}q1")
        await run(f"e{episode}q2")
        runs += 2
        clock.advance(queue_delay + 1)
        sim.process_queue()
        held = actor.live_keys()
        for v in sim.variants():
            key = v["barcode"]
            if key and held[key] == 1 and key not in ambiguous:
                assert v["quantity"] == source_values[key], (
                    f"episode {episode}: variant {v['id']} ({key}) holds {v['quantity']}, "
                    f"the source says {source_values[key]}")
                checks += 1
        assert not violations, violations[:5]
    # The test saw what it is about: every kind of change, writes, and twins.
    assert runs >= 100 and checks > 300
    assert set(actor.acts) == {"quantity", "add", "add twin", "key", "delete", "restore", "late",
                               "delete written"}
    assert len(sent) > 100
    assert {int(c.ref) for c in audit.changes} >= {vid for vid, _ in sent}
    assert any(c.status == "confirmed" for c in audit.changes)
    if per_variant:  # some writes met a product deleted after the scan, and were refused
        assert any(c.status == "refused" for c in audit.changes)
        assert refused["deleted_in_target"] > 0
