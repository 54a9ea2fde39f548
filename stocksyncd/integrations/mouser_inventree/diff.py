"""What to change on a supplier part: price breaks, availability, packaging, link.

Price breaks are compared as sets of (quantity, price, currency) with
Decimal equality, so "0.540" from InvenTree equals 0.54 from Mouser. Any
difference replaces the whole set, in an order that never leaves fewer
prices than before: new quantities are created first, rows whose quantity
stays are rewritten in place (InvenTree keeps (part, quantity) unique, so a
second row cannot be created beside them), and only then are the rows whose
quantity Mouser dropped deleted. An empty list from Mouser never deletes
existing breaks (a part without public pricing is not a reason to throw away
what the user has).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from yarl import URL

LINK_MAX = 2000
PACKAGING_MAX = 50


@dataclass(frozen=True)
class Break:
    """One price break as Mouser sends it."""

    quantity: Decimal
    price: Decimal
    currency: str


@dataclass(frozen=True)
class StoredBreak:
    """One price break InvenTree holds (``pk`` of the price-break row)."""

    pk: int
    quantity: Decimal
    price: Decimal | None
    currency: str | None


@dataclass(frozen=True)
class BreakPlan:
    """Create these breaks, rewrite these rows, then delete these rows."""

    delete: tuple[StoredBreak, ...]
    create: tuple[Break, ...]
    old: str
    new: str
    update: tuple[tuple[StoredBreak, Break], ...] = ()

    @property
    def currencies(self) -> frozenset[str]:
        """The currencies the plan writes."""
        return frozenset(b.currency for b in self.create) | frozenset(
            b.currency for _, b in self.update)


def decimal_text(value: Decimal | None) -> str:
    """A Decimal without trailing zeros or exponent ("0.54", "100")."""
    if value is None:
        return "?"
    return format(value.normalize(), "f")


def format_break(b: Break | StoredBreak) -> str:
    """One break: "10 @ 0.39 USD"."""
    return f"{decimal_text(b.quantity)} @ {decimal_text(b.price)} {b.currency or '?'}"


def format_breaks(breaks: Sequence[Break | StoredBreak]) -> str:
    """Human form for reports: "1 @ 0.54 USD; 10 @ 0.39 USD"."""
    ordered = sorted(breaks, key=lambda b: b.quantity)
    return "; ".join(format_break(b) for b in ordered)


def _key(quantity: Decimal, price: Decimal | None, currency: str | None) -> tuple[Any, ...]:
    return (quantity, price, (currency or "").strip().upper())


def unique_breaks(target: Sequence[Break]) -> list[Break]:
    """Mouser's breaks with one row per quantity (the first wins), ordered by quantity."""
    seen: dict[Decimal, Break] = {}
    for b in target:
        if b.quantity > 0 and b.price >= 0 and b.quantity not in seen:
            seen[b.quantity] = Break(b.quantity, b.price, b.currency.strip().upper())
    return sorted(seen.values(), key=lambda b: b.quantity)


def plan_price_breaks(current: Sequence[StoredBreak], target: Sequence[Break]) -> BreakPlan | None:
    """None when InvenTree already holds Mouser's breaks (or Mouser sent none)."""
    wanted = unique_breaks(target)
    if not wanted:
        return None
    have = {_key(b.quantity, b.price, b.currency) for b in current}
    want = {_key(b.quantity, b.price, b.currency) for b in wanted}
    if have == want and len(current) == len(wanted):
        return None
    by_quantity = {b.quantity: b for b in wanted}
    kept: dict[Decimal, StoredBreak] = {}
    delete: list[StoredBreak] = []
    for row in sorted(current, key=lambda b: (b.quantity, b.pk)):
        if row.quantity in by_quantity and row.quantity not in kept:
            kept[row.quantity] = row
        else:
            delete.append(row)
    update = tuple(
        (row, by_quantity[q]) for q, row in sorted(kept.items())
        if _key(row.quantity, row.price, row.currency)
        != _key(q, by_quantity[q].price, by_quantity[q].currency)
    )
    return BreakPlan(
        delete=tuple(delete),
        create=tuple(b for b in wanted if b.quantity not in kept),
        old=format_breaks(current),
        new=format_breaks(wanted),
        update=update,
    )


@dataclass(frozen=True)
class SupplierFields:
    """The supplier part's current values of the fields the job maintains."""

    available: Decimal | None = None
    packaging: str | None = None
    link: str | None = None


@dataclass(frozen=True)
class MouserFields:
    """Mouser's values; None means Mouser did not say (leave the field alone)."""

    available: int | None = None
    packaging: str | None = None
    link: str | None = None


@dataclass(frozen=True)
class FieldChange:
    """One field to PATCH: ``field`` names it in reports, ``api_field`` in InvenTree."""

    field: str
    api_field: str
    old: str | None
    new: str
    value: Any


def fit_link(url: str | None, limit: int = LINK_MAX) -> str | None:
    """The URL within ``limit``: drop the query string rather than cut it; None if hopeless."""
    if not url or not url.strip():
        return None
    url = url.strip()
    if len(url) <= limit:
        return url
    short = str(URL(url).with_query(None).with_fragment(None))
    return short if len(short) <= limit else None


def fit_text(text: str | None, limit: int) -> str | None:
    """Trimmed text cut to ``limit``; None when empty."""
    if text is None:
        return None
    text = " ".join(text.split())
    return text[:limit] or None


def plan_fields(
    current: SupplierFields, mouser: MouserFields, *, link_max: int = LINK_MAX
) -> list[FieldChange]:
    """The fields whose Mouser value differs from InvenTree's, in a fixed order."""
    changes: list[FieldChange] = []
    if mouser.available is not None and mouser.available >= 0:
        new = Decimal(mouser.available)
        if current.available is None or current.available != new:
            old = decimal_text(current.available) if current.available is not None else None
            changes.append(
                FieldChange("availability", "available", old, str(mouser.available),
                            mouser.available)
            )
    packaging = fit_text(mouser.packaging, PACKAGING_MAX)
    if packaging is not None and packaging != (current.packaging or "").strip():
        changes.append(FieldChange("packaging", "packaging", current.packaging, packaging,
                                   packaging))
    link = fit_link(mouser.link, link_max)
    if link is not None and link != (current.link or "").strip():
        changes.append(FieldChange("link", "link", current.link, link, link))
    return changes
