"""A MoySklad JSON API 1.2 stand-in: products, the short stock report, its rules and limits.

What it enforces, as the real service documents it: ``Accept-Encoding: gzip``
(else 415 with an empty body), the Bearer token (else 401 with an ``errors``
body, code 1056), ``limit``/``offset`` paging with ``meta.nextHref``, and a
45-unit / 3-second budget with at most 5 parallel requests (429 with
``X-Lognex-Retry-After`` in milliseconds, codes 1049 and 1073).

Incremental reads: ``report/stock/all/current?changedSince=`` lists the items
whose stock changed at or after that Moscow-time moment with their current
figure (zeros included; items deleted or archived in the window as 0; at most
24 h back, older is refused), and ``entity/product?filter=updated>=`` the
products changed since. MoySklad's clock is its own: ``clock_offset`` sets it
apart from the client's, and every answer carries it in the ``Date`` header.
"""

from __future__ import annotations

import random
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import formatdate
from typing import Any

from aiohttp import web

from stocksyncd.clock import SYSTEM_CLOCK, Clock
from stocksyncd.simulators.base import Simulator, json_response

PREFIX = "/api/remap/1.2"
MSK = timezone(timedelta(hours=3))  # MoySklad dates are Moscow time
DEFAULT_STORE = "00000000-0000-4000-8000-000000000001"
KEY_FIELDS = ("article", "code", "externalCode")
REPORT_WEIGHT = 5
CHANGED_SINCE_LIMIT = 24 * 3600.0  # the report looks at most 24 h back


@dataclass
class StockRow:
    """Stock of one product in one store."""

    stock: float = 0.0
    reserve: float = 0.0
    in_transit: float = 0.0
    changed: float = 0.0  # epoch seconds of the last change

    def value(self, stock_type: str) -> float:
        """The figure the report shows for ``stock_type``."""
        if stock_type == "stock":
            return self.stock
        if stock_type == "freeStock":
            return self.stock - self.reserve
        if stock_type == "reserve":
            return self.reserve
        if stock_type == "inTransit":
            return self.in_transit
        return self.stock - self.reserve + self.in_transit  # quantity


def _errors(code: int, text: str) -> dict[str, Any]:
    return {"errors": [{"error": text, "code": code,
                        "moreInfo": f"https://dev.moysklad.ru/doc/api/remap/1.2/#error_{code}"}]}


def _split_filter(raw: str) -> list[str]:
    """Conditions of a ``filter`` value: ``;`` separates them, ``\\;`` is a literal."""
    parts, current, i = [], "", 0
    while i < len(raw):
        if raw[i] == "\\" and i + 1 < len(raw) and raw[i + 1] == ";":
            current += ";"
            i += 2
            continue
        if raw[i] == ";":
            parts.append(current)
            current = ""
        else:
            current += raw[i]
        i += 1
    parts.append(current)
    return [p for p in parts if p]


def _msk(value: float) -> str:
    return datetime.fromtimestamp(value, MSK).strftime("%Y-%m-%d %H:%M:%S.000")


def _parse_msk(value: str) -> float:
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=MSK).timestamp()
        except ValueError:
            continue
    raise ValueError(value)


class MoySkladSimulator(Simulator):
    """Products (each modification its own product) and per-store stock."""

    api = "moysklad"

    def __init__(
        self,
        *,
        token: str = "moysklad-test-token",
        clock: Clock = SYSTEM_CLOCK,
        latency: float = 0.0,
        window_units: float = 45.0,
        window_seconds: float = 3.0,
        request_weight: float = 2.0,
        max_parallel: int = 5,
        clock_offset: float = 0.0,
    ) -> None:
        self.token = token
        self.clock_offset = clock_offset  # MoySklad's clock minus the client's
        self.window_units = window_units
        self.window_seconds = window_seconds
        self.request_weight = request_weight
        self.max_parallel = max_parallel
        self.products: dict[str, dict[str, Any]] = {}  # id -> product JSON (insertion order)
        self.stock: dict[str, dict[str, StockRow]] = {}  # store id -> product id -> row
        self.deleted: dict[str, float] = {}  # id -> when it was deleted (server time)
        self.rejected_429 = 0
        self.in_flight = 0
        self._spent: deque[tuple[float, float]] = deque()
        self._version = 0
        self._filtered: dict[str, list[dict[str, Any]]] = {}
        super().__init__(clock=clock, latency=latency)

    @property
    def base_url(self) -> str:
        """The URL to configure as ``base_url``."""
        return self.url + PREFIX

    def server_time(self) -> float:
        """Epoch seconds on MoySklad's own clock."""
        return self.clock.time() + self.clock_offset

    # -- data ------------------------------------------------------------------
    def add_product(
        self,
        article: str | None = None,
        *,
        stock: float | None = None,
        reserve: float = 0.0,
        in_transit: float = 0.0,
        store: str = DEFAULT_STORE,
        code: str | None = None,
        external_code: str | None = None,
        name: str | None = None,
        id: str | None = None,
        archived: bool = False,
        barcode: str | None = None,
    ) -> str:
        """Add a product; ``stock=None`` leaves it out of the stock report (never moved)."""
        pid = id or str(uuid.uuid4())
        product: dict[str, Any] = {
            "meta": {"href": f"{self.base_url}/entity/product/{pid}", "type": "product",
                     "mediaType": "application/json"},
            "id": pid,
            "name": name or f"Product {article or pid[:8]}",
            "code": code if code is not None else pid[:8],
            "externalCode": external_code if external_code is not None else pid.replace("-", ""),
            "archived": archived,
            "updated": _msk(self.server_time()),
            "variantsCount": 0,
            "pathName": "",
        }
        if article:  # fields without a value are omitted
            product["article"] = article
        if barcode:
            product["barcodes"] = [{"ean13": barcode}]
        self.products[pid] = product
        if stock is not None:
            self.set_stock(pid, stock, reserve=reserve, in_transit=in_transit, store=store)
        self._touch()
        return pid

    def update_product(self, pid: str, **fields: Any) -> None:
        """Change product fields; a value of None removes the field."""
        product = self.products[pid]
        for field, value in fields.items():
            if value is None:
                product.pop(field, None)
            else:
                product[field] = value
        product["updated"] = _msk(self.server_time())
        self._touch()

    def remove_product(self, pid: str) -> None:
        """Delete a product and its stock (a changed-since report shows it as 0)."""
        if self.products.pop(pid, None) is not None:
            self.deleted[pid] = self.server_time()
        for rows in self.stock.values():
            rows.pop(pid, None)
        self._touch()

    def set_stock(
        self, pid: str, stock: float, *, reserve: float = 0.0, in_transit: float = 0.0,
        store: str = DEFAULT_STORE, at: float | None = None,
    ) -> None:
        """Set a product's stock in one store.

        ``at``: the moment (MoySklad's clock) the change is dated, when earlier
        than now: MoySklad recalculates stock asynchronously, so a change can
        reach the report after a read that began later than its date.
        """
        self.stock.setdefault(store, {})[pid] = StockRow(
            stock, reserve, in_transit, self.server_time() if at is None else at
        )

    def find(self, article: str) -> str:
        """The id of the product with ``article``."""
        return next(pid for pid, p in self.products.items() if p.get("article") == article)

    def catalogue(
        self,
        n: int,
        seed: int = 0,
        *,
        keys: Sequence[str] | None = None,
        key_field: str = "article",
        max_stock: int = 50,
        unstocked_share: float = 0.05,
        fractional_share: float = 0.0,
    ) -> list[str]:
        """Add ``n`` products deterministically; returns their keys in order.

        ``keys`` supplies the key values to use first (e.g. SKUs of an InSales
        catalogue, so the two overlap); the rest are generated.
        """
        rng = random.Random(seed)
        given = list(keys or [])
        out: list[str] = []
        for i in range(n):
            key = given[i] if i < len(given) else f"MS-{seed}-{i:06d}"
            pid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            kwargs: dict[str, Any] = {"article": None, "code": None, "external_code": None}
            kwargs[{"article": "article", "code": "code",
                    "externalCode": "external_code"}[key_field]] = key
            if rng.random() < unstocked_share:
                stock: float | None = None
            elif rng.random() < fractional_share:
                stock = rng.randint(0, max_stock) + 0.5
            else:
                stock = float(rng.randint(0, max_stock))
            self.add_product(id=pid, stock=stock, name=f"Item {key}", **kwargs)
            out.append(key)
        return out

    def _touch(self) -> None:
        self._version += 1
        self._filtered.clear()

    # -- HTTP ------------------------------------------------------------------
    def setup_routes(self, app: web.Application) -> None:
        """The two endpoints the stock sync reads."""
        app.router.add_get(PREFIX + "/entity/product", self._guarded(self._products, 1))
        app.router.add_get(PREFIX + "/report/stock/all/current",
                           self._guarded(self._stock_current, REPORT_WEIGHT))

    def throttle(self, times: int = 1, retry_after_ms: int = 1000, code: int = 1049) -> None:
        """Answer the next ``times`` requests with a 429, as when the budget is gone."""
        self.inject(
            status=429, times=times, body=_errors(code, "Превышено ограничение на количество "
                                                        "запросов в единицу времени"),
            headers={"X-Lognex-Retry-After": str(retry_after_ms),
                     "X-RateLimit-Limit": str(int(self.window_units)),
                     "X-Lognex-Retry-TimeInterval": str(int(self.window_seconds * 1000))},
        )

    def _limit_headers(self, now: float) -> dict[str, str]:
        used = sum(w for _, w in self._spent)
        reset = 0.0
        if self._spent:
            reset = max(0.0, self._spent[0][0] + self.window_seconds - now)
        return {
            "Date": formatdate(self.server_time(), usegmt=True),  # MoySklad's own clock
            "X-RateLimit-Limit": str(int(self.window_units)),
            "X-RateLimit-Remaining": str(max(0, int(self.window_units - used))),
            "X-Lognex-Retry-TimeInterval": str(int(self.window_seconds * 1000)),
            "X-Lognex-Reset": str(int(reset * 1000)),
        }

    def _guarded(self, handler: Any, min_weight: float) -> Any:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            encoding = request.headers.get("Accept-Encoding", "").strip().lower()
            if encoding != "gzip":
                return web.Response(status=415)  # empty body, as documented
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return json_response(
                    _errors(1056, "Ошибка аутентификации: Неправильный пароль или имя "
                                  "пользователя или ключ авторизации"),
                    status=401, gzip_body=True,
                )
            now = self.clock.monotonic()
            while self._spent and self._spent[0][0] <= now - self.window_seconds:
                self._spent.popleft()
            weight = max(self.request_weight, min_weight)
            used = sum(w for _, w in self._spent)
            if used + weight > self.window_units:
                self.rejected_429 += 1
                wait = self._spent[0][0] + self.window_seconds - now
                headers = self._limit_headers(now)
                headers["X-Lognex-Retry-After"] = str(max(1, int(wait * 1000)))
                return json_response(
                    _errors(1049, "Превышено ограничение на количество запросов в единицу "
                                  "времени"), status=429, headers=headers, gzip_body=True,
                )
            if self.in_flight >= self.max_parallel:
                self.rejected_429 += 1
                return json_response(
                    _errors(1073, "Превышено ограничение на количество параллельных запросов"),
                    status=429, headers=self._limit_headers(now), gzip_body=True,
                )
            self._spent.append((now, weight))
            self.in_flight += 1
            try:
                data, status = handler(request)
            finally:
                self.in_flight -= 1
            return json_response(data, status=status, headers=self._limit_headers(now),
                                 gzip_body=True)

        return wrapped

    def _matching(self, raw_filter: str) -> list[dict[str, Any]] | None:
        cached = self._filtered.get(raw_filter)
        if cached is not None:
            return cached
        conds = _split_filter(raw_filter)
        # Archived products are left out unless ``archived=`` asks for them;
        # ``archived=true;archived=false`` gives both.
        archived = {c.partition("=")[2] == "true" for c in conds if c.startswith("archived=")}
        rows = [p for p in self.products.values() if p["archived"] in (archived or {False})]
        for cond in conds:
            if cond.startswith("archived="):
                if cond not in ("archived=true", "archived=false"):
                    return None
                continue
            if ">=" in cond:
                field, value = cond.split(">=", 1)
                if field != "updated":
                    return None
                since = _parse_msk(value)
                rows = [p for p in rows if _parse_msk(p["updated"]) >= since]
            elif "!=" in cond:
                field, value = cond.split("!=", 1)
                if field not in KEY_FIELDS:
                    return None
                rows = [p for p in rows if p.get(field, "") != value]
            elif "=" in cond:
                field, value = cond.split("=", 1)
                if field not in KEY_FIELDS:
                    return None
                rows = [p for p in rows if p.get(field, "") == value]
            else:
                return None
        self._filtered[raw_filter] = rows
        return rows

    def _products(self, request: web.Request) -> tuple[Any, int]:
        query = request.query
        try:
            limit = int(query.get("limit", "1000"))
            offset = int(query.get("offset", "0"))
        except ValueError:
            return _errors(1002, "Неверное значение параметра limit/offset"), 400
        if not 1 <= limit <= 1000 or offset < 0:
            return _errors(1002, "limit must be 1..1000 and offset >= 0"), 400
        raw_filter = query.get("filter", "")
        try:
            rows = self._matching(raw_filter)
        except ValueError:
            rows = None
        if rows is None:
            return _errors(1014, f"Неверное значение параметра фильтрации '{raw_filter}'"), 400
        href = f"{self.base_url}/entity/product"
        meta: dict[str, Any] = {
            "href": str(request.url), "type": "product",
            "mediaType": "application/json", "size": len(rows), "limit": limit,
            "offset": offset,
        }
        extra = f"filter={raw_filter}&" if raw_filter else ""
        if offset + limit < len(rows):
            meta["nextHref"] = f"{href}?{extra}limit={limit}&offset={offset + limit}"
        if offset > 0:
            meta["previousHref"] = f"{href}?{extra}limit={limit}&offset={max(0, offset - limit)}"
        return {
            "context": {"employee": {"meta": {"href": f"{self.base_url}/context/employee",
                                              "type": "employee"}}},
            "meta": meta,
            "rows": rows[offset:offset + limit],
        }, 200

    def _stock_current(self, request: web.Request) -> tuple[Any, int]:
        query = request.query
        stock_type = query.get("stockType", "stock")
        if stock_type not in ("stock", "freeStock", "quantity", "reserve", "inTransit"):
            return _errors(1002, f"Неверное значение параметра stockType '{stock_type}'"), 400
        zero_lines = "zeroLines" in query.get("include", "").split(",")
        ids: set[str] | None = None
        store: str | None = None
        for cond in _split_filter(query.get("filter", "")):
            field, _, wanted = cond.partition("=")
            if field == "assortmentId":
                ids = set(wanted.split(","))
            elif field == "storeId":
                store = wanted
            else:
                return _errors(1014, f"Неверный параметр фильтрации '{field}'"), 400
        since: float | None = None
        if "changedSince" in query:
            try:
                since = _parse_msk(query["changedSince"])
            except ValueError:
                return _errors(1014, "Неверное значение changedSince"), 400
            if since < self.server_time() - CHANGED_SINCE_LIMIT:
                return _errors(1002, "Значение параметра changedSince не может быть "
                                     "раньше, чем 24 часа назад"), 400
        stores = [store] if store else list(self.stock)
        totals: dict[str, float] = {}
        changed: dict[str, float] = {}
        for sid in stores:
            for pid, row in self.stock.get(sid, {}).items():
                totals[pid] = totals.get(pid, 0.0) + row.value(stock_type)
                changed[pid] = max(changed.get(pid, 0.0), row.changed)
        out = []
        for pid, value in totals.items():
            if ids is not None and pid not in ids:
                continue
            if since is not None:
                if changed[pid] < since:
                    continue
            elif not zero_lines and value == 0:
                continue
            if since is not None and self._gone(pid):
                continue  # listed below, as 0
            number: float | int = int(value) if value == int(value) else value
            out.append({"assortmentId": pid, stock_type: number})
        if since is not None:
            # Items deleted or archived in the window are listed with 0.
            gone = [pid for pid, when in self.deleted.items() if when >= since]
            gone += [pid for pid, p in self.products.items()
                     if p["archived"] and (_parse_msk(p["updated"]) >= since
                                           or changed.get(pid, -1.0) >= since)]
            out += [{"assortmentId": pid, stock_type: 0} for pid in gone
                    if ids is None or pid in ids]
        return out, 200

    def _gone(self, pid: str) -> bool:
        product = self.products.get(pid)
        return product is None or bool(product["archived"])
