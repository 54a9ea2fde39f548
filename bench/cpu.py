"""CPU seconds of pure matching and planning for N variants (no I/O, no simulators).

Builds an InSales index and source items as the pipeline has them after the
fetch, then times ``target_variants`` (index -> planner view) and
``plan_stock`` (normalise, judge, match, diff, guard) with ``time.process_time``.
"""

from __future__ import annotations

import json
import random
import sys
import time
from typing import Any

from stocksyncd.clients.insales import Product, Variant
from stocksyncd.integrations.stock.index import InSalesIndex
from stocksyncd.integrations.stock.model import SourceItem
from stocksyncd.integrations.stock.pipeline import target_variants
from stocksyncd.integrations.stock.plan import plan_stock


def measure(n: int, share: float = 0.05, repeat: int = 3) -> dict[str, Any]:
    rng = random.Random(1)
    products: dict[int, Product] = {}
    items: list[SourceItem] = []
    vid = 500_000
    i = 0
    while i < n:
        variants = []
        for _ in range(min(rng.randint(1, 4), n - i)):
            i += 1
            vid += 1
            qty = rng.randint(0, 50)
            sku = f"SKU-{i:06d}"
            variants.append(Variant(id=vid, product_id=100_000 + i, sku=sku,
                                    barcode=f"46{i:011d}", quantity=float(qty)))
            new = qty + 1 if rng.random() < share else qty
            items.append(SourceItem(key=sku, quantity=float(new), ref=str(i)))
        pid = 100_000 + i
        products[pid] = Product(id=pid, updated_at="2026-01-01T00:00:00.000+03:00",
                                variants=tuple(variants))
    index = InSalesIndex(products=products)
    best: dict[str, float] = {}
    writes = 0
    for _ in range(repeat):
        t0 = time.process_time()
        targets = target_variants(index, "sku", None)
        t1 = time.process_time()
        plan = plan_stock(items, targets)
        t2 = time.process_time()
        writes = len(plan.writes)
        for name, value in (("target_view_s", t1 - t0), ("plan_s", t2 - t1),
                            ("total_s", t2 - t0)):
            best[name] = min(best.get(name, value), value)
    return {"variants": n, "writes": writes, **best}


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000)))
