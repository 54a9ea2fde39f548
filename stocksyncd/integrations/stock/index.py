"""The InSales variant index: every product's variants, kept between runs.

A full scan reads the whole shop; between full scans only products changed
since the last seen ``updated_at`` are read (``updated_since`` + ``from_id``
cursor), so a warm run costs about one request.

Edge cases, and how they are handled:

* The window's start comes from InSales' clock (products' ``updated_at`` and
  the Date header of the scan's first answer), never from ours, so clock skew
  between us and InSales does not shift it. It still starts ``overlap``
  seconds early, to catch changes that committed late with an earlier
  timestamp.
* A changed product is replaced as a whole, so a variant that changed its
  sku/barcode, or was removed from a product that still exists, is current
  after the next incremental scan.
* Deleted products do not appear in an incremental scan: they stay in the
  index until the next full refresh (``full_refresh``), or the next run after
  a write to one of their variants was refused (that marks the index stale).
* Our own writes bump ``updated_at``: those products come back in the next
  incremental scan, which also confirms what we wrote.
* Changes inside InSales that do not bump the product's ``updated_at`` are
  caught by the next full refresh at the latest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from stocksyncd.clients.insales import MAX_PER_PAGE, InSalesClient, Product, Variant
from stocksyncd.errors import ApiError, InvalidResponseError, StockSyncError

INDEX_SCOPE = "insales-index"
INDEX_VERSION = 1
DEFAULT_OVERLAP = 120.0
# Before any product: a full scan is a cursor scan from the beginning of time,
# which unlike page numbers neither skips nor repeats products changed mid-scan.
EPOCH = "1970-01-01T00:00:00.000+00:00"


class ScanFailed(StockSyncError):
    """A products page still failed after retries; the scan (and the run) is void."""

    def __init__(self, page: int, since: str, cause: ApiError) -> None:
        super().__init__(f"insales: products page {page} (updated_since={since}) failed: {cause}")
        self.page = page
        self.cause = cause


def _parse(ts: str) -> datetime | None:
    try:
        dt = datetime.fromisoformat(ts.strip())
    except ValueError:
        return None
    return dt if dt.tzinfo is not None else None


def latest(stamps: Iterable[str], start: str | None = None) -> str | None:
    """The newest of InSales' timestamps (compared as instants, whatever their offsets)."""
    best = start
    best_dt = _parse(start) if start else None
    for stamp in stamps:
        dt = _parse(stamp)
        if dt is not None and (best_dt is None or dt > best_dt):
            best, best_dt = stamp, dt
    return best


def window_start(watermark: str, overlap: float) -> str | None:
    """``updated_since`` for an incremental scan: the watermark minus the overlap."""
    dt = _parse(watermark)
    if dt is None:
        return None
    return (dt - timedelta(seconds=overlap)).isoformat(timespec="milliseconds")


@dataclass
class ScanResult:
    """Products read by one scan."""

    products: dict[int, Product]
    pages: int
    problems: list[str]
    server_time: str | None = None  # InSales' Date when the scan began


async def scan_products(
    client: InSalesClient, since: str | None, *, per_page: int = MAX_PER_PAGE
) -> ScanResult:
    """Read every product changed at or after ``since`` (None: every product).

    Stops on a short page, so an idle shop costs one request. Any page that
    fails after the transport's retries raises ``ScanFailed``.
    """
    cursor: str = since or EPOCH
    from_id: int | None = None
    products: dict[int, Product] = {}
    problems: list[str] = []
    page_no = 0
    server_time: str | None = None
    while True:
        page_no += 1
        try:
            page = await client.products_page(updated_since=cursor, from_id=from_id,
                                              per_page=per_page)
        except ApiError as exc:
            raise ScanFailed(page_no, cursor, exc) from exc
        for product in page.products:
            products[product.id] = product  # a product seen twice: the later copy is newer
        problems.extend(page.problems)
        server_time = server_time or page.server_time
        if page.raw_count < per_page:
            return ScanResult(products, page_no, problems, server_time)
        nxt = (page.last_updated_at, page.last_id)
        if nxt[0] is None or nxt[1] is None or nxt == (cursor, from_id):
            raise ScanFailed(page_no, cursor, InvalidResponseError(
                "insales", "the last product of a full page has no usable updated_at/id; "
                "cannot continue the cursor"))
        cursor, from_id = nxt[0], nxt[1]


@dataclass
class InSalesIndex:
    """Products by id, the newest ``updated_at`` seen, and when the last full scan ran."""

    products: dict[int, Product] = field(default_factory=dict)
    watermark: str | None = None  # InSales' clock
    full_at: float | None = None  # our wall clock (epoch seconds)
    stale: bool = False  # force a full scan next time

    def variants(self) -> Iterator[Variant]:
        """Every indexed variant."""
        for product in self.products.values():
            yield from product.variants

    def merge(self, scan: ScanResult) -> None:
        """Replace the scanned products wholesale; move the watermark on.

        The watermark is the newest of: the products' ``updated_at`` and the
        server's Date when the scan began (every change before that moment is
        in the scan), both on InSales' clock.
        """
        self.products.update(scan.products)
        stamps = [p.updated_at for p in scan.products.values()]
        if scan.server_time:
            stamps.append(scan.server_time)
        self.watermark = latest(stamps, self.watermark)

    def record_writes(self, writes: Iterable[tuple[int, int]], field_name: str) -> None:
        """Remember figures InSales accepted, so the next plan compares against them."""
        pending = dict(writes)
        if not pending:
            return
        for pid, product in list(self.products.items()):
            if not any(v.id in pending for v in product.variants):
                continue
            variants = []
            for v in product.variants:
                if v.id in pending:
                    v = _with_stock(v, field_name, pending[v.id])  # noqa: PLW2901
                variants.append(v)
            self.products[pid] = dataclasses.replace(product, variants=tuple(variants))

    # -- persistence (a compact JSON-able shape) ---------------------------
    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {
            "version": INDEX_VERSION,
            "watermark": self.watermark,
            "full_at": self.full_at,
            "stale": self.stale,
            "products": [
                [p.id, p.updated_at,
                 [[v.id, v.sku, v.barcode, v.quantity,
                   [[n, q] for n, q in v.warehouses.items()]] for v in p.variants]]
                for p in self.products.values()
            ],
        }

    @classmethod
    def from_json(cls, data: Any) -> InSalesIndex | None:
        """The index, or None when the stored value is missing, old or damaged."""
        if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
            return None
        try:
            products = {}
            for pid, updated, raw_variants in data["products"]:
                variants = tuple(
                    Variant(id=int(vid), product_id=int(pid), sku=sku, barcode=barcode,
                            quantity=qty, warehouses={int(n): q for n, q in wh})
                    for vid, sku, barcode, qty, wh in raw_variants
                )
                products[int(pid)] = Product(id=int(pid), updated_at=str(updated),
                                             variants=variants)
            return cls(products=products, watermark=data.get("watermark"),
                       full_at=data.get("full_at"), stale=bool(data.get("stale")))
        except (KeyError, TypeError, ValueError):
            return None


def _with_stock(variant: Variant, field_name: str, value: int) -> Variant:
    if field_name == "quantity":
        return dataclasses.replace(variant, quantity=float(value))
    n = int(field_name.removeprefix("quantity_at_warehouse"))
    return dataclasses.replace(variant, warehouses={**variant.warehouses, n: float(value)})


@dataclass
class RefreshReport:
    """How the index was brought up to date."""

    mode: str  # "full" | "incremental"
    pages: int
    products_read: int
    problems: list[str]
    reason: str = ""


def needs_full(index: InSalesIndex | None, now: float, full_every: float) -> str | None:
    """Why the next scan must be full, or None when an incremental one will do."""
    if index is None:
        return "no index yet"
    if index.stale:
        return "index marked stale"
    if index.full_at is None or index.watermark is None:
        return "index incomplete"
    if now < index.full_at:
        return "wall clock moved back"
    if now - index.full_at >= full_every:
        return "full refresh due"
    return None


async def refresh_index(
    client: InSalesClient,
    index: InSalesIndex | None,
    *,
    now: float,
    full_every: float,
    overlap: float = DEFAULT_OVERLAP,
) -> tuple[InSalesIndex, RefreshReport]:
    """Bring the index up to date: a full scan when due, else an incremental one.

    Raises ``ScanFailed`` with the index untouched when any page fails.
    """
    reason = needs_full(index, now, full_every)
    since = None
    if reason is None and index is not None and index.watermark is not None:
        since = window_start(index.watermark, overlap)
        if since is None:
            reason = "unreadable watermark"
    if reason is not None or index is None or since is None:
        scan = await scan_products(client, None)
        fresh = InSalesIndex(full_at=now)
        fresh.merge(scan)
        if fresh.watermark is None:
            fresh.watermark = EPOCH  # an empty shop: start incremental scans from the beginning
        return fresh, RefreshReport("full", scan.pages, len(scan.products), scan.problems,
                                    reason or "")
    scan = await scan_products(client, since)
    index.merge(scan)
    return index, RefreshReport("incremental", scan.pages, len(scan.products), scan.problems)
