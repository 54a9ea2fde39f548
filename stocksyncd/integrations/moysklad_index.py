"""The stored MoySklad source index: every keyed product with its stock, kept up to date
by changed-since windows instead of reading the whole catalogue every run.

A window asks MoySklad for what changed since the previous read, by
MoySklad's own clock (the ``Date`` of its answers, Moscow time on the wire),
reaching ``overlap`` seconds further back so that a change made while the
previous read was on its way is read again rather than lost. Both requests
(products changed, stock changed) must succeed or nothing of the window is
used. An item absent from a changed-since report is unchanged, never zero.

Everything is read again (``full``) when the index is missing or does not
match its stored header, when the previous window failed, when the next
window would reach back further than MoySklad allows (24 h), when the stock
type, store or key field changed, when a key newly became shared by two
products (a deleted product still holds it) or a product came back from the
archive, and every ``full_every`` seconds.

Stored through the state store in two values: a small header written every
run (where the next window starts) and the items, written only when a run
changed them; the header names the items' copy (``snapshot``), so a header
never goes with items it was not written for.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SCOPE = "moysklad-index"
ITEMS_SUFFIX = "/items"
VERSION = 1
CHANGED_SINCE_LIMIT = 24 * 3600.0  # MoySklad's changed-since report looks at most 24 h back
LIMIT_MARGIN = 300.0  # our clock and MoySklad's may drift apart between two runs
DEFAULT_OVERLAP = 120.0


def window_units(changed_products: int, weight: float, report_weight: float = 5.0) -> float:
    """MoySklad rate-limit units one window costs: ``ceil(N/1000)`` product pages (at least
    one) at ``weight`` each, and the stock report (one answer, at least ``report_weight``)."""
    pages = max(1, -(-changed_products // 1000))
    return pages * weight + max(weight, report_weight)


@dataclass
class IndexHeader:
    """Where the stored index stands: what it was read with and where the next window starts."""

    key: str
    stock_type: str
    store_id: str | None
    since: datetime | None  # MoySklad's clock at the first answer of the last read
    read_at: float  # our clock when that read began
    full_at: float  # our clock when the last full read began
    snapshot: str  # the stored items' copy this header goes with
    doubt: str | None = None  # set when the next run must read everything, and why

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "v": VERSION, "key": self.key, "stock_type": self.stock_type,
            "store_id": self.store_id,
            "since": None if self.since is None else self.since.isoformat(),
            "read_at": self.read_at, "full_at": self.full_at, "snapshot": self.snapshot,
            "doubt": self.doubt,
        }

    @classmethod
    def from_json(cls, data: Any) -> IndexHeader | None:
        """The header stored as ``data``; None when there is none or it is not readable."""
        if not isinstance(data, dict) or data.get("v") != VERSION:
            return None
        try:
            since = data["since"]
            return cls(
                key=str(data["key"]), stock_type=str(data["stock_type"]),
                store_id=None if data["store_id"] is None else str(data["store_id"]),
                since=None if since is None else datetime.fromisoformat(str(since)),
                read_at=float(data["read_at"]), full_at=float(data["full_at"]),
                snapshot=str(data["snapshot"]),
                doubt=None if data.get("doubt") is None else str(data["doubt"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass
class SourceIndex:
    """Keyed products (id -> key) and the stock report (id -> raw figure) as last read."""

    products: dict[str, str] = field(default_factory=dict)
    stock: dict[str, object] = field(default_factory=dict)
    snapshot: str = ""
    archived: set[str] = field(default_factory=set)  # archived since the last full read

    def items_json(self) -> dict[str, Any]:
        """The stored form of the items."""
        return {"snapshot": self.snapshot, "products": self.products, "stock": self.stock,
                "archived": sorted(self.archived)}

    @classmethod
    def from_json(cls, data: Any, snapshot: str) -> SourceIndex | None:
        """The items stored as ``data`` if they are the copy ``snapshot``, else None."""
        if not isinstance(data, dict) or data.get("snapshot") != snapshot:
            return None
        products, stock = data.get("products"), data.get("stock")
        archived = data.get("archived", [])
        if not isinstance(products, dict) or not isinstance(stock, dict) or not isinstance(
                archived, list):
            return None
        return cls(products={str(k): str(v) for k, v in products.items()},
                   stock=dict(stock), snapshot=snapshot, archived={str(a) for a in archived})

    def renamed(self) -> None:
        """A new name for a changed copy (the header written with it names it)."""
        self.snapshot = uuid.uuid4().hex


def product_key(row: Mapping[str, Any], field_name: str) -> str | None:
    """The key of a product row, or None when it has none (not ours)."""
    key = row.get(field_name)
    if key is None or key == "":
        return None
    return key if type(key) is str else str(key)


def product_id(row: Mapping[str, Any]) -> str:
    """The id of a product row as text."""
    ref = row.get("id", "")
    return ref if type(ref) is str else str(ref)


def full_index(products: Iterable[Mapping[str, Any]], stock: dict[str, object],
               field_name: str) -> SourceIndex:
    """The index from a full read: every product with a key, the whole stock report."""
    keyed: dict[str, str] = {}
    for row in products:
        key = product_key(row, field_name)
        if key is not None:
            keyed[product_id(row)] = key
    index = SourceIndex(products=keyed, stock=stock)
    index.renamed()
    return index


@dataclass
class WindowChange:
    """What one changed-since window did to the index."""

    products: int = 0  # product rows read
    stock: int = 0  # stock rows read
    changed: int = 0  # entries whose key or figure differs from before
    doubt: str | None = None  # why the index cannot be trusted: read everything now


def apply_window(index: SourceIndex, products: Iterable[Mapping[str, Any]],
                 stock: Mapping[str, object], field_name: str) -> WindowChange:
    """Apply a window's changes to ``index`` in place.

    A product archived or deleted in the window keeps its key at the 0
    MoySklad reports for it (it is not for sale); the next full read drops it.
    A product whose key was cleared leaves the index. When a key becomes held
    by a second product (the old holder may be deleted or archived), or a
    product comes back from the archive, the window leaves a doubt and the
    caller reads everything.
    """
    out = WindowChange()
    keyed, figures, archived = index.products, index.stock, index.archived
    holders: dict[str, int] | None = None
    touched: list[str] = []
    for row in products:
        out.products += 1
        pid = product_id(row)
        key = product_key(row, field_name)
        if row.get("archived") is True:
            if pid not in archived and pid in keyed:
                archived.add(pid)
                figures[pid] = 0  # MoySklad lists it with 0 as well
                out.changed += 1
            continue
        if pid in archived:
            out.doubt = "a product came back from the archive"
            continue
        before = keyed.get(pid)
        if key == before:
            continue
        out.changed += 1
        if key is None:
            del keyed[pid]
            continue
        if holders is None:  # counted once, and only when some key moved
            holders = {}
            for held in keyed.values():
                holders[held] = holders.get(held, 0) + 1
        keyed[pid] = key
        holders[key] = holders.get(key, 0) + 1
        if before is not None:
            holders[before] -= 1
        touched.append(key)
    for pid, value in stock.items():
        out.stock += 1
        old = figures.get(pid, _ABSENT)
        if old is _ABSENT or old != value:
            figures[pid] = value
            if pid in keyed:
                out.changed += 1
    if holders is not None:
        shared = sorted({k for k in touched if holders.get(k, 0) > 1})
        if shared:
            out.doubt = (f"key {', '.join(shared[:5])} is now held by two products "
                         "(a deleted or archived one may still hold it)")
    return out


_ABSENT = object()


def full_reason(header: IndexHeader | None, *, now: float, key: str, stock_type: str,
                store_id: str | None, full_every: float, overlap: float) -> str | None:
    """Why this run must read everything, or None when a window will do."""
    if header is None:
        return "no stored index"
    if header.doubt is not None:
        return header.doubt
    if header.key != key:
        return f"the key field changed ({header.key} -> {key})"
    if header.stock_type != stock_type:
        return f"stock_type changed ({header.stock_type} -> {stock_type})"
    if header.store_id != store_id:
        return f"store_id changed ({header.store_id or 'all'} -> {store_id or 'all'})"
    if header.since is None:
        return "MoySklad's clock was not known at the last read"
    if now - header.read_at + overlap > CHANGED_SINCE_LIMIT - LIMIT_MARGIN:
        return "the last read was over 24 h ago (MoySklad's changed-since limit)"
    if now - header.full_at >= full_every:
        return "full refresh due"
    return None
