"""The InvenTree REST client: parts, categories, metadata, companies, supplier data.

The transport's base URL is the server root (``https://inventree.example.com``);
every path here starts with ``/api/``. Version-dependent URLs and limits are
chosen from ``apiVersion`` of ``GET /api/``, read once per client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from stocksyncd.clients.inventree.errors import API, inventree_check
from stocksyncd.clients.inventree.models import (
    Category,
    Company,
    ManufacturerPart,
    Part,
    PriceBreak,
    SupplierPart,
)
from stocksyncd.errors import FatalApiError, PayloadError
from stocksyncd.http.transport import Transport

METADATA_API_VERSION = 436  # per-model ``…/{id}/metadata/`` replaced by ``/api/metadata/…``
LONG_LINK_API_VERSION = 320  # supplier part links up to 2000 characters (200 before)
ID_ORDERING_API_VERSION = 482  # ``ordering=id`` documented for the part list

# Old per-model metadata URLs, by the model names of the generic endpoint.
_OLD_METADATA_PATHS = {
    "part": "/api/part/{pk}/metadata/",
    "partcategory": "/api/part/category/{pk}/metadata/",
    "supplierpart": "/api/company/part/{pk}/metadata/",
    "manufacturerpart": "/api/company/part/manufacturer/{pk}/metadata/",
    "company": "/api/company/{pk}/metadata/",
}

# Field limits of SupplierPart (schema 534); longer text is cut rather than refused.
# A list ``count`` above this is a broken answer: it sets how many pages are read.
MAX_LIST_ROWS = 1_000_000
SUPPLIER_PART_LIMITS = {"description": 250, "note": 100, "packaging": 50, "pack_quantity": 25}


def server_root(url: str) -> str:
    """The server root for the transport, accepting a configured ``…/api`` suffix."""
    url = url.rstrip("/")
    return url[: -len("/api")] if url.endswith("/api") else url


def fit_link(link: str | None, limit: int) -> str | None:
    """A link within ``limit``: drop the query string first (Mouser's ``?qs=``), never cut."""
    if not link or len(link) <= limit:
        return link
    parts = urlsplit(link)
    short = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    return short if len(short) <= limit else None


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _number(value: Decimal | int) -> int | str:
    """JSON for a number field: an int when integral, else exact decimal text."""
    dec = Decimal(value)
    return int(dec) if dec == dec.to_integral_value() else format(dec, "f")


class InvenTreeClient:
    """One InvenTree server, through an injected Transport (token auth set by its builder)."""

    def __init__(self, transport: Transport, *, page_size: int = 100) -> None:
        self.transport = transport
        self.page_size = page_size
        self._api_version: int | None = None
        self._version_lock = asyncio.Lock()
        self._categories: dict[int, Category] = {}
        self._category_metadata: dict[int, dict[str, Any]] = {}

    @staticmethod
    def headers(token: str) -> dict[str, str]:
        """Headers the transport needs for token authentication."""
        return {"Authorization": f"Token {token}", "Accept": "application/json"}

    def clear_cache(self) -> None:
        """Forget categories and their metadata (call at the start of each run)."""
        self._categories.clear()
        self._category_metadata.clear()

    # -- plumbing ------------------------------------------------------------
    async def _json(
        self, method: str, path: str, *, params: Mapping[str, str | int | float] | None = None,
        body: Any = None,
    ) -> Any:
        # Reads are parsed inside the retry, so a cut-off answer is fetched again.
        response = await self.transport.request(
            method, path, params=params, json_body=body, check=inventree_check,
            expect_json=method == "GET",
        )
        if response.status == 204 or not response.body:
            return None
        return response.json()

    async def _object(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        data = await self._json(method, path, body=body)
        if not isinstance(data, dict):
            raise PayloadError(f"InvenTree {method} {path}: expected an object, got {data!r:.80}")
        return data

    async def iter_list(
        self, path: str, params: Mapping[str, str | int] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every row of a list endpoint: limit/offset pages, or one bare array.

        The offset is stepped here instead of following ``next``, whose host may
        be wrong behind a reverse proxy.
        """
        offset = 0
        while True:
            query: dict[str, str | int] = {
                **(params or {}), "limit": self.page_size, "offset": offset,
            }
            data = await self._json("GET", path, params=query)
            if isinstance(data, list):  # servers that ignore ``limit`` send everything
                rows, total = data, None
            elif isinstance(data, dict) and isinstance(data.get("results"), list):
                rows, total = data["results"], data.get("count")
            else:
                raise PayloadError(f"InvenTree GET {path}: not a list answer: {data!r:.80}")
            if isinstance(total, int) and not 0 <= total <= MAX_LIST_ROWS:
                raise PayloadError(f"InvenTree GET {path}: implausible count {total!r:.30}")
            for row in rows:
                if isinstance(row, dict):
                    yield row
            offset += len(rows)
            if total is None or not rows or not isinstance(total, int) or offset >= total:
                return

    async def _list(self, path: str, params: Mapping[str, str | int]) -> list[dict[str, Any]]:
        return [row async for row in self.iter_list(path, params)]

    # -- server ----------------------------------------------------------------
    async def api_version(self) -> int:
        """``apiVersion`` from ``GET /api/`` (read once; accepts a numeric string)."""
        async with self._version_lock:
            if self._api_version is None:
                data = await self._object("GET", "/api/")
                raw = data.get("apiVersion")
                try:
                    self._api_version = int(raw)  # type: ignore[arg-type]
                except (TypeError, ValueError):
                    raise FatalApiError(
                        API, f"GET /api/ has no usable apiVersion ({raw!r}); is this InvenTree?"
                    ) from None
            return self._api_version

    # -- parts -------------------------------------------------------------------
    async def iter_parts(
        self, *, active: bool | None = True, purchaseable: bool | None = True,
        category: int | None = None,
    ) -> AsyncIterator[Part]:
        """Parts matching the filters, in the server's order (ordered by id from API 482)."""
        params: dict[str, str | int] = {}
        if active is not None:
            params["active"] = _flag(active)
        if purchaseable is not None:
            params["purchaseable"] = _flag(purchaseable)
        if category is not None:
            params["category"] = category
        if await self.api_version() >= ID_ORDERING_API_VERSION:
            params["ordering"] = "id"  # stable pages; older servers keep their default order
        async for row in self.iter_list("/api/part/", params):
            yield Part.from_api(row)

    async def part_pks(
        self, *, active: bool | None = True, purchaseable: bool | None = True
    ) -> list[int]:
        """Sorted pks of the matching parts (the API has no ``pk > x`` filter)."""
        parts = self.iter_parts(active=active, purchaseable=purchaseable)
        return sorted({p.pk async for p in parts})  # a set: rows may shift between pages

    async def next_part_pk(
        self, cursor: int, *, active: bool | None = True, purchaseable: bool | None = True
    ) -> int | None:
        """The first matching pk >= ``cursor``, wrapping to the smallest; None when none match."""
        return pick_next_pk(
            await self.part_pks(active=active, purchaseable=purchaseable), cursor
        )

    async def get_part(self, pk: int) -> Part:
        """One part, with ``notes``."""
        return Part.from_api(await self._object("GET", f"/api/part/{pk}/"))

    # -- categories --------------------------------------------------------------
    async def get_category(self, pk: int) -> Category:
        """One category (cached until ``clear_cache``)."""
        if pk not in self._categories:
            data = await self._object("GET", f"/api/part/category/{pk}/")
            self._categories[pk] = Category.from_api(data)
        return self._categories[pk]

    async def category_and_ancestors(self, pk: int) -> list[Category]:
        """The category followed by its parents up to the root."""
        chain: list[Category] = []
        seen: set[int] = set()
        current: int | None = pk
        while current is not None and current not in seen:  # a cycle must not hang a run
            seen.add(current)
            category = await self.get_category(current)
            chain.append(category)
            current = category.parent
        return chain

    # -- metadata ----------------------------------------------------------------
    async def metadata_path(self, model: str, pk: int) -> str:
        """The metadata URL of one object for this server's API version."""
        if await self.api_version() >= METADATA_API_VERSION:
            return f"/api/metadata/{model}/{pk}/"
        try:
            return _OLD_METADATA_PATHS[model].format(pk=pk)
        except KeyError:
            raise ValueError(f"no metadata endpoint known for model {model!r}") from None

    async def metadata(self, model: str, pk: int) -> dict[str, Any]:
        """An object's metadata (``{}`` when unset); model as in ``/api/metadata/{model}/``."""
        data = await self._object("GET", await self.metadata_path(model, pk))
        value = data.get("metadata")
        return dict(value) if isinstance(value, dict) else {}

    async def set_metadata(
        self, model: str, pk: int, values: Mapping[str, Any], *, replace: bool = False
    ) -> dict[str, Any]:
        """Merge ``values`` into the metadata (PATCH), or replace it all (PUT)."""
        data = await self._object(
            "PUT" if replace else "PATCH", await self.metadata_path(model, pk),
            {"metadata": dict(values)},
        )
        if model == "partcategory":
            self._category_metadata.pop(pk, None)
        value = data.get("metadata")
        return dict(value) if isinstance(value, dict) else {}

    async def part_metadata(self, pk: int) -> dict[str, Any]:
        """A part's metadata."""
        return await self.metadata("part", pk)

    async def category_metadata(self, pk: int) -> dict[str, Any]:
        """A category's metadata (cached until ``clear_cache``)."""
        if pk not in self._category_metadata:
            self._category_metadata[pk] = await self.metadata("partcategory", pk)
        return self._category_metadata[pk]

    # -- companies ---------------------------------------------------------------
    async def get_company(self, pk: int) -> Company:
        """One company."""
        return Company.from_api(await self._object("GET", f"/api/company/{pk}/"))

    async def companies(
        self, *, is_supplier: bool | None = None, name: str | None = None
    ) -> list[Company]:
        """Companies matching the filters."""
        params: dict[str, str | int] = {}
        if is_supplier is not None:
            params["is_supplier"] = _flag(is_supplier)
        if name is not None:
            params["name"] = name
        return [Company.from_api(r) for r in await self._list("/api/company/", params)]

    async def manufacturer_parts(self, *, part: int) -> list[ManufacturerPart]:
        """Manufacturer parts of a part (creating a supplier part links the first one)."""
        rows = await self._list("/api/company/part/manufacturer/", {"part": part})
        return [ManufacturerPart.from_api(r) for r in rows]

    # -- supplier parts ------------------------------------------------------------
    async def supplier_parts(
        self, *, part: int | None = None, supplier: int | None = None, sku: str | None = None
    ) -> list[SupplierPart]:
        """Supplier parts matching the filters."""
        params: dict[str, str | int] = {}
        if part is not None:
            params["part"] = part
        if supplier is not None:
            params["supplier"] = supplier
        if sku is not None:
            params["SKU"] = sku
        return [SupplierPart.from_api(r) for r in await self._list("/api/company/part/", params)]

    async def get_supplier_part(self, pk: int) -> SupplierPart:
        """One supplier part."""
        return SupplierPart.from_api(await self._object("GET", f"/api/company/part/{pk}/"))

    async def _fit(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Cut text fields to the server's limits; shorten links the safe way."""
        out = dict(fields)
        for key, limit in SUPPLIER_PART_LIMITS.items():
            if isinstance(out.get(key), str):
                out[key] = out[key][:limit]
        if "link" in out:
            long_links = await self.api_version() >= LONG_LINK_API_VERSION
            out["link"] = fit_link(out["link"], 2000 if long_links else 200) or ""
        return out

    async def create_supplier_part(
        self, *, part: int, supplier: int, sku: str, manufacturer_part: int | None = None,
        link: str | None = None, description: str | None = None, note: str | None = None,
        packaging: str | None = None, pack_quantity: str | None = None,
    ) -> SupplierPart:
        """``POST /api/company/part/``; a duplicate (part, supplier, SKU) is a 400."""
        fields: dict[str, Any] = {"part": part, "supplier": supplier, "SKU": sku}
        optional = {
            "manufacturer_part": manufacturer_part, "link": link, "description": description,
            "note": note, "packaging": packaging, "pack_quantity": pack_quantity,
        }
        fields.update({k: v for k, v in optional.items() if v is not None})
        data = await self._object("POST", "/api/company/part/", await self._fit(fields))
        return SupplierPart.from_api(data)

    async def update_supplier_part(self, pk: int, fields: Mapping[str, Any]) -> SupplierPart:
        """``PATCH`` only the given fields (API names: ``note``, ``link``, ``available`` …)."""
        body = await self._fit(fields)
        if isinstance(body.get("available"), Decimal | int):
            body["available"] = _number(body["available"])
        data = await self._object("PATCH", f"/api/company/part/{pk}/", body)
        return SupplierPart.from_api(data)

    # -- price breaks ----------------------------------------------------------------
    async def price_breaks(self, supplier_part: int) -> list[PriceBreak]:
        """Price breaks of one supplier part, by quantity."""
        rows = await self._list("/api/company/price-break/", {"part": supplier_part})
        return sorted((PriceBreak.from_api(r) for r in rows), key=lambda b: b.quantity)

    async def accepted_currencies(self) -> frozenset[str] | None:
        """The currencies the server takes for a price break (its ``CURRENCY_CODES``).

        Read from the ``OPTIONS`` metadata of the price-break list; None when the
        server does not list them (a token without the add permission sees no
        ``POST`` actions).
        """
        data = await self._json("OPTIONS", "/api/company/price-break/")
        post = data.get("actions", {}).get("POST") if isinstance(data, dict) else None
        field = post.get("price_currency") if isinstance(post, dict) else None
        choices = field.get("choices") if isinstance(field, dict) else None
        if not isinstance(choices, list):
            return None
        codes = {str(c["value"]).strip().upper() for c in choices
                 if isinstance(c, dict) and isinstance(c.get("value"), str)}
        return frozenset(codes) or None

    async def update_price_break(self, pk: int, price: Decimal | None,
                                 currency: str | None) -> PriceBreak:
        """``PATCH`` price and currency of one break, keeping its row and quantity."""
        body: dict[str, Any] = {"price": None if price is None else format(price, "f")}
        if currency:
            body["price_currency"] = currency
        return PriceBreak.from_api(
            await self._object("PATCH", f"/api/company/price-break/{pk}/", body))

    async def delete_price_break(self, pk: int) -> None:
        """``DELETE /api/company/price-break/{pk}/`` (there is no bulk delete)."""
        await self._json("DELETE", f"/api/company/price-break/{pk}/")

    async def create_price_break(
        self, supplier_part: int, quantity: Decimal | int, price: Decimal,
        currency: str | None,
    ) -> PriceBreak:
        """``POST`` one break; price goes as decimal text. A duplicate quantity is a 400."""
        body: dict[str, Any] = {
            "part": supplier_part, "quantity": _number(quantity), "price": format(price, "f"),
        }
        if currency:
            body["price_currency"] = currency  # omitted, the server's default would apply
        return PriceBreak.from_api(await self._object("POST", "/api/company/price-break/", body))


def pick_next_pk(pks: list[int], cursor: int) -> int | None:
    """First pk >= cursor in sorted ``pks``, else the smallest (wrap around)."""
    for pk in pks:
        if pk >= cursor:
            return pk
    return pks[0] if pks else None
