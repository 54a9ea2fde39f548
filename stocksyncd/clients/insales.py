"""InSales REST client: product listing with variants and bulk stock updates.

Only what the stock sync needs (products.json with its ``updated_since`` +
``from_id`` cursor and the trash, one product by id, variants_group_update.json,
which only queues the update: its answer confirms nothing). Retry, rate limiting and
status classification come from the injected ``Transport``; this module
builds requests and turns answers into typed models, reporting malformed
items instead of failing on them.
"""

from __future__ import annotations

import base64
import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime
from types import GenericAlias, MappingProxyType
from typing import Annotated, Any, NamedTuple

import msgspec

from stocksyncd.errors import InvalidResponseError, NotFoundError
from stocksyncd.http.decode import selective
from stocksyncd.http.transport import Decoder, Transport
from stocksyncd.numbers import MAX_STOCK, in_stock_range, plain_decimal

API = "insales"
PRODUCTS_PATH = "/admin/products.json"
PRODUCT_PATH = "/admin/products/{id}.json"
COUNT_PATH = "/admin/products/count.json"
GROUP_UPDATE_PATH = "/admin/products/variants_group_update.json"
MAX_PER_PAGE = 250
MAX_GROUP_UPDATE = 100

_WAREHOUSE_RE = re.compile(r"^quantity_at_warehouse(\d+)$")
MAX_ID = 2**63  # ids go back into requests: they must fit the signed 64 bits of JSON encoders


def basic_auth(api_key: str, password: str) -> dict[str, str]:
    """The ``Authorization`` header InSales expects for a private integration."""
    token = base64.b64encode(f"{api_key}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}", "Accept": "application/json"}


def warehouse_field(warehouse: int | None) -> str:
    """The variant field that holds stock: ``quantity`` or ``quantity_at_warehouseN``."""
    return "quantity" if warehouse is None else f"quantity_at_warehouse{warehouse}"


_NO_WAREHOUSES: Mapping[int, float | None] = MappingProxyType({})


class Variant(NamedTuple):
    """A variant as listed; quantities are numbers or None (not tracked / unreadable).

    A NamedTuple, not a dataclass: a full scan builds one per variant of the shop.
    """

    id: int
    product_id: int
    sku: str | None
    barcode: str | None
    quantity: float | None
    warehouses: Mapping[int, float | None] = _NO_WAREHOUSES

    def stock(self, warehouse: int | None) -> float | None:
        """The quantity in ``warehouse`` (None = the variant's total ``quantity``)."""
        if warehouse is None:
            return self.quantity
        return self.warehouses.get(warehouse)


class Product(NamedTuple):
    """A product with its variants; ``updated_at`` is InSales' own timestamp string."""

    id: int
    updated_at: str
    variants: tuple[Variant, ...]
    title: str = ""  # for reports: which product a variant belongs to


@dataclass
class ProductPage:
    """One page of products.json: what parsed, and what did not (as messages)."""

    products: list[Product]
    raw_count: int  # items on the page, parsed or not: decides whether a next page exists
    problems: list[str] = field(default_factory=list)
    last_updated_at: str | None = None  # cursor of the last item (even if it did not parse)
    last_id: int | None = None
    # InSales' clock when it began reading this page at the earliest: the
    # answer's Date less the request's round trip (ISO 8601).
    server_time: str | None = None
    deleted: list[int] = field(default_factory=list)  # trashed (``archived``) products listed


@dataclass(frozen=True)
class VariantWrite:
    """One variant's new stock figure."""

    id: int
    field: str  # "quantity" | "quantity_at_warehouseN"
    value: int


@dataclass
class GroupUpdateResult:
    """What InSales said about one variants_group_update batch.

    ``ok`` were taken (queued: InSales applies them later, so only a later
    read confirms them); ``failed`` were refused, which only the older
    per-variant answer can say.
    """

    ok: list[int]
    failed: dict[int, str]  # variant id -> reason
    body: Any = None
    server_time: str | None = None  # the answer's Date header, ISO 8601 (InSales' clock)


def _number(raw: object) -> float | None:
    """A quantity as InSales sends it: 7, 7.0, "7.0" or null. Raises ValueError on garbage.

    Text must be a plain decimal (``stocksyncd.numbers``) and every figure
    below 10^9 in magnitude: "1_000" or 1e300 is unreadable, not a number.
    """
    if raw is None:
        return None
    if isinstance(raw, bool):
        raise ValueError(f"boolean quantity {raw!r}")
    if isinstance(raw, int | float):
        if isinstance(raw, float) and not math.isfinite(raw):
            raise ValueError(f"non-finite quantity {raw!r}")
        number: float | Decimal = raw
    elif isinstance(raw, str):
        parsed = plain_decimal(raw)
        if parsed is None:
            raise ValueError(f"non-numeric quantity {raw[:40]!r}")
        number = parsed
    else:
        raise ValueError(f"quantity of type {type(raw).__name__}")
    if not in_stock_range(number):
        raise ValueError(f"quantity out of range {str(raw)[:40]!r}")
    return float(number)


def _text(raw: object) -> str | None:
    """sku/barcode as text; some shops hand out numeric barcodes as JSON numbers."""
    if raw is None or isinstance(raw, bool):
        return None
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    text = str(raw).strip()
    return text or None


def _server_time(header: str | None, before: float = 0.0) -> str | None:
    """The Date header as ISO 8601, ``before`` seconds earlier (rounded up to the millisecond)."""
    if not header:
        return None
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    when -= timedelta(milliseconds=math.ceil(max(0.0, before) * 1000))
    return when.isoformat(timespec="milliseconds")


def _clean_text(raw: object) -> str | None:
    """sku/barcode as text (see ``_text``); already-clean text, the usual case, as is."""
    if type(raw) is str and raw and raw == raw.strip():
        return raw
    return _text(raw)


def _int_id(raw: object) -> int | None:
    """An id as InSales sends it: a positive integer (or its ASCII digits) below 2^63."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        text = raw.strip()
        # str.isdigit() also takes "١٢" and "²": only ASCII digits are an id.
        if not (text.isascii() and text.isdigit() and len(text) <= 19):
            return None
        raw = int(text)
    if isinstance(raw, int) and 0 < raw < MAX_ID:
        return raw
    return None


def _warehouse_fields(names: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    """The ``quantity_at_warehouseN`` fields among a variant's field names, with N."""
    found = _WAREHOUSE_FIELDS.get(names)
    if found is None:
        found = tuple((name, int(m.group(1))) for name in names
                      if (m := _WAREHOUSE_RE.match(name)) is not None)
        if len(_WAREHOUSE_FIELDS) < _WAREHOUSE_FIELDS_MAX:
            _WAREHOUSE_FIELDS[names] = found
    return found


# Variants of one shop share a handful of field layouts: remember which of
# their fields are warehouses instead of matching every name of every variant.
_WAREHOUSE_FIELDS: dict[tuple[str, ...], tuple[tuple[str, int], ...]] = {}
_WAREHOUSE_FIELDS_MAX = 256


def parse_variant(raw: object, product_id: int, problems: list[str]) -> Variant | None:
    """One variant, or None (with a problem noted) when it has no usable id."""
    if not isinstance(raw, dict):
        problems.append(f"product {product_id}: variant is not an object")
        return None
    vid = raw.get("id")
    if type(vid) is not int or not 0 < vid < MAX_ID:  # usually a plain int: no general path
        vid = _int_id(vid)
        if vid is None:
            problems.append(f"product {product_id}: variant without a valid id "
                            f"({raw.get('id')!r:.40})")
            return None
    pid = raw.get("product_id")
    if type(pid) is not int or not 0 < pid < MAX_ID:
        pid = _int_id(pid) or product_id
    quantity: float | None
    q = raw.get("quantity")
    if type(q) is int:
        quantity = float(q)
    else:
        try:
            quantity = _number(q)
        except ValueError as exc:
            problems.append(f"variant {vid}: {exc}")
            quantity = None
    warehouses: Mapping[int, float | None] = _NO_WAREHOUSES
    if fields := _warehouse_fields(tuple(raw)):
        warehouses = {}
        for name, n in fields:
            try:
                warehouses[n] = _number(raw[name])
            except ValueError as exc:
                problems.append(f"variant {vid}: {name}: {exc}")
                warehouses[n] = None
    return Variant(vid, pid, _clean_text(raw.get("sku")), _clean_text(raw.get("barcode")),
                   quantity, warehouses)


def parse_product(raw: object, problems: list[str]) -> Product | None:
    """One product with its variants, or None (with a problem noted) when unusable."""
    if not isinstance(raw, dict):
        problems.append("product is not an object")
        return None
    pid = _int_id(raw.get("id"))
    if pid is None:
        problems.append(f"product without a valid id ({raw.get('id')!r:.40})")
        return None
    raw_variants = raw.get("variants")
    if not isinstance(raw_variants, list):
        problems.append(f"product {pid}: variants missing or not a list")
        raw_variants = []
    variants = [v for r in raw_variants if (v := parse_variant(r, pid, problems)) is not None]
    updated = raw.get("updated_at")
    title = raw.get("title")
    return Product(pid, updated if isinstance(updated, str) else "", tuple(variants),
                   title if isinstance(title, str) else "")


_VARIANT_FIELDS = ("id", "product_id", "sku", "barcode", "quantity")
# A figure msgspec may take as is: a finite number within what a stock figure
# can be, or a plain decimal string ("3.0": InSales sends warehouse figures so).
# Anything else (NaN, booleans, "1_000", 1e300) fails it, and the page is
# parsed the long way, which reports the variant.
_Figure = Annotated[float, msgspec.Meta(gt=-MAX_STOCK, lt=MAX_STOCK)]
_Id = Annotated[int, msgspec.Meta(gt=0, le=MAX_ID - 1)]
# At most 9 whole digits: the text is always in range, so reading it cannot fail.
_FigureText = Annotated[str, msgspec.Meta(pattern=r"^[+-]?[0-9]{1,9}(?:\.[0-9]{1,12})?$")]


@functools.cache
def products_decoder(warehouses: tuple[int, ...] = ()) -> Decoder:
    """A decoder of products.json that reads only what a stock job needs.

    Cached by ``warehouses``; ``InSalesClient`` passes them sorted, without repeats.

    Products and variants carry dozens of fields (descriptions, images,
    prices, options) that a stock job never reads (see ``http.decode``). Of
    the ``quantity_at_warehouseN`` fields only those of ``warehouses`` are
    read. The usual answer decodes straight into typed objects that
    ``products_from_wire`` turns into products; an answer of any other
    shape (a variant that is not an object, an id that is not a number, a
    quantity that is not a finite number) is parsed in full, for the parsers
    to report item by item.
    """
    variant = msgspec.defstruct("InSalesVariant", [
        ("id", _Id),
        ("product_id", Annotated[int, msgspec.Meta(le=MAX_ID - 1)] | None, None),
        # Some shops hand out numeric barcodes (and skus) as JSON numbers.
        ("sku", str | int | float | None, None),
        ("barcode", str | int | float | None, None),
        ("quantity", _Figure | _FigureText | None, None),
        *((warehouse_field(n), _Figure | _FigureText | None | msgspec.UnsetType, msgspec.UNSET)
          for n in warehouses),
    ], gc=False)
    product = msgspec.defstruct("InSalesProduct", [
        ("id", _Id),
        ("variants", GenericAlias(list, variant)),
        ("updated_at", str | None, None),
        ("archived", bool | None, None),
        ("title", str | None, None),
    ], gc=False)
    return selective(GenericAlias(list, product))


def _wire_figure(figure: float | str | None) -> float | None:
    """A figure the decoder let through: numbers as they are, plain decimal text read."""
    return _number(figure) if isinstance(figure, str) else figure


def products_from_wire(items: list[Any], warehouses: tuple[int, ...]) -> list[Product]:
    """Products from what ``products_decoder`` typed: the same as ``parse_product`` gives."""
    fields = tuple((warehouse_field(n), n) for n in warehouses)
    products = []
    for item in items:
        pid = item.id
        variants = []
        for v in item.variants:
            owner = v.product_id
            stock: Mapping[int, float | None] = _NO_WAREHOUSES
            if fields:
                stock = {n: _wire_figure(figure) for name, n in fields
                         if (figure := getattr(v, name)) is not msgspec.UNSET}
            quantity = v.quantity
            variants.append(Variant(v.id, owner if owner is not None and owner > 0 else pid,
                                    _clean_text(v.sku), _clean_text(v.barcode),
                                    quantity if type(quantity) is not str else _number(quantity),
                                    stock or _NO_WAREHOUSES))
        products.append(Product(pid, item.updated_at or "", tuple(variants), item.title or ""))
    return products


def parse_group_update(body: Any, sent: Sequence[int]) -> GroupUpdateResult:
    """Per-variant outcome of a 2xx group update.

    InSales' docs: the update is queued and the answer is ``[]``, so every
    variant sent was taken and nothing is confirmed. An older per-variant
    answer (a list of ``{"id", "status", "errors"}``) is read entry by entry,
    in case an account answers that way; any other shape means the batch as
    a whole was taken.
    """
    if not isinstance(body, list) or not all(
        isinstance(e, dict) and "status" in e for e in body
    ):
        return GroupUpdateResult(ok=list(sent), failed={}, body=body)
    failed: dict[int, str] = {}
    seen: set[int] = set()
    for entry in body:
        vid = _int_id(entry.get("id"))
        if vid is None:
            continue
        seen.add(vid)
        if str(entry.get("status")).lower() != "ok":
            errors = entry.get("errors")
            reason = "; ".join(map(str, errors)) if isinstance(errors, list) else str(errors)
            failed[vid] = reason or str(entry.get("status"))
    # A variant we sent that the answer does not mention: assume it went through
    # (the batch was accepted), since a listed failure is what we act upon.
    ok = [vid for vid in sent if vid not in failed]
    return GroupUpdateResult(ok=ok, failed=failed, body=body)


class InSalesClient:
    """Speaks InSales' admin API over one shop's ``Transport``."""

    api = API

    def __init__(self, transport: Transport, *, warehouses: Iterable[int] = ()) -> None:
        """``warehouses``: the ``quantity_at_warehouseN`` figures to read (others are skipped)."""
        self.transport = transport
        self._warehouses = tuple(sorted(set(warehouses)))
        self._decode_products = products_decoder(self._warehouses)

    @property
    def requests_made(self) -> int:
        """HTTP attempts sent through this client's transport."""
        return self.transport.requests

    async def products_page(
        self,
        *,
        page: int = 1,
        per_page: int = MAX_PER_PAGE,
        updated_since: str | None = None,
        from_id: int | None = None,
        deleted: bool = False,
        with_deleted: bool = False,
    ) -> ProductPage:
        """One page of ``GET /admin/products.json``.

        With ``updated_since`` the answer is ordered by (updated_at, id) and
        ``from_id`` skips items at exactly ``updated_since`` with id <= from_id.
        ``deleted``: list the trash (products deleted in the shop) instead;
        ``with_deleted``: the trash too. Trashed products (``archived``) go to
        the page's ``deleted``, not its ``products``.
        """
        params: dict[str, str | int | float] = {
            "page": page, "per_page": min(per_page, MAX_PER_PAGE),
        }
        if updated_since is not None:
            params["updated_since"] = updated_since
            if from_id is not None:
                params["from_id"] = from_id
        if with_deleted:
            params["with_deleted"] = "true"
        elif deleted:
            params["deleted"] = "true"
        response = await self.transport.request("GET", PRODUCTS_PATH, params=params,
                                                decoder=self._decode_products)
        data = response.json()
        if not isinstance(data, list):
            # An HTML page or an error object with 200: the listing is unusable.
            raise InvalidResponseError(
                API, f"products.json answered {type(data).__name__}, expected a list "
                f"(GET {response.url}, HTTP {response.status})", status=response.status)
        problems: list[str] = []
        result = ProductPage(products=[], raw_count=len(data), problems=problems,
                             server_time=_server_time(response.headers.get("Date"),
                                                      before=response.elapsed_s))
        if data and isinstance(data[0], msgspec.Struct):  # typed by the decoder
            result.deleted = [item.id for item in data if item.archived]
            live = [item for item in data if not item.archived] if result.deleted else data
            result.products = products_from_wire(live, self._warehouses)
            result.last_updated_at, result.last_id = data[-1].updated_at, data[-1].id
            return result
        for raw in data:
            product = parse_product(raw, problems)
            if product is None:
                continue
            if isinstance(raw, dict) and raw.get("archived") is True:
                result.deleted.append(product.id)
            else:
                result.products.append(product)
        if data and isinstance(data[-1], dict):
            last = data[-1]
            updated = last.get("updated_at")
            result.last_updated_at = updated if isinstance(updated, str) else None
            result.last_id = _int_id(last.get("id"))
        return result

    async def products_count(self) -> int:
        """``GET /admin/products/count.json``: products in the shop (the trash not counted)."""
        response = await self.transport.request("GET", COUNT_PATH, expect_json=True)
        data = response.json()
        count = data.get("count") if isinstance(data, dict) else None
        if type(count) is not int or count < 0:
            raise InvalidResponseError(API, f"count.json answered {str(data)[:200]!r}",
                                       status=response.status)
        return count

    async def product(self, product_id: int) -> Product | None:
        """``GET /admin/products/{id}.json``; None when InSales no longer has it (or trashed it)."""
        try:
            response = await self.transport.request(
                "GET", PRODUCT_PATH.format(id=product_id), expect_json=True)
        except NotFoundError:
            return None
        data = response.json()
        problems: list[str] = []
        product = parse_product(data, problems)
        if product is None:
            raise InvalidResponseError(API, f"product {product_id}: {'; '.join(problems)}",
                                       status=response.status)
        if isinstance(data, dict) and data.get("archived") is True:
            return None
        return product

    async def variants_group_update(self, writes: Sequence[VariantWrite]) -> GroupUpdateResult:
        """``PUT /admin/products/variants_group_update.json`` for at most 100 variants.

        The update is queued: ``ok`` means taken, not applied (read it back).
        """
        if not writes:
            return GroupUpdateResult(ok=[], failed={})
        if len(writes) > MAX_GROUP_UPDATE:
            raise ValueError(f"at most {MAX_GROUP_UPDATE} variants per group update, "
                             f"got {len(writes)}")
        body = {"variants": [{"id": w.id, w.field: w.value} for w in writes]}
        response = await self.transport.request("PUT", GROUP_UPDATE_PATH, json_body=body)
        try:
            answer = response.json() if response.body.strip() else None
        except InvalidResponseError:
            # The write happened (2xx); an unreadable confirmation is not a failure.
            answer = None
        result = parse_group_update(answer, [w.id for w in writes])
        result.server_time = _server_time(response.headers.get("Date"))
        return result
