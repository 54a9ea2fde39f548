"""The InSales index in the state store, in pieces, so a run stores only what changed.

Under the index key a small header (where the next scan starts, when the
last full scan ran, how many pieces, which copy this is); beside it the
products in pieces (a product goes to piece ``id % pieces``, about 250
products, 40 KB, each) and the pending writes. A run stores the pieces whose
products it read, the pending writes when they changed, and the header
(the watermark moves every run): a quiet minute stores the header only.

Every header names its copy. A replica keeps the index in memory between
runs and uses it as long as the stored header names the copy it stored or
loaded last; another name means another replica ran meanwhile, and the
index is loaded again. Before pieces are rewritten the header is stored
without a name: a run cut off midway leaves no copy to use, and the next
run reads the shop in full rather than trust a mix of pieces.
"""

from __future__ import annotations

import math
import uuid
from typing import TYPE_CHECKING, Any

from stocksyncd.clients.insales import Product, Variant
from stocksyncd.integrations.stock.index import InSalesIndex
from stocksyncd.integrations.stock.pending import Pending

if TYPE_CHECKING:
    from stocksyncd.state.api import StateStore

INDEX_SCOPE = "insales-index"
FORMAT = 2  # 1 was the whole index as one value, with a journal beside it
PIECE = 250  # products per piece when a full scan lays them out


class StoredIndex:
    """One integration's index in the state store (see the module notes)."""

    def __init__(self, state: StateStore, key: str) -> None:
        self.state = state
        self.key = key
        self.pieces = 0  # pieces of the stored copy, so a smaller layout drops the rest

    async def header(self) -> dict[str, Any] | None:
        """The stored header, or None when there is none of this format."""
        data = await self.state.get_value(INDEX_SCOPE, self.key)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return None
        self.pieces = _pieces(data)
        return data

    @staticmethod
    def holds(header: dict[str, Any] | None, index: InSalesIndex | None) -> bool:
        """Whether ``index`` (in memory) is the copy ``header`` names."""
        return (index is not None and header is not None and index.copy is not None
                and header.get("copy") == index.copy)

    async def load(self, header: dict[str, Any] | None) -> InSalesIndex | None:
        """The copy ``header`` names, or None when there is no whole copy to load."""
        pieces = _pieces(header)
        if header is None or not isinstance(header.get("copy"), str) or not pieces:
            return None
        products: dict[int, Product] = {}
        try:
            for n in range(pieces):
                products.update(_products_from_json(
                    await self.state.get_value(INDEX_SCOPE, f"{self.key}#{n}")))
            watermark, full_at, field_name = (header.get("watermark"), header.get("full_at"),
                                              header.get("field"))
            index = InSalesIndex(
                products=products,
                watermark=watermark if isinstance(watermark, str) else None,
                full_at=float(full_at) if isinstance(full_at, int | float) else None,
                copy=header["copy"], chunks=pieces,
                field=field_name if isinstance(field_name, str) else None)
        except (KeyError, TypeError, ValueError):
            return None
        index.pending = await self.load_pending()
        return index

    async def load_pending(self) -> dict[int, Pending]:
        """The stored pending writes (none when missing or damaged)."""
        raw = await self.state.get_value(INDEX_SCOPE, f"{self.key}#pending")
        try:
            rows = [Pending.from_json(row) for row in raw] if isinstance(raw, list) else []
        except (TypeError, ValueError):
            return {}
        return {p.variant_id: p for p in rows}

    async def save(self, index: InSalesIndex, *, full: bool) -> None:
        """Store what changed since the copy ``index`` came from (everything when ``full``)."""
        if full:
            index.chunks = max(1, math.ceil(len(index.products) / PIECE))
        count = index.chunks
        changed = set(range(count)) if full else {pid % count for pid in index.dirty}
        if changed or index.pending_dirty:
            await self._header(index, None)
        if changed:
            pieces: dict[int, list[Product]] = {n: [] for n in changed}
            for pid, product in index.products.items():
                piece = pieces.get(pid % count)
                if piece is not None:
                    piece.append(product)
            for n in sorted(changed):
                await self.state.set_value(INDEX_SCOPE, f"{self.key}#{n}",
                                           _products_json(pieces[n]))
            for n in range(count, self.pieces):
                await self.state.delete_value(INDEX_SCOPE, f"{self.key}#{n}")
        if index.pending_dirty:
            await self.state.set_value(INDEX_SCOPE, f"{self.key}#pending",
                                       [p.to_json() for p in index.pending.values()])
        copy = uuid.uuid4().hex
        await self._header(index, copy)
        self.pieces = count
        index.copy, index.pending_dirty = copy, False
        index.dirty.clear()

    async def _header(self, index: InSalesIndex, copy: str | None) -> None:
        await self.state.set_value(INDEX_SCOPE, self.key, {
            "format": FORMAT, "copy": copy, "field": index.field,
            "watermark": index.watermark, "full_at": index.full_at,
            "pieces": index.chunks, "products": len(index.products),
        })


def _pieces(header: dict[str, Any] | None) -> int:
    pieces = None if header is None else header.get("pieces")
    return pieces if type(pieces) is int and pieces > 0 else 0


def _products_json(products: list[Product]) -> list[Any]:
    return [
        [p.id, p.updated_at,
         [[v.id, v.sku, v.barcode, v.quantity, list(v.warehouses.items())]
          for v in p.variants], p.title]
        for p in products
    ]


def _products_from_json(raw: Any) -> dict[int, Product]:
    """Products from their stored form; raises KeyError/TypeError/ValueError when damaged."""
    products = {}
    for entry in raw:
        # The title (for skip lists) is the fourth element; pieces stored before
        # titles were kept have three.
        raw_pid, updated, raw_variants, *rest = entry
        pid = int(raw_pid)
        title = rest[0] if rest and isinstance(rest[0], str) else ""
        products[pid] = Product(pid, str(updated), tuple(
            Variant(int(vid), pid, sku, barcode, qty,
                    {int(n): q for n, q in wh} if wh else {})
            for vid, sku, barcode, qty, wh in raw_variants
        ), title)
    return products
