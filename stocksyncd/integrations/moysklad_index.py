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

Stored through the state store in three values: the items (every product and
figure, about 9.5 MB of JSON at 100k products), a journal of what the windows
changed since that copy of the items was written, and a small header written
every run: where the next window starts, the name of the items' copy
(``snapshot``) and the journal entry the index stands at (``tail``). A run with
changes adds a journal entry; the items are written again only after a full
read or once the journal has grown to a quarter of them. A header never goes
with items or entries it was not written for (a journal written ahead of a
header that then failed is cut at the header's tail), and a process keeps its
copy in memory as long as the header's tail is the one it stored last.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

SCOPE = "moysklad-index"
ITEMS_SUFFIX = "/items"
JOURNAL_SUFFIX = "/journal"
VERSION = 1
CHANGED_SINCE_LIMIT = 24 * 3600.0  # MoySklad's changed-since report looks at most 24 h back
LIMIT_MARGIN = 300.0  # our clock and MoySklad's may drift apart between two runs
DEFAULT_OVERLAP = 120.0
JOURNAL_MIN = 2_000  # journal entries (products and figures) always allowed before a rewrite


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
    tail: str = ""  # the last journal entry the index stands at ("": the copy itself)

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "v": VERSION, "key": self.key, "stock_type": self.stock_type,
            "store_id": self.store_id,
            "since": None if self.since is None else self.since.isoformat(),
            "read_at": self.read_at, "full_at": self.full_at, "snapshot": self.snapshot,
            "doubt": self.doubt, "tail": self.tail,
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
                tail=str(data.get("tail") or ""),
            )
        except (KeyError, TypeError, ValueError):
            return None


def journal_json(snapshot: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The stored form of the journal of the items' copy ``snapshot``."""
    return {"snapshot": snapshot, "entries": entries}


def journal_entries(data: Any, header: IndexHeader) -> list[dict[str, Any]] | None:
    """The stored journal's entries up to the header's tail; None when they are not there."""
    if not header.tail:
        return []
    if not isinstance(data, dict) or data.get("snapshot") != header.snapshot:
        return None
    entries = data.get("entries")
    if not isinstance(entries, list):
        return None
    for n, entry in enumerate(entries):
        if not (isinstance(entry, dict) and isinstance(entry.get("id"), str)
                and isinstance(entry.get("p"), dict) and isinstance(entry.get("a"), list)
                and isinstance(entry.get("s"), dict)):
            return None
        if entry["id"] == header.tail:
            return entries[:n + 1]
    return None


def journal_weight(entries: Iterable[Mapping[str, Any]]) -> int:
    """Products and figures the journal entries hold."""
    return sum(len(e["p"]) + len(e["a"]) + len(e["s"]) for e in entries)


@dataclass
class SourceIndex:
    """Keyed products (id -> key) and the stock report (id -> raw figure) as last read."""

    products: dict[str, str] = field(default_factory=dict)
    stock: dict[str, object] = field(default_factory=dict)
    snapshot: str = ""
    archived: set[str] = field(default_factory=set)  # archived since the last full read
    # Product names, for reports only (which item a key belongs to); never judged.
    names: dict[str, str] = field(default_factory=dict)

    def items_json(self) -> dict[str, Any]:
        """The stored form of the items."""
        return {"snapshot": self.snapshot, "products": self.products, "stock": self.stock,
                "archived": sorted(self.archived), "names": self.names}

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
        names = data.get("names")
        return cls(products={str(k): str(v) for k, v in products.items()},
                   stock=dict(stock), snapshot=snapshot, archived={str(a) for a in archived},
                   names={str(k): str(v) for k, v in names.items()}
                   if isinstance(names, dict) else {})

    def renamed(self) -> None:
        """A new name for a changed copy (the header written with it names it)."""
        self.snapshot = uuid.uuid4().hex

    def replay(self, journal: Iterable[Mapping[str, Any]]) -> None:
        """Apply stored journal entries, oldest first."""
        keyed, figures = self.products, self.stock
        for entry in journal:
            for pid, key in entry["p"].items():
                if key is None:
                    keyed.pop(pid, None)
                else:
                    keyed[pid] = str(key)
            self.archived.update(str(a) for a in entry["a"])
            figures.update(entry["s"])


def product_key(row: Mapping[str, Any], field_name: str) -> str | None:
    """The key of a product row, or None when it has none (not ours)."""
    key = row.get(field_name)
    if key is None or key == "":
        return None
    return key if type(key) is str else str(key)


def product_id(row: Mapping[str, Any]) -> str:
    """The id of a product row as text."""
    ref = row.get("id")
    if ref is None:
        return ""
    return ref if type(ref) is str else str(ref)


def full_index(products: Iterable[Mapping[str, Any]], stock: dict[str, object],
               field_name: str) -> SourceIndex:
    """The index from a full read: every product with a key (and its name, for
    reports), the whole stock report."""
    index = SourceIndex(stock=stock)
    keyed, names = index.products, index.names
    for row in products:
        key = product_key(row, field_name)
        if key is not None:  # the filter asked for a key; an answer without one is not ours
            pid = product_id(row)
            keyed[pid] = key
            name = row.get("name")
            if type(name) is str:
                names[pid] = name
    index.renamed()
    return index


@dataclass
class WindowChange:
    """What one changed-since window did to the index."""

    products: int = 0  # product rows read
    stock: int = 0  # stock rows read
    keys: dict[str, str | None] = field(default_factory=dict)  # id -> new key (None: gone)
    archived: list[str] = field(default_factory=list)  # ids archived in the window
    figures: dict[str, object] = field(default_factory=dict)  # id -> new figure
    doubt: str | None = None  # why the index cannot be trusted: read everything now

    @property
    def changed(self) -> int:
        """Entries of the index the window changed."""
        return len(self.keys) + len(self.archived) + len(self.figures)

    def entry(self) -> dict[str, Any]:
        """The journal entry that replays this window."""
        return {"id": uuid.uuid4().hex, "p": self.keys, "a": self.archived, "s": self.figures}


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
        name = row.get("name")
        if type(name) is str:
            index.names[pid] = name
        if row.get("archived") is True:
            if pid not in archived and pid in keyed:
                archived.add(pid)
                out.archived.append(pid)
                figures[pid] = out.figures[pid] = 0  # MoySklad lists it with 0 as well
            continue
        if pid in archived:
            out.doubt = "a product came back from the archive"
            continue
        before = keyed.get(pid)
        if key == before:
            continue
        out.keys[pid] = key
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
            figures[pid] = out.figures[pid] = value
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
