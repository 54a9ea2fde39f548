"""Writes InSales has taken but not yet shown: what the group update's queue still owes.

InSales queues a ``variants_group_update`` and answers 200 ``[]`` at once;
the new figures show in a read only once its queue has run. So a written
figure is never taken as InSales' own: it waits here, and the planner
compares the source with it (the next run does not write it again), until a
read of its product decides:

* the read shows the figure: confirmed;
* the product changed since the write was planned (its ``updated_at``
  moved) and shows another figure: someone changed it after us, or the
  queue dropped our item while applying others; the read figure counts and
  the planner writes again if the source disagrees (superseded);
* the product or the variant is gone: deleted in the shop;
* otherwise the queue has not run yet: still pending.

One still pending after ``confirm_within`` seconds has its product read by
id (its ``updated_at`` may not move when the queue applies it: that is not
documented), and if that read does not settle it either, it is written once
more; one still not shown a bound after the rewrite is reported unconfirmed,
and the next run starts over with a fresh write (the shop must converge).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from stocksyncd.clients.insales import Product, Variant
from stocksyncd.integrations.base import Change


def figure(variant: Variant, field_name: str) -> float | None:
    """The variant's figure in ``field_name`` (``quantity`` or ``quantity_at_warehouseN``)."""
    if field_name == "quantity":
        return variant.quantity
    return variant.warehouses.get(int(field_name.removeprefix("quantity_at_warehouse")))


@dataclass
class Pending:
    """One written figure no read has shown yet."""

    variant_id: int
    product_id: int
    key: str
    value: int
    sent_at: float  # our wall clock, epoch seconds
    base: str  # the product's updated_at the write was planned against
    attempt: int = 1  # 2 for the rewrite after the bound
    audit_id: int | None = None
    # This process's audited change, to settle it in place (not stored).
    change: Change | None = field(default=None, compare=False)

    def to_json(self) -> list[Any]:
        """The stored form."""
        return [self.variant_id, self.product_id, self.key, self.value, self.sent_at,
                self.base, self.attempt, self.audit_id]

    @classmethod
    def from_json(cls, row: Any) -> Pending:
        """One stored row; raises ValueError/TypeError when damaged."""
        vid, pid, key, value, sent_at, base, attempt, audit_id = row
        return cls(int(vid), int(pid), str(key), int(value), float(sent_at), str(base),
                   int(attempt), None if audit_id is None else int(audit_id))

    def audited(self, field_name: str) -> Change:
        """The audited change this write is, to settle it."""
        if self.change is not None:
            return self.change
        return Change(ref=str(self.variant_id), key=self.key, field=field_name, old=None,
                      new=str(self.value), status="sent", audit_id=self.audit_id)


@dataclass
class Verdicts:
    """What this run's reads decided about pending writes."""

    confirmed: list[Pending] = field(default_factory=list)
    superseded: list[tuple[Pending, float | None]] = field(default_factory=list)  # shown
    deleted: list[Pending] = field(default_factory=list)
    rewrite: list[Pending] = field(default_factory=list)  # the bound passed: written again
    unconfirmed: list[Pending] = field(default_factory=list)  # and passed after the rewrite


def judge(pending: Pending, product: Product | None, field_name: str,
          verdicts: Verdicts) -> bool:
    """Decide ``pending`` from a read of its product (None: gone); True when decided."""
    variant = None if product is None else next(
        (v for v in product.variants if v.id == pending.variant_id), None)
    if product is None or variant is None:
        verdicts.deleted.append(pending)
        return True
    shown = figure(variant, field_name)
    if shown == pending.value:
        verdicts.confirmed.append(pending)
        return True
    if product.updated_at != pending.base:
        verdicts.superseded.append((pending, shown))
        return True
    return False
