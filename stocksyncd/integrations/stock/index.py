"""The InSales variant index: every product's variants, kept between runs.

A full scan reads the whole shop; between full scans only products changed
since the previous scan are read (``updated_since`` + ``from_id`` cursor), so
a warm run costs about one request.

Edge cases, and how they are handled:

* The window's start comes from InSales' clock, never from ours, so clock
  skew between us and InSales does not shift it: the watermark is the Date
  header of the previous scan's first answer (every change committed before
  that moment is in the scan), not the newest ``updated_at`` seen.
* The window starts ``overlap`` seconds (60 s by default) before that
  watermark, to catch a change stamped just before the scan began but
  committed after it: InSales aborts requests that run longer than 50 s
  (504), so a save is visible at most about 50 s after its timestamp.
* Our own writes bump ``updated_at``. Reading them back would cost about one
  page per 250 written products every run, while the figures we wrote are
  already in the index (``record_writes``). So after a run that wrote, the
  window of the next scans starts no earlier than the end of the second of
  the last write's answer (``written_until``: its Date header, truncated to
  the second, plus one second), which lies after every one of our writes.
  The price: a change made by someone else in InSales between our scan and
  the end of our writes (usually a few seconds; longer when the source is
  slow to read) is not seen by the incremental scans; the next full refresh
  (``full_refresh``, hourly by default) picks it up. The source stays
  authoritative for quantities, so at worst a figure edited by hand in those
  seconds is corrected an hour later; a key (sku/barcode) changed in those
  seconds matches an hour later. Any write InSales refuses marks the index
  stale, which forces a full re-read on the next run.
* A changed product is replaced as a whole, so a variant that changed its
  sku/barcode, or was removed from a product that still exists, is current
  after the next incremental scan.
* A full scan reads pages by number, several at once, until a short page
  (``scan_all_pages``). A product deleted on a page already read shifts the
  later pages by one and would hide a product; so before the scan's index is
  trusted (stored), InSales' trash is asked for products deleted since just
  before the scan (``removed_during``), and if there are any the run walks
  the cursor instead, which skips nothing, and writes what it missed.
  Products added mid-scan are listed last, and one read twice is kept once.
  The check is answered while the run's first writes are in flight, which
  saves a round trip: those writes were planned without a product the
  deletion hid, so a key that product shares with one of them was written
  although the shop holds it twice; the second pass reports it as a conflict.
* Deleted products do not appear in an incremental scan: they stay in the
  index until the next full refresh (``full_refresh``), or the next run after
  a write to one of their variants was refused (that marks the index stale).
* Changes inside InSales that do not bump the product's ``updated_at`` are
  caught by the next full refresh at the latest.
* Without a Date header (a proxy that drops it) the watermark falls back to
  the newest ``updated_at`` seen, and without one on the write answers our
  writes are simply read back: slower, never wrong.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from stocksyncd.clients.insales import (
    MAX_PER_PAGE,
    InSalesClient,
    Product,
    ProductPage,
    Variant,
)
from stocksyncd.errors import ApiError, InvalidResponseError, StockSyncError
from stocksyncd.http.transport import on_the_wire
from stocksyncd.integrations.stock.slices import in_slices

INDEX_SCOPE = "insales-index"
JOURNAL_SUFFIX = "#journal"  # key of an index's journal: the index key plus this
# A product in the journal weighs about as much as this many written figures.
PRODUCT_WEIGHT = 8
INDEX_VERSION = 1
DEFAULT_OVERLAP = 60.0  # InSales' 50 s request limit, plus slack (see above)
# Before any product: a full scan is a cursor scan from the beginning of time,
# which unlike page numbers neither skips nor repeats products changed mid-scan.
EPOCH = "1970-01-01T00:00:00.000+00:00"
EPOCH_DT = datetime(1970, 1, 1, tzinfo=UTC)


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


def after_second(server_time: str) -> str | None:
    """The first instant after the whole second ``server_time`` (a Date header) names.

    A Date header is truncated to the second, so the answer was sent before
    this instant, and so was every change the request made.
    """
    dt = _parse(server_time)
    if dt is None:
        return None
    whole = dt.replace(microsecond=0)
    return (whole + timedelta(seconds=1)).isoformat(timespec="milliseconds")


@dataclass
class ScanResult:
    """Products read by one scan."""

    products: dict[int, Product]
    pages: int
    problems: list[str]
    server_time: str | None = None  # InSales' Date when the scan began
    # For a scan by page number, what ``removed_during`` needs to tell whether a
    # product that left the listing mid-scan can have hidden another.
    in_id_order: bool = True  # the pages listed products by ascending id
    highest_id: int | None = None


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


async def scan_all_pages(
    client: InSalesClient, *, concurrency: int, expect_pages: int = 0,
    per_page: int = MAX_PER_PAGE, on_page: Callable[[list[Product]], None] | None = None,
) -> ScanResult:
    """Every product by page number, ``concurrency`` pages at a time (a full refresh).

    Reads until a short page, without asking ``count.json`` first (InSales'
    docs: the count is for sizing, not needed when paginating until a short
    page), which saves a round trip. A page goes out as soon as a slot is
    free; past ``expect_pages`` (what the previous index filled) only once
    the last expected page came back full, so that a shop of the same size
    costs no request past its end. Without that hint, up to
    ``concurrency - 1`` pages past the end go out; they are cancelled as
    soon as the short page is in.

    Page numbers, unlike the cursor, skip a product when one listed before
    it leaves the listing mid-scan (InSales' docs warn about it). Products
    added mid-scan are listed after the others, and a product read twice is
    kept once, so the result is complete once ``removed_during`` has found
    no product deleted while the pages were read. Any page failing after
    retries raises ``ScanFailed``. ``on_page`` gets each page's products once
    the next requests are out.
    """
    width = max(1, concurrency)

    async def fetch(page_no: int) -> ProductPage:
        try:
            return await client.products_page(page=page_no, per_page=per_page)
        except ApiError as exc:
            raise ScanFailed(page_no, "none (by page number)", exc) from exc

    read: dict[int, ProductPage] = {}
    pending: dict[asyncio.Future[ProductPage], int] = {}
    cancelled: list[asyncio.Future[ProductPage]] = []
    end: int | None = None  # the first page that came back short: none after it holds more
    next_page = 1
    arrived: list[ProductPage] = []
    try:
        while True:
            while len(pending) < width and end is None and (
                    next_page <= expect_pages or not expect_pages or expect_pages in read):
                pending[asyncio.ensure_future(fetch(next_page))] = next_page
                next_page += 1
            if end is not None:
                for task, page_no in list(pending.items()):
                    if page_no > end:  # past the end: nothing to read there
                        task.cancel()
                        cancelled.append(task)
                        del pending[task]
            if on_page is not None and arrived:
                await on_the_wire()  # the next pages first
                for page in arrived:
                    on_page(page.products)
            arrived.clear()
            if not pending:
                break
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            failures = sorted((pending[t], exc) for t in done
                              if isinstance(exc := t.exception(), ScanFailed))
            if failures:
                raise failures[0][1]
            for task in done:
                page_no = pending.pop(task)
                page = read[page_no] = task.result()
                arrived.append(page)
                if page.raw_count < per_page and (end is None or page_no < end):
                    end = page_no
    finally:
        for task in pending:
            task.cancel()
        if pending or cancelled:
            await asyncio.gather(*pending, *cancelled, return_exceptions=True)
    products: dict[int, Product] = {}
    problems: list[str] = []
    in_order, previous = True, -1
    for page_no in sorted(read):
        page = read[page_no]
        problems.extend(page.problems)
        for product in page.products:
            in_order = in_order and product.id >= previous
            previous = product.id
            products[product.id] = product
    # The earliest answer: nothing read can predate it.
    stamps = [t for page in read.values() if (t := page.server_time) and _parse(t) is not None]
    server_time = min(stamps, key=lambda t: _parse(t) or EPOCH_DT) if stamps else None
    return ScanResult(products, len(read), problems, server_time, in_id_order=in_order,
                      highest_id=max(products, default=None))


async def removed_during(
    client: InSalesClient, scan: ScanResult, overlap: float = DEFAULT_OVERLAP
) -> str | None:
    """Why a scan by page number may have missed a product, or None when it cannot have.

    One request: the trash (``deleted``) since ``overlap`` seconds before
    the scan began. A product deleted then and listed before the last one
    read may have shifted a later one onto a page already read. Deliberately
    cautious: the deletion may as well have come just before the scan, and
    a full page of deleted products counts as such a deletion. Also when
    the pages did not list products by id (then any change could shift
    them) or the scan has no usable Date to start the window from.
    """
    if not scan.in_id_order:
        return "InSales did not list the pages by product id"
    if scan.highest_id is None:
        return None  # nothing listed, nothing to skip
    since = window_start(scan.server_time, overlap) if scan.server_time else None
    if since is None:
        return "the scan has no Date to look for deletions from"
    try:
        trash = await client.products_page(updated_since=since, deleted=True)
    except ApiError as exc:
        return f"looking for products deleted during the scan failed: {exc}"
    gone = sorted(p.id for p in trash.products if p.id <= scan.highest_id)
    if gone:
        return (f"{len(gone)} product(s) deleted in InSales while its pages were read "
                f"(product {gone[0]})")
    if trash.raw_count > len(trash.products) or trash.raw_count >= MAX_PER_PAGE:
        return "the deleted products could not all be read"
    return None


@dataclass
class InSalesIndex:
    """Products by id, where the next incremental scan starts, when the last full scan ran."""

    products: dict[int, Product] = field(default_factory=dict)
    watermark: str | None = None  # InSales' clock: when the last scan began
    full_at: float | None = None  # our wall clock (epoch seconds)
    stale: bool = False  # force a full scan next time
    written_until: str | None = None  # InSales' clock: after our last accepted write
    snapshot: str | None = None  # names the stored copy, for the journal of later runs
    journal: list[JournalEntry] = field(default_factory=list)  # runs applied since that copy
    # The stock field its variants were read for: only that warehouse's figures
    # are read, so an index made for another field cannot be used.
    field: str | None = None
    # Products in the stored copy, when it was loaded without them (``header``):
    # how many pages the next full scan can expect.
    size_hint: int = 0

    def variants(self) -> Iterator[Variant]:
        """Every indexed variant."""
        for product in self.products.values():
            yield from product.variants

    def merge(self, scan: ScanResult) -> None:
        """Replace the scanned products wholesale; move the watermark on.

        The watermark is the server's Date when the scan began: every change
        committed before that moment is in the scan. Products changed during
        the scan carry later stamps, and the next window (which starts before
        the watermark) reads them again, so they are never skipped. Only
        when the answer had no Date does the newest ``updated_at`` seen stand
        in for it.
        """
        self.products.update(scan.products)
        if scan.server_time and _parse(scan.server_time) is not None:
            self.watermark = latest([scan.server_time], self.watermark)
        else:
            self.watermark = latest((p.updated_at for p in scan.products.values()),
                                    self.watermark)

    def since(self, overlap: float) -> str | None:
        """``updated_since`` for the next incremental scan (None: the watermark is unusable).

        ``overlap`` seconds before the watermark, but never before the end of
        our last writes (see the module notes for what that trades).
        """
        if self.watermark is None:
            return None
        start = window_start(self.watermark, overlap)
        if start is None or self.written_until is None:
            return start
        return latest([self.written_until], start)

    def mark_written(self, server_time: str | None) -> None:
        """After accepted writes: the next scans need not read them back.

        ``server_time`` is the latest Date among the write answers.
        """
        if not server_time:
            return
        boundary = after_second(server_time)
        if boundary is not None:
            self.written_until = latest([boundary], self.written_until)

    def owners(self) -> dict[int, int]:
        """Variant id -> id of the product holding it."""
        return {v.id: pid for pid, product in self.products.items() for v in product.variants}

    def record_writes(self, writes: Iterable[tuple[int, int]], field_name: str,
                      owner: Mapping[int, int] | None = None) -> None:
        """Remember figures InSales accepted, so the next plan compares against them.

        ``owner`` is ``owners()`` when the caller keeps it current already.
        """
        pending = dict(writes)
        if not pending:
            return
        if owner is None:
            owner = self.owners()
        for pid in {owner[vid] for vid in pending if vid in owner}:
            product = self.products[pid]
            self.products[pid] = product._replace(variants=tuple(
                _with_stock(v, field_name, pending[v.id]) if v.id in pending else v
                for v in product.variants
            ))

    def apply(self, entry: JournalEntry, owner: dict[int, int] | None = None) -> None:
        """Redo one run on a stored copy: the products it read, then its writes.

        ``owner`` (``owners()``, kept current here) saves rebuilding it for
        each of several entries.
        """
        self.products.update((p.id, p) for p in entry.products)
        if owner is not None:
            owner.update((v.id, p.id) for p in entry.products for v in p.variants)
        self.record_writes(entry.writes, entry.field, owner)
        # The run's own end state, not a merge: every entry holds it whole.
        self.watermark = entry.watermark
        self.written_until = entry.written_until
        self.stale = entry.stale

    def entry(self, read: Iterable[Product], writes: Iterable[tuple[int, int]],
              field_name: str) -> JournalEntry:
        """This run for the journal: ``read`` products, then ``writes``, then where it ended."""
        return JournalEntry(products=list(read), writes=list(writes), field=field_name,
                            watermark=self.watermark, written_until=self.written_until,
                            stale=self.stale)

    # -- persistence (a compact JSON-able shape) ---------------------------
    def to_json(self, products: list[Any] | None = None) -> dict[str, Any]:
        """The stored form (``products``: theirs, when ``products_json`` made it already)."""
        return {
            "version": INDEX_VERSION,
            "snapshot": self.snapshot,
            "field": self.field,
            "watermark": self.watermark,
            "full_at": self.full_at,
            "stale": self.stale,
            "written_until": self.written_until,
            "products": _products_json(self.products.values()) if products is None else products,
        }

    async def products_json(self, size: int) -> list[Any]:
        """The products' stored form, ``size`` products at a time with a look at the
        event loop in between (milliseconds of CPU per thousand)."""
        out: list[Any] = []
        async for part in in_slices(list(self.products.values()), size):
            out += _products_json(part)
        return out

    @classmethod
    def header(cls, data: Any) -> InSalesIndex | None:
        """The stored index without its products: enough to tell whether a full scan is due.

        Parsing the products is most of the cost of loading (tens of
        milliseconds at 10k variants), and a full scan replaces them anyway.
        """
        index = cls.from_json(data, products=False)
        if index is not None:
            index.size_hint = len(data["products"])
        return index

    @classmethod
    def from_json(cls, data: Any, *, products: bool = True) -> InSalesIndex | None:
        """The index, or None when the stored value is missing, old or damaged."""
        if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
            return None
        try:
            if not isinstance(data["products"], list):
                return None
            read = _products_from_json(data["products"]) if products else {}
            written_until = data.get("written_until")
            snapshot = data.get("snapshot")
            field_name = data.get("field")
            return cls(products=read, watermark=data.get("watermark"),
                       full_at=data.get("full_at"), stale=bool(data.get("stale")),
                       written_until=written_until if isinstance(written_until, str) else None,
                       snapshot=snapshot if isinstance(snapshot, str) else None,
                       field=field_name if isinstance(field_name, str) else None)
        except (KeyError, TypeError, ValueError):
            return None

    @classmethod
    def load(cls, data: Any, journal: Any = None) -> InSalesIndex | None:
        """The stored copy with the journal of later runs applied, when it is this copy's."""
        index = cls.from_json(data)
        stored = IndexJournal.from_json(journal)
        if index is not None and stored is not None and index.snapshot is not None and (
                stored.snapshot == index.snapshot):
            owner: dict[int, int] | None = None  # built once, when a write first needs it
            for entry in stored.entries:
                if entry.writes and owner is None:
                    owner = index.owners()
                index.apply(entry, owner)
            index.journal = stored.entries
        return index

    def journal_weight(self) -> int:
        """How much the journal holds, in rough units of one written figure."""
        return sum(1 + PRODUCT_WEIGHT * len(e.products) + len(e.writes) for e in self.journal)


def _products_json(products: Iterable[Product]) -> list[Any]:
    return [
        [p.id, p.updated_at,
         # (n, q) tuples are written as JSON arrays, as lists would be
         [[v.id, v.sku, v.barcode, v.quantity, list(v.warehouses.items())]
          for v in p.variants], p.title]
        for p in products
    ]


def _products_from_json(raw: Any) -> dict[int, Product]:
    """Products from their stored form; raises KeyError/TypeError/ValueError when damaged."""
    products = {}
    for entry in raw:
        # Copies stored before titles were kept have three elements.
        raw_pid, updated, raw_variants, *rest = entry
        pid = int(raw_pid)
        title = rest[0] if rest and isinstance(rest[0], str) else ""
        products[pid] = Product(pid, str(updated), tuple(
            Variant(int(vid), pid, sku, barcode, qty,
                    {int(n): q for n, q in wh} if wh else {})
            for vid, sku, barcode, qty, wh in raw_variants
        ), title)
    return products


def _stock_field(name: Any) -> bool:
    return isinstance(name, str) and (
        name == "quantity" or name.removeprefix("quantity_at_warehouse").isdigit())


@dataclass
class JournalEntry:
    """One run since the stored copy: the products its scan read, then its writes.

    ``watermark``, ``written_until`` and ``stale`` are where the run left the
    index, so applying the entries in order ends where the last run ended.
    """

    products: list[Product]
    writes: list[tuple[int, int]]  # (variant id, figure written)
    field: str  # "quantity" | "quantity_at_warehouseN"
    watermark: str | None = None
    written_until: str | None = None
    stale: bool = False

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {"products": _products_json(self.products), "writes": self.writes,
                "field": self.field, "watermark": self.watermark,
                "written_until": self.written_until, "stale": self.stale}

    @classmethod
    def from_json(cls, data: Any) -> JournalEntry:
        """The entry; raises KeyError/TypeError/ValueError when damaged."""
        if not _stock_field(data["field"]):
            raise ValueError(f"not a stock field: {data['field']!r}")
        watermark, until = data.get("watermark"), data.get("written_until")
        return cls(products=list(_products_from_json(data["products"]).values()),
                   writes=[(int(vid), int(value)) for vid, value in data["writes"]],
                   field=data["field"],
                   watermark=watermark if isinstance(watermark, str) else None,
                   written_until=until if isinstance(until, str) else None,
                   stale=bool(data.get("stale")))


@dataclass
class IndexJournal:
    """The runs since the stored copy ``snapshot`` was saved, oldest first.

    A run stores the whole index only after a full scan, or when the journal
    has grown to a good part of it (see the stock pipeline); every other run
    adds a small entry here. Loading applies the entries to the copy they name; a
    journal of any other copy (an older one, or one a failed save never
    replaced) is ignored: the runs it held then look undone, their writes
    are planned and sent again unchanged (writes are idempotent), and the
    products they read are read again, as their window starts earlier.
    """

    snapshot: str
    entries: list[JournalEntry]

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return {"version": INDEX_VERSION, "snapshot": self.snapshot,
                "entries": [e.to_json() for e in self.entries]}

    @classmethod
    def from_json(cls, data: Any) -> IndexJournal | None:
        """The journal, or None when missing or damaged."""
        if not isinstance(data, dict) or data.get("version") != INDEX_VERSION:
            return None
        snapshot = data.get("snapshot")
        if not isinstance(snapshot, str):
            return None
        try:
            entries = [JournalEntry.from_json(e) for e in data["entries"]]
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        return cls(snapshot=snapshot, entries=entries)


def _with_stock(variant: Variant, field_name: str, value: int) -> Variant:
    if field_name == "quantity":
        return variant._replace(quantity=float(value))
    n = int(field_name.removeprefix("quantity_at_warehouse"))
    return variant._replace(warehouses={**variant.warehouses, n: float(value)})


@dataclass
class RefreshReport:
    """How the index was brought up to date."""

    mode: str  # "full" | "incremental"
    pages: int
    products_read: int
    problems: list[str]
    reason: str = ""
    read: dict[int, Product] = field(default_factory=dict)  # by an incremental scan
    # A full scan by page number, complete only once ``removed_during`` says so:
    # until then the index must not be stored.
    unchecked: ScanResult | None = None


def needs_full(
    index: InSalesIndex | None, now: float, full_every: float, field: str | None = None
) -> str | None:
    """Why the next scan must be full, or None when an incremental one will do.

    ``field``: the stock field the run reads (None: any will do).
    """
    if index is None:
        return "no index yet"
    if field is not None and index.field != field:
        return "index made for another stock field"
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
    concurrency: int = 1,
    field: str | None = None,
    on_read: Callable[[list[Product]], None] | None = None,
) -> tuple[InSalesIndex, RefreshReport]:
    """Bring the index up to date: a full scan when due, else an incremental one.

    ``on_read`` is handed the products of each page of a full scan by page
    number as it arrives (the caller's chance to work while the rest are in
    flight).

    A full scan reads pages by number, ``concurrency`` at a time, when
    ``concurrency`` > 1: the report's ``unchecked`` then asks the caller to
    run ``removed_during`` before trusting (and storing) the index, and
    ``rescan`` when it finds a reason not to. Otherwise a full scan walks the
    cursor. Raises ``ScanFailed`` with the index untouched when any page
    fails. ``field`` is the stock field ``client`` reads (an index made for
    another one is rebuilt).
    """
    reason = needs_full(index, now, full_every, field)
    since = None
    if reason is None and index is not None and index.watermark is not None:
        since = index.since(overlap)
        if since is None:
            reason = "unreadable watermark"
    if reason is not None or index is None or since is None:
        if concurrency <= 1:
            return await rescan(client, now=now, field=field, reason=reason or "")
        # The previous index, however old, says how many pages to expect.
        expect = 0 if index is None else math.ceil(
            max(len(index.products), index.size_hint) / MAX_PER_PAGE)
        scan = await scan_all_pages(client, concurrency=concurrency, expect_pages=expect,
                                    on_page=on_read)
        fresh, report = _fresh(scan, now, field, reason or "")
        report.unchecked = scan
        return fresh, report
    scan = await scan_products(client, since)
    index.merge(scan)
    return index, RefreshReport("incremental", scan.pages, len(scan.products), scan.problems,
                                read=scan.products)


async def rescan(
    client: InSalesClient, *, now: float, field: str | None, reason: str
) -> tuple[InSalesIndex, RefreshReport]:
    """A full scan that walks the cursor: slower than pages, complete whatever happens."""
    return _fresh(await scan_products(client, None), now, field, reason)


def _fresh(scan: ScanResult, now: float, field: str | None,
           reason: str) -> tuple[InSalesIndex, RefreshReport]:
    fresh = InSalesIndex(full_at=now, field=field)
    fresh.merge(scan)
    if fresh.watermark is None:
        fresh.watermark = EPOCH  # an empty shop: start incremental scans from the beginning
    return fresh, RefreshReport("full", scan.pages, len(scan.products), scan.problems, reason)
