"""The InSales variant index: every product's variants, kept between runs.

A full scan reads the whole shop; between full scans only products changed
or deleted since the previous scan are read (``updated_since`` + ``from_id``
cursor with ``with_deleted``), so a quiet minute costs one request.

Edge cases, and how they are handled:

* The window's start comes from InSales' clock, never from ours, so clock
  skew between us and InSales does not shift it: the watermark is when the
  previous scan began by InSales' clock (its first answer's Date less that
  request's round trip: every change committed before that moment is in
  the scan), not the newest ``updated_at`` seen.
* The window starts ``overlap`` seconds (51 s by default) before that
  watermark, to catch a change stamped before the scan began but committed
  after it: InSales aborts requests that run longer than 50 s (504), so a
  save is visible at most 50 s after its timestamp, and ``updated_at`` is
  in whole seconds (one more).
* No blind window: every scan starts from the previous scan's watermark,
  whatever the run wrote meanwhile, so an edit made in InSales at any moment
  (during our writes too) is read by the next scan. Our own writes are read
  back the same way, and that read is what confirms them (``pending``).
  The pipeline scans once the source is read, right before planning, so
  the writes land just after the watermark: with runs a minute apart the
  next run's window holds them and the one after no longer does (each
  written product is read back once, not twice).
* Deletions: the incremental scan lists the trash too (``with_deleted``); a
  product deleted since the watermark (its ``updated_at`` moves to the
  moment of deletion) comes back marked ``archived`` and leaves the index.
  A product restored from the trash is listed again, as changed.
* A changed product is replaced as a whole, so a variant that changed its
  sku/barcode, or was removed from a product that still exists, is current
  after the next incremental scan.
* A full scan reads pages by number, several at once, until a short page
  (``scan_all_pages``); the first one asks ``count.json`` for the number of
  pages, later ones take the previous index's size, so no page is sent only
  to be cancelled. A product deleted on a page already read shifts the
  later pages by one and would hide a product; so before anything is planned
  from that scan, InSales' trash is asked for products deleted since just
  before it (``removed_during``), and if there are any the shop is read
  again by cursor, which skips nothing. Products added mid-scan are listed
  last, and one read twice is kept once.
* Changes inside InSales that do not bump the product's ``updated_at`` are
  caught by the next full refresh at the latest.
* Without a Date header (a proxy that drops it) the watermark falls back to
  the newest ``updated_at`` seen.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from stocksyncd.clients.insales import (
    MAX_PER_PAGE,
    InSalesClient,
    Product,
    ProductPage,
)
from stocksyncd.errors import ApiError, InvalidResponseError, StockSyncError
from stocksyncd.integrations.stock.pending import Pending, Verdicts, judge

DEFAULT_OVERLAP = 51.0  # InSales' 50 s request limit, plus updated_at's whole second
# Before any product: a full scan is a cursor scan from the beginning of time,
# which unlike page numbers neither skips nor repeats products changed mid-scan.
EPOCH = "1970-01-01T00:00:00.000+00:00"
EPOCH_DT = datetime(1970, 1, 1, tzinfo=UTC)


class ScanFailed(StockSyncError):
    """A products page still failed after retries; the scan (and the run) is void."""

    def __init__(self, page: int, since: str, cause: ApiError) -> None:
        what = (f"products page {page} (updated_since={since})" if page
                else "counting products (count.json)")
        super().__init__(f"insales: {what} failed: {cause}")
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
    deleted: set[int] = field(default_factory=set)  # trashed products listed (with_deleted)
    # For a scan by page number, what ``removed_during`` needs to tell whether a
    # product that left the listing mid-scan can have hidden another.
    in_id_order: bool = True  # the pages listed products by ascending id
    highest_id: int | None = None


async def scan_products(
    client: InSalesClient, since: str | None, *, per_page: int = MAX_PER_PAGE,
    with_deleted: bool = False,
) -> ScanResult:
    """Read every product changed at or after ``since`` (None: every product).

    ``with_deleted``: products trashed since then too (in ``deleted``).
    Stops on a short page, so an idle shop costs one request. Any page that
    fails after the transport's retries raises ``ScanFailed``.
    """
    cursor: str = since or EPOCH
    from_id: int | None = None
    products: dict[int, Product] = {}
    deleted: set[int] = set()
    problems: list[str] = []
    page_no = 0
    server_time: str | None = None
    while True:
        page_no += 1
        try:
            page = await client.products_page(updated_since=cursor, from_id=from_id,
                                              per_page=per_page, with_deleted=with_deleted)
        except ApiError as exc:
            raise ScanFailed(page_no, cursor, exc) from exc
        # A product seen twice: the later copy is newer (deleted, or back again).
        for product in page.products:
            products[product.id] = product
            deleted.discard(product.id)
        for pid in page.deleted:
            products.pop(pid, None)
            deleted.add(pid)
        problems.extend(page.problems)
        server_time = server_time or page.server_time
        if page.raw_count < per_page:
            return ScanResult(products, page_no, problems, server_time, deleted=deleted)
        nxt = (page.last_updated_at, page.last_id)
        if nxt[0] is None or nxt[1] is None or nxt == (cursor, from_id):
            raise ScanFailed(page_no, cursor, InvalidResponseError(
                "insales", "the last product of a full page has no usable updated_at/id; "
                "cannot continue the cursor"))
        cursor, from_id = nxt[0], nxt[1]


async def scan_all_pages(
    client: InSalesClient, *, concurrency: int, expect_pages: int,
    per_page: int = MAX_PER_PAGE,
) -> ScanResult:
    """Every product by page number, ``concurrency`` pages at a time (a full refresh).

    Pages 1..``expect_pages`` go out as slots free up; past them one at a
    time, and only once the page before came back full, so a shop of the
    expected size costs no request past its end. Every page sent is read
    (its usage figure counts for the shop's budget): none is cancelled
    because an earlier one came back short.

    Page numbers, unlike the cursor, skip a product when one listed before
    it leaves the listing mid-scan (InSales' docs warn about it). Products
    added mid-scan are listed after the others, and a product read twice is
    kept once, so the result is complete once ``removed_during`` has found
    no product deleted while the pages were read. Any page failing after
    retries raises ``ScanFailed``.
    """
    width = max(1, concurrency)
    expect = max(1, expect_pages)

    async def fetch(page_no: int) -> ProductPage:
        try:
            return await client.products_page(page=page_no, per_page=per_page)
        except ApiError as exc:
            raise ScanFailed(page_no, "none (by page number)", exc) from exc

    read: dict[int, ProductPage] = {}
    pending: dict[asyncio.Future[ProductPage], int] = {}
    end: int | None = None  # the first page that came back short: none after it holds more
    next_page = 1
    try:
        while True:
            while len(pending) < width and end is None and (
                    next_page <= expect or next_page - 1 in read):
                pending[asyncio.ensure_future(fetch(next_page))] = next_page
                next_page += 1
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
                if page.raw_count < per_page and (end is None or page_no < end):
                    end = page_no
    finally:
        for task in pending:  # only after a failure: the scan is void anyway
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
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
    gone = sorted(pid for pid in trash.deleted if pid <= scan.highest_id)
    if gone:
        return (f"{len(gone)} product(s) deleted in InSales while its pages were read "
                f"(product {gone[0]})")
    if trash.raw_count > len(trash.deleted) or trash.raw_count >= MAX_PER_PAGE:
        return "the deleted products could not all be read"
    return None


@dataclass
class InSalesIndex:
    """Products by id, the writes InSales has not shown yet, and where the next scan starts."""

    products: dict[int, Product] = field(default_factory=dict)
    watermark: str | None = None  # InSales' clock: when the last scan began
    full_at: float | None = None  # our wall clock (epoch seconds)
    pending: dict[int, Pending] = field(default_factory=dict)  # by variant id
    # For the stored copy (``stock.stored``): which copy this is, and what changed since.
    copy: str | None = None
    chunks: int = 1
    dirty: set[int] = field(default_factory=set)  # product ids changed since the stored copy
    pending_dirty: bool = False
    size_hint: int = 0  # products in the stored copy, when it was not loaded
    # The stock field its variants were read for: only that warehouse's figures
    # are read, so an index made for another field cannot be used.
    field: str | None = None  # last: it shadows dataclasses.field in the class body

    def merge(self, scan: ScanResult, verdicts: Verdicts) -> None:
        """Take a scan: its products replace theirs, its deleted ones leave; the watermark moves.

        The watermark is the server's Date when the scan began: every change
        committed before that moment is in the scan. Products changed during
        the scan carry later stamps, and the next window (which starts before
        the watermark) reads them again, so they are never skipped. Only
        when the answer had no Date does the newest ``updated_at`` seen stand
        in for it.
        """
        self.take(scan.products.values(), verdicts)
        for pid in scan.deleted:
            self.remove(pid, verdicts)
        if scan.server_time and _parse(scan.server_time) is not None:
            self.watermark = latest([scan.server_time], self.watermark)
        else:
            self.watermark = latest((p.updated_at for p in scan.products.values()),
                                    self.watermark)

    def take(self, products: Iterable[Product], verdicts: Verdicts) -> None:
        """Products as just read: they replace the indexed ones and judge pending writes."""
        read = {p.id: p for p in products}
        held = self.products
        # Read again unchanged (the scans' windows overlap): nothing to store.
        self.dirty.update(pid for pid, p in read.items() if held.get(pid) != p)
        held.update(read)
        self._judge(read, verdicts)

    def remove(self, pid: int, verdicts: Verdicts) -> None:
        """A product InSales no longer has (deleted, or in the trash)."""
        if self.products.pop(pid, None) is not None:
            self.dirty.add(pid)
        self._judge({pid: None}, verdicts)

    def adopt(self, pending: dict[int, Pending], verdicts: Verdicts) -> None:
        """Pending writes of an earlier index, judged against this (fresh) one."""
        self.pending = dict(pending)
        self.pending_dirty = True
        self._judge({p.product_id: self.products.get(p.product_id)
                     for p in pending.values()}, verdicts)

    def _judge(self, read: Mapping[int, Product | None], verdicts: Verdicts) -> None:
        if not self.pending:
            return
        field_name = self.field or "quantity"
        decided = [p.variant_id for p in self.pending.values()
                   if p.product_id in read and judge(p, read[p.product_id], field_name, verdicts)]
        for vid in decided:
            del self.pending[vid]
        if decided:
            self.pending_dirty = True

    def overdue(self, now: float, bound: float) -> list[Pending]:
        """Pending writes sent at least ``bound`` seconds ago."""
        return [p for p in self.pending.values() if now - p.sent_at >= bound]

    def expire(self, overdue: Iterable[Pending], verdicts: Verdicts) -> None:
        """Give up waiting for ``overdue`` writes that are still pending.

        A first write is written again (``verdicts.rewrite``); a rewrite is
        reported (``verdicts.unconfirmed``), and the planner starts over.
        """
        for p in overdue:
            if self.pending.pop(p.variant_id, None) is None:
                continue  # the read by id decided it
            self.pending_dirty = True
            (verdicts.rewrite if p.attempt == 1 else verdicts.unconfirmed).append(p)

    def owners(self, variant_ids: Iterable[int]) -> dict[int, Product]:
        """The product holding each of ``variant_ids`` that is indexed, in one pass."""
        wanted = set(variant_ids)
        found: dict[int, Product] = {}
        if wanted:
            for product in self.products.values():
                for v in product.variants:
                    if v.id in wanted:
                        found[v.id] = product
        return found

    def since(self, overlap: float) -> str | None:
        """``updated_since`` for the next incremental scan (None: the watermark is unusable)."""
        if self.watermark is None:
            return None
        return window_start(self.watermark, overlap)


@dataclass
class RefreshReport:
    """How the index was brought up to date."""

    mode: str  # "full" | "incremental"
    pages: int
    products_read: int
    problems: list[str]
    reason: str = ""
    deleted: int = 0  # products that left the index (deleted in InSales)


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
    verdicts: Verdicts,
    *,
    now: float,
    full: str | None,
    overlap: float = DEFAULT_OVERLAP,
    concurrency: int = 1,
    field: str | None = None,
    pending: dict[int, Pending] | None = None,
) -> tuple[InSalesIndex, RefreshReport]:
    """Bring the index up to date: a full scan when ``full`` says why (the caller
    asks ``needs_full``), else an incremental one.

    Either way the result is complete and checked: a full scan by page
    number (``concurrency`` > 1) is followed by ``removed_during``, and by a
    cursor scan when that finds a reason to doubt it. Raises ``ScanFailed``
    with the index untouched when any page fails. ``field`` is the stock
    field ``client`` reads (an index made for another one is rebuilt);
    ``pending``: the writes to judge when there is no ``index`` to hold them.
    """
    since = None if index is None else index.since(overlap)
    if full is None and index is not None and since is not None:
        scan = await scan_products(client, since, with_deleted=True)
        gone = sum(1 for pid in scan.deleted if pid in index.products)
        index.merge(scan, verdicts)
        return index, RefreshReport("incremental", scan.pages, len(scan.products),
                                    scan.problems, deleted=gone)
    reason = full or "unreadable watermark"
    if concurrency <= 1:
        scan = await scan_products(client, None)
    else:
        if index is not None and (index.products or index.size_hint):
            expect = math.ceil(max(len(index.products), index.size_hint) / MAX_PER_PAGE)
        else:
            expect = math.ceil(await _count(client) / MAX_PER_PAGE)
        scan = await scan_all_pages(client, concurrency=concurrency, expect_pages=expect)
        doubt = await removed_during(client, scan, overlap)
        if doubt is not None:
            reason = f"{reason}; {doubt}: read again by cursor"
            scan = await scan_products(client, None)
    fresh = InSalesIndex(full_at=now, field=field)
    fresh.merge(scan, Verdicts())
    fresh.dirty = set(fresh.products)
    if fresh.watermark is None:
        fresh.watermark = EPOCH  # an empty shop: start incremental scans from the beginning
    old = index.products.keys() if index is not None else ()
    fresh.adopt(index.pending if index is not None else pending or {}, verdicts)
    return fresh, RefreshReport("full", scan.pages, len(scan.products), scan.problems, reason,
                                deleted=sum(1 for pid in old if pid not in fresh.products))


async def _count(client: InSalesClient) -> int:
    """Products in the shop, to know how many pages a first full scan reads."""
    try:
        return await client.products_count()
    except ApiError as exc:
        raise ScanFailed(0, "", exc) from exc
