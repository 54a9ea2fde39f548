"""A faithful InSales admin API: products with variants, group updates, the 500/5 min budget.

Follows ``shared/api/insales.md``: Basic auth (401 otherwise), bare-array
products.json with ``page``/``per_page`` (max 250) and the ``updated_since``
+ ``from_id`` cursor ordered by (updated_at, id) and listing by id without
it, a trash (``delete_product`` moves a product there, marked ``archived``
and with ``updated_at`` bumped; ``with_deleted`` lists it too, ``deleted``
only the trash), ``updated_at`` bumped on every write, variants_group_update
that queues the update and answers 200 ``[]`` at once (more than 100 refused
with 422), the queue applied ``queue_delay`` seconds later (an item for a
variant that is gone is dropped silently, and ``drop_queued`` drops the next
items silently too), or with ``reject_trashed`` the per-variant answer some
accounts may give, refusing variants of trashed products,
``API-Usage-Limit: n/500`` on every answer and 503 (or 429) with
``Retry-After`` once the window's budget is spent. ``committed_late``
makes changes that show with a stamp from the past, as a save does whose
transaction commits well after it set ``updated_at``. Time comes from
the injected clock, so tests move through windows without sleeping.

Products are kept by id plus a sorted (updated_ms, id) list, so listing is
O(log n + page) and a write moves one entry: fine for 100k variants.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import heapq
import itertools
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from typing import Any

from aiohttp import web

from stocksyncd.clock import SYSTEM_CLOCK, Clock
from stocksyncd.simulators.base import Fault, Simulator, json_response

_SHOP_TZ = timezone(timedelta(hours=3))  # InSales answers in the shop's zone (Moscow)


def format_time(ms: int) -> str:
    """``2023-11-22T14:24:30.000+03:00`` from epoch milliseconds."""
    dt = datetime.fromtimestamp(ms / 1000, tz=_SHOP_TZ)
    return dt.isoformat(timespec="milliseconds")


def _flag(value: str | None) -> bool:
    return value is not None and value.strip().lower() in {"1", "true", "yes"}


def parse_time(text: str) -> int | None:
    """Epoch milliseconds from ISO 8601 or ``2017-09-04 00:00:00 +03:00``; None if unreadable."""
    text = text.strip()
    candidates = [text, text.replace(" +", "+").replace(" -", "-")]
    for candidate in candidates:
        try:
            dt = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=_SHOP_TZ)
        return math.floor(dt.timestamp() * 1000)
    return None


@dataclass
class LaterFault(Fault):
    """A fault that lets the first ``after`` matching requests through (e.g. fail page 2 on)."""

    after: int = 0


class InSalesSimulator(Simulator):
    """One InSales shop."""

    api = "insales"

    def __init__(
        self,
        *,
        api_key: str = "key",
        password: str = "secret",
        clock: Clock = SYSTEM_CLOCK,
        latency: float = 0.0,
        limit: int = 500,
        window: float = 300.0,
        limit_status: int = 503,
        queue_delay: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self.password = password
        self.limit = limit
        self.window = window
        self.limit_status = limit_status  # 503 per the docs, 429 per the newer gem
        self.products: dict[int, dict[str, Any]] = {}
        self._variant_product: dict[int, int] = {}
        self._updated_ms: dict[int, int] = {}
        self._order: list[tuple[int, int]] = []  # (updated_ms, product id), sorted
        self._ids: list[int] = []  # product ids, sorted
        self.trash: dict[int, dict[str, Any]] = {}  # deleted products, as with_deleted lists them
        self._trash_order: list[tuple[int, int]] = []  # (updated_ms, product id), sorted
        self._next_product = 100_000
        self._next_variant = 500_000
        self._window_start: float | None = None
        self.used = 0
        self.refused = 0  # requests answered with the over-budget status
        # variants_group_update's queue: (when due, order, variant id, fields)
        self.queue_delay = queue_delay
        self.queue: list[tuple[float, int, Any, dict[str, Any]]] = []
        self._queued = 0
        self.drop_queued = 0  # the next this many queued items vanish silently
        self.dropped: list[int] = []  # variant ids whose queued update vanished
        # Answer per variant (the undocumented older shape), refusing variants of
        # trashed products, instead of queueing everything and answering [].
        self.reject_trashed = False
        self._trashed_variant: dict[int, int] = {}  # variant id -> trashed product id
        self._stamp_back_ms = 0  # see committed_late
        super().__init__(clock=clock, latency=latency)

    # -- routes ------------------------------------------------------------
    def setup_routes(self, app: web.Application) -> None:
        """products.json, products/count.json, variants_group_update.json, account.json."""
        app.router.add_get("/admin/products.json", self._list_products)
        app.router.add_get("/admin/products/count.json", self._count_products)
        app.router.add_get("/admin/products/{id:\\d+}.json", self._get_product)
        app.router.add_put("/admin/products/variants_group_update.json", self._group_update)
        app.router.add_get("/admin/account.json", self._account)

    def _take_fault(self, request: web.Request) -> Fault | None:
        for fault in self.faults:
            if not isinstance(fault, LaterFault) or fault.after <= 0:
                continue
            if fault.match and fault.match not in request.path:
                continue
            if fault.method and fault.method.upper() != request.method:
                continue
            fault.after -= 1
            return None
        return super()._take_fault(request)

    # -- auth and budget -----------------------------------------------------
    def _gate(self, request: web.Request) -> web.Response | None:
        """401 on bad credentials, the over-budget answer, or None to go on."""
        expected = base64.b64encode(f"{self.api_key}:{self.password}".encode()).decode()
        if request.headers.get("Authorization", "") != f"Basic {expected}":
            return json_response({"errors": ["401 Unauthorized"]}, status=401,
                                 headers={"WWW-Authenticate": 'Basic realm="Application"'})
        self.process_queue()
        now = self.clock.monotonic()
        if self._window_start is None or now >= self._window_start + self.window:
            # The window starts at the first request of a series.
            self._window_start = now
            self.used = 0
        if self.used >= self.limit:
            self.refused += 1
            retry = max(1, math.ceil(self._window_start + self.window - now))
            return json_response(
                {"errors": ["Too many requests"]}, status=self.limit_status,
                headers={"Retry-After": str(retry), **self._usage()},
            )
        self.used += 1
        return None

    def _usage(self) -> dict[str, str]:
        # Date from the simulator's clock, like updated_at: one server, one clock.
        return {"API-Usage-Limit": f"{self.used}/{self.limit}",
                "Date": formatdate(self.clock.time(), usegmt=True)}

    # -- handlers --------------------------------------------------------------
    async def _account(self, request: web.Request) -> web.Response:
        if (refused := self._gate(request)) is not None:
            return refused
        return json_response({"id": 1, "title": "Simulated shop"}, headers=self._usage())

    async def _count_products(self, request: web.Request) -> web.Response:
        if (refused := self._gate(request)) is not None:
            return refused
        return json_response({"count": len(self.products)}, headers=self._usage())

    async def _get_product(self, request: web.Request) -> web.Response:
        if (refused := self._gate(request)) is not None:
            return refused
        pid = int(request.match_info["id"])
        product = self.products.get(pid) or self.trash.get(pid)
        if product is None:
            return json_response({"errors": ["Not found"]}, status=404, headers=self._usage())
        return json_response(product, headers=self._usage())

    async def _list_products(self, request: web.Request) -> web.Response:
        if (refused := self._gate(request)) is not None:
            return refused
        q = request.query
        try:
            page = max(1, int(q.get("page", "1")))
            per_page = min(250, max(1, int(q.get("per_page", "100"))))
            from_id = int(q["from_id"]) if q.get("from_id") else None
        except ValueError:
            return json_response({"errors": ["bad paging parameters"]}, status=400,
                                 headers=self._usage())
        offset = (page - 1) * per_page
        orders, ids, rendered = self._listing(q)
        since_text = q.get("updated_since")
        if since_text:
            since = parse_time(since_text)
            if since is None:
                return json_response({"errors": ["updated_since: invalid date"]}, status=400,
                                     headers=self._usage())
            # Items at exactly ``since`` with id <= from_id are skipped.
            start_key = (since, from_id + 1 if from_id is not None else -1)
            # Each list is sorted: merge only the part this page can reach.
            parts = [itertools.islice(order, start, start + offset + per_page)
                     for order in orders if (start := bisect.bisect_left(order, start_key))
                     < len(order)]
            listed = [pid for _, pid in itertools.islice(heapq.merge(*parts), offset,
                                                         offset + per_page)]
        else:
            listed = ids()[offset:offset + per_page]
        return json_response([rendered[pid] for pid in listed], headers=self._usage())

    def _listing(self, q: Any) -> tuple[list[list[tuple[int, int]]],
                                        Callable[[], list[int]], dict[int, dict[str, Any]]]:
        """(cursor orders, ids, products) of what the query lists: the shop, the trash, or both."""
        if _flag(q.get("with_deleted")):
            both = {**self.products, **self.trash}
            return [self._order, self._trash_order], lambda: sorted(both), both
        if _flag(q.get("deleted")):
            return [self._trash_order], lambda: sorted(self.trash), self.trash
        return [self._order], lambda: self._ids, self.products

    async def _group_update(self, request: web.Request) -> web.Response:
        if (refused := self._gate(request)) is not None:
            return refused
        try:
            body = await request.json()
        except ValueError:
            return json_response({"errors": ["invalid JSON"]}, status=400, headers=self._usage())
        variants = body.get("variants") if isinstance(body, dict) else None
        if not isinstance(variants, list):
            return json_response({"errors": {"variants": ["is required"]}}, status=422,
                                 headers=self._usage())
        if len(variants) > 100:
            return json_response(
                {"errors": {"variants": ["no more than 100 variants per request"]}},
                status=422, headers=self._usage(),
            )
        results: list[dict[str, Any]] = []
        for entry in variants:
            vid = entry.get("id") if isinstance(entry, dict) else None
            if self.reject_trashed and vid in self._trashed_variant:
                results.append({"id": vid, "status": "error",
                                "errors": [f"product {self._trashed_variant[vid]} is deleted"]})
                continue
            self._queued += 1
            self.queue.append((self.clock.time() + self.queue_delay, self._queued, vid,
                               dict(entry) if isinstance(entry, dict) else {}))
            results.append({"id": vid, "status": "ok"})
        self.process_queue()
        return json_response(results if self.reject_trashed else [], headers=self._usage())

    def process_queue(self, *, everything: bool = False) -> None:
        """Apply the queued updates that are due (``everything``: all of them now)."""
        now = self.clock.time()
        while self.queue and (everything or self.queue[0][0] <= now):
            _, _, vid, entry = self.queue.pop(0)
            if self.drop_queued > 0:
                self.drop_queued -= 1
                self.dropped.append(vid)
                continue
            self._apply_entry(entry)

    def _apply_entry(self, entry: dict[str, Any]) -> None:
        """One queued update; one InSales cannot apply is dropped, as the queue does."""
        vid = entry.get("id")
        if not isinstance(vid, int) or vid not in self._variant_product:
            return
        fields = {k: v for k, v in entry.items() if k != "id"}
        for name, value in fields.items():
            if name != "quantity" and not name.startswith("quantity_at_warehouse"):
                continue
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if value is not None and not numeric:
                return
        self.update_variant(vid, **fields)

    # -- data --------------------------------------------------------------------
    def _now_ms(self) -> int:
        return math.floor(self.clock.time() * 1000)

    @contextlib.contextmanager
    def committed_late(self, seconds: float) -> Iterator[None]:
        """Changes made inside show now, stamped ``seconds`` ago (whole seconds, as InSales').

        A save sets ``updated_at`` when it starts and shows when its
        transaction commits; InSales aborts a request after 50 s, so a
        change can show up to 50 s after its stamp.
        """
        self._stamp_back_ms = math.ceil(seconds * 1000)
        try:
            yield
        finally:
            self._stamp_back_ms = 0

    def _touch(self, pid: int) -> None:
        """Bump a product's updated_at and keep the cursor order."""
        old = self._updated_ms.get(pid)
        if old is not None:
            i = bisect.bisect_left(self._order, (old, pid))
            if i < len(self._order) and self._order[i] == (old, pid):
                self._order.pop(i)
        now = self._now_ms() - self._stamp_back_ms
        if self._stamp_back_ms:
            now -= now % 1000
        self._updated_ms[pid] = now
        self.products[pid]["updated_at"] = format_time(now)
        bisect.insort(self._order, (now, pid))

    def add_product(
        self,
        variants: list[dict[str, Any]],
        *,
        title: str = "Product",
        product_id: int | None = None,
    ) -> int:
        """Add a product; each variant dict may set sku, barcode, quantity, id,
        ``quantity_at_warehouseN`` (or ``warehouses`` as a list of quantities).
        Returns the product id."""
        pid = product_id if product_id is not None else self._next_product
        self._next_product = max(self._next_product, pid) + 1
        if pid in self.products or pid in self.trash:
            raise ValueError(f"product {pid} exists")
        rendered = []
        for given in variants:
            spec = dict(given)
            vid = spec.pop("id", None) or self._next_variant
            self._next_variant = max(self._next_variant, vid) + 1
            warehouses = spec.pop("warehouses", None)
            variant: dict[str, Any] = {
                "id": vid, "product_id": pid, "title": spec.pop("title", None),
                "sku": spec.pop("sku", None), "barcode": spec.pop("barcode", None),
                "quantity": spec.pop("quantity", None), "price": "100.0",
            }
            if warehouses is not None:
                for n, q in enumerate(warehouses):
                    variant[f"quantity_at_warehouse{n}"] = q
                variant["quantity"] = sum(float(q or 0) for q in warehouses)
            variant.update(spec)
            rendered.append(variant)
            self._variant_product[vid] = pid
        self.products[pid] = {"id": pid, "title": title, "archived": False, "is_hidden": False,
                              "variants": rendered}
        bisect.insort(self._ids, pid)
        self._touch(pid)
        return pid

    def delete_product(self, pid: int) -> None:
        """Move a product to the trash, as InSales does: it leaves the listing and its
        variants can no longer be written; ``with_deleted``/``deleted`` list it, marked
        ``archived``, with ``updated_at`` bumped to the moment of deletion."""
        self._touch(pid)
        product = self.products.pop(pid)
        for v in product["variants"]:
            self._variant_product.pop(v["id"], None)
            self._trashed_variant[v["id"]] = pid
        ms = self._updated_ms.pop(pid)
        self._order.remove((ms, pid))
        self._ids.remove(pid)
        product["archived"] = True
        self.trash[pid] = product
        bisect.insort(self._trash_order, (ms, pid))

    def restore_product(self, pid: int) -> None:
        """Take a product back out of the trash, as the back office does (bumps updated_at)."""
        product = self.trash.pop(pid)
        ms = next(m for m, p in self._trash_order if p == pid)
        self._trash_order.remove((ms, pid))
        product["archived"] = False
        self.products[pid] = product
        for v in product["variants"]:
            self._trashed_variant.pop(v["id"], None)
            self._variant_product[v["id"]] = pid
        bisect.insort(self._ids, pid)
        self._updated_ms[pid] = ms
        bisect.insort(self._order, (ms, pid))
        self._touch(pid)

    def variant(self, variant_id: int) -> dict[str, Any]:
        """The stored variant (a live dict: do not modify, use ``update_variant``)."""
        pid = self._variant_product[variant_id]
        for v in self.products[pid]["variants"]:
            if v["id"] == variant_id:
                return dict(v)
        raise KeyError(variant_id)

    def variants(self) -> list[dict[str, Any]]:
        """Every variant (copies), product by product."""
        return [dict(v) for pid in self._ids for v in self.products[pid]["variants"]]

    def update_variant(self, variant_id: int, **fields: Any) -> None:
        """Change fields of a variant as InSales would (bumps the product's updated_at).

        Writing a warehouse quantity recomputes the total ``quantity``.
        """
        pid = self._variant_product[variant_id]
        for v in self.products[pid]["variants"]:
            if v["id"] != variant_id:
                continue
            v.update(fields)
            wh = [k for k in v if k.startswith("quantity_at_warehouse")]
            if wh and any(k.startswith("quantity_at_warehouse") for k in fields):
                v["quantity"] = sum(float(v[k] or 0) for k in wh)
        self._touch(pid)

    def set_quantity(self, variant_id: int, quantity: Any, *, warehouse: int | None = None) -> None:
        """Set a variant's stock (total, or in one warehouse)."""
        name = "quantity" if warehouse is None else f"quantity_at_warehouse{warehouse}"
        self.update_variant(variant_id, **{name: quantity})

    def catalogue(
        self,
        n_variants: int,
        seed: int = 1,
        *,
        duplicate_barcodes: int = 0,
        with_warehouses: bool = False,
    ) -> list[int]:
        """Fill the shop with ``n_variants`` variants, deterministically for ``seed``.

        Products carry 1-4 variants; sku ``SKU-000001``..., 13-digit barcodes
        starting with ``46``. About 3% have no barcode, 1% no sku, 1% an
        untracked quantity (null). ``duplicate_barcodes`` pairs of variants
        share a barcode. Returns the variant ids in creation order.
        """
        rng = random.Random(seed)
        created: list[int] = []
        i = 0
        while i < n_variants:
            size = min(rng.randint(1, 4), n_variants - i)
            specs = []
            for _ in range(size):
                i += 1
                roll = rng.random()
                quantity: float | None = rng.randint(0, 50)
                spec: dict[str, Any] = {
                    "sku": None if roll < 0.01 else f"SKU-{i:06d}",
                    "barcode": None if 0.01 <= roll < 0.04 else f"46{i:011d}",
                }
                if 0.04 <= roll < 0.05:
                    quantity = None
                if with_warehouses:
                    spec["warehouses"] = [quantity or 0, 0]
                    if quantity is None:
                        spec["quantity"] = None
                else:
                    spec["quantity"] = quantity
                specs.append(spec)
            pid = self.add_product(specs, title=f"Product {i}")
            created.extend(v["id"] for v in self.products[pid]["variants"])
        with_barcode = [vid for vid in created if self.variant(vid)["barcode"]]
        for n in range(min(duplicate_barcodes, len(with_barcode) // 2)):
            a, b = with_barcode[2 * n], with_barcode[-1 - 2 * n]
            self.update_variant(b, barcode=self.variant(a)["barcode"])
        return created
