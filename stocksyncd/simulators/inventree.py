"""An InvenTree server as far as the supplier sync sees it.

Follows the published schema and Django REST Framework behaviour: token auth,
``GET /api/`` with a configurable ``apiVersion``, limit/offset pages (a bare
array without ``limit``), the list filters the client uses, metadata on the
per-model URLs before API 436 and on ``/api/metadata/{model}/{id}/`` from 436
(404 on the other form), unique (part, supplier, SKU) supplier parts and
unique (part, quantity) price breaks, DRF error bodies.
"""

from __future__ import annotations

import base64
import random
import secrets
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from stocksyncd.clock import SYSTEM_CLOCK, Clock
from stocksyncd.simulators.base import Handler, Simulator, json_response

DEFAULT_TOKEN = "inv-test-token"
DEFAULT_CURRENCIES = ("AUD", "CAD", "CNY", "EUR", "GBP", "JPY", "NZD", "USD")
METADATA_API_VERSION = 436
TOKEN_ME_API_VERSION = 490

Row = dict[str, Any]
_TRUE = {"true", "True", "1"}
_FALSE = {"false", "False", "0"}

# (model name in /api/metadata/, table, old URL prefix)
_METADATA_MODELS = {
    "part": "parts",
    "partcategory": "categories",
    "supplierpart": "supplier_parts",
    "manufacturerpart": "manufacturer_parts",
    "company": "companies",
}
_OLD_METADATA_ROUTES = {
    "/api/part/{id:\\d+}/metadata/": "part",
    "/api/part/category/{id:\\d+}/metadata/": "partcategory",
    "/api/company/part/{id:\\d+}/metadata/": "supplierpart",
    "/api/company/part/manufacturer/{id:\\d+}/metadata/": "manufacturerpart",
    "/api/company/{id:\\d+}/metadata/": "company",
}

SP_LIMITS = {"SKU": 100, "description": 250, "note": 100, "packaging": 50, "pack_quantity": 25}
SP_WRITABLE = ("SKU", "manufacturer_part", "link", "description", "note", "packaging",
               "pack_quantity", "available", "active", "primary", "notes")
PART_WRITABLE = ("name", "IPN", "description", "active", "purchaseable", "category", "notes")


class DrfError(Exception):
    """Raised inside handlers; becomes a DRF-shaped JSON answer."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def _detail(status: int, text: str) -> DrfError:
    return DrfError(status, {"detail": text})


def _max_length(n: int) -> str:
    return f"Ensure this field has no more than {n} characters."


class InvenTreeSimulator(Simulator):
    """In-memory InvenTree with the REST surface stocksyncd uses."""

    api = "inventree"

    def __init__(
        self, *, api_version: int = 534, token: str = DEFAULT_TOKEN,
        clock: Clock = SYSTEM_CLOCK, latency: float = 0.0,
        currencies: tuple[str, ...] = DEFAULT_CURRENCIES, default_currency: str = "USD",
    ) -> None:
        self.api_version = api_version
        self.tokens: set[str] = {token}
        self.readonly_tokens: set[str] = set()  # valid but without a role: 403
        self.users: dict[str, str] = {}  # username -> password for the token endpoint
        self.currencies = currencies
        self.default_currency = default_currency
        self.parts: dict[int, Row] = {}
        self.categories: dict[int, Row] = {}
        self.companies: dict[int, Row] = {}
        self.manufacturer_parts: dict[int, Row] = {}
        self.supplier_parts: dict[int, Row] = {}
        self.price_breaks: dict[int, Row] = {}
        self.metadata: dict[tuple[str, int], Any] = {}
        self._next_pk: dict[str, int] = {}
        self.mouser_supplier = 0  # set by ``small_catalogue``
        super().__init__(clock=clock, latency=latency)

    # -- routes ----------------------------------------------------------------
    def setup_routes(self, app: web.Application) -> None:
        """Register the endpoints (numeric ids, so ``category`` never matches ``{id}``)."""
        r = app.router
        r.add_get("/api/", self._info)
        r.add_get("/api/user/token/", self._wrap(self._token, auth=False))
        r.add_get("/api/user/me/token/", self._wrap(self._token, auth=False))
        for path, model in _OLD_METADATA_ROUTES.items():
            r.add_route("*", path, self._wrap(self._metadata_old(model)))
        r.add_route("*", "/api/metadata/{model}/{id:\\d+}/", self._wrap(self._metadata_new))
        self._crud(r, "/api/part/category/", "categories", self._filter_categories)
        self._crud(r, "/api/company/part/manufacturer/", "manufacturer_parts",
                   self._filter_manufacturer_parts)
        self._crud(r, "/api/company/part/", "supplier_parts", self._filter_supplier_parts,
                   create=self._create_supplier_part, update=self._update_supplier_part)
        self._crud(r, "/api/company/price-break/", "price_breaks", self._filter_price_breaks,
                   create=self._create_price_break, update=self._update_price_break,
                   delete=True)
        self._crud(r, "/api/company/", "companies", self._filter_companies)
        self._crud(r, "/api/part/", "parts", self._filter_parts, update=self._update_part)

    def _crud(
        self, r: web.UrlDispatcher, prefix: str, table: str,
        filt: Callable[[list[Row], dict[str, str]], list[Row]],
        *, create: Callable[[Any], Row] | None = None,
        update: Callable[[Row, Any], None] | None = None, delete: bool = False,
    ) -> None:
        async def list_(request: web.Request) -> web.Response:
            if request.method == "OPTIONS" and table == "price_breaks":
                return json_response(self._price_break_options())
            if request.method == "POST" and create is not None:
                return json_response(self._render(table, create(await _body(request))), status=201)
            if request.method != "GET":
                raise _not_allowed(request.method)
            rows = filt(list(getattr(self, table).values()), dict(request.query))
            return self._page(request, [self._render(table, row, listing=True) for row in rows])

        async def detail(request: web.Request) -> web.Response:
            row = self._get(table, request)
            if request.method == "GET":
                return json_response(self._render(table, row))
            if request.method in ("PATCH", "PUT") and update is not None:
                update(row, await _body(request))
                return json_response(self._render(table, row))
            if request.method == "DELETE" and delete:
                del getattr(self, table)[row["pk"]]
                return web.Response(status=204)
            raise _not_allowed(request.method)

        r.add_route("*", prefix, self._wrap(list_))
        r.add_route("*", prefix + "{id:\\d+}/", self._wrap(detail))

    def _wrap(self, handler: Handler, *, auth: bool = True) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                if auth:
                    self._authorise(request)
                return await handler(request)
            except DrfError as err:
                return json_response(err.body, status=err.status)

        return run

    def _authorise(self, request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        if not header:
            raise _detail(401, "Authentication credentials were not provided.")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "token" or token.strip() not in self.tokens | self.readonly_tokens:
            raise _detail(401, "Invalid token.")
        if token.strip() in self.readonly_tokens:
            raise _detail(403, "You do not have permission to perform this action.")

    # -- server info and tokens ----------------------------------------------------
    async def _info(self, request: web.Request) -> web.Response:
        return json_response({
            "server": "InvenTree", "version": "1.0.0", "apiVersion": self.api_version,
            "instance": "InvenTree simulator", "debug_mode": False,
        })

    async def _token(self, request: web.Request) -> web.Response:
        wanted = "/api/user/me/token/" if self.api_version >= TOKEN_ME_API_VERSION \
            else "/api/user/token/"
        if request.path != wanted:
            raise _detail(404, "Not found.")
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except ValueError:
            user = password = ""
        if scheme.lower() != "basic" or self.users.get(user) != password or not user:
            raise _detail(401, "Invalid username/password.")
        token = "inv-" + secrets.token_hex(16)  # a new token on every call, like the server
        self.tokens.add(token)
        return json_response({"token": token, "name": request.query.get("name", "token"),
                              "expiry": "2099-12-31"})

    def expire_token(self, token: str) -> None:
        """Make a token invalid (expired or revoked)."""
        self.tokens.discard(token)

    # -- paging ------------------------------------------------------------------
    def _page(self, request: web.Request, rows: list[Row]) -> web.Response:
        if "limit" not in request.query:
            return json_response(rows)  # DRF without a limit: everything, bare
        limit = _int_or(request.query.get("limit"), len(rows)) or len(rows)
        offset = max(0, _int_or(request.query.get("offset"), 0))
        page = rows[offset: offset + limit]
        base = request.url

        def link(at: int) -> str:
            return str(base.update_query({"limit": str(limit), "offset": str(at)}))

        return json_response({
            "count": len(rows),
            "next": link(offset + limit) if offset + limit < len(rows) else None,
            "previous": link(max(0, offset - limit)) if offset > 0 else None,
            "results": page,
        })

    # -- rendering -------------------------------------------------------------------
    def _render(self, table: str, row: Row, *, listing: bool = False) -> Row:
        out = {k: v for k, v in row.items() if not k.startswith("_")}
        if listing:
            out.pop("notes", None)  # NotesFieldMixin drops notes from list views
        if table == "parts":
            cat = self.categories.get(row.get("category") or 0)
            out["category_name"] = cat["name"] if cat else None
        elif table == "categories":
            out["pathstring"] = self._pathstring(row)
            out["level"] = out["pathstring"].count("/")
        elif table == "supplier_parts":
            mp = self.manufacturer_parts.get(row.get("manufacturer_part") or 0)
            out["MPN"] = mp["MPN"] if mp else None
        elif table == "price_breaks":
            sp = self.supplier_parts.get(row["part"])
            out["supplier"] = sp["supplier"] if sp else None
            out["price"] = None if row["price"] is None else format(row["price"], "f")
            out["quantity"] = float(row["quantity"])
        return out

    def _pathstring(self, row: Row) -> str:
        names: list[str] = []
        seen: set[int] = set()
        current: Row | None = row
        while current is not None and current["pk"] not in seen:
            seen.add(current["pk"])
            names.append(current["name"])
            current = self.categories.get(current.get("parent") or 0)
        return "/".join(reversed(names))

    def _get(self, table: str, request: web.Request) -> Row:
        pk = int(request.match_info["id"])
        row: Row | None = getattr(self, table).get(pk)
        if row is None:
            raise _detail(404, "No object matches the given query.")
        return row

    # -- list filters --------------------------------------------------------------
    def _filter_parts(self, rows: list[Row], q: dict[str, str]) -> list[Row]:
        rows = _by_flag(rows, q, "active")
        rows = _by_flag(rows, q, "purchaseable")
        if "category" in q:
            want = None if q["category"] == "null" else _int_or(q["category"], -1)
            rows = [r for r in rows if r.get("category") == want]
        if "IPN" in q:
            rows = [r for r in rows if r.get("IPN") == q["IPN"]]
        ordering = q.get("ordering", "")
        if ordering in ("id", "-id") and self.api_version >= 482:
            return sorted(rows, key=lambda r: r["pk"], reverse=ordering == "-id")
        return sorted(rows, key=lambda r: (r["name"], r["pk"]))  # the model's default order

    def _filter_categories(self, rows: list[Row], q: dict[str, str]) -> list[Row]:
        if "parent" in q:
            want = None if q["parent"] == "null" else _int_or(q["parent"], -1)
            rows = [r for r in rows if r.get("parent") == want]
        return rows

    def _filter_companies(self, rows: list[Row], q: dict[str, str]) -> list[Row]:
        for flag in ("is_supplier", "is_manufacturer", "is_customer", "active"):
            rows = _by_flag(rows, q, flag)
        if "name" in q:
            rows = [r for r in rows if r["name"] == q["name"]]
        return rows

    def _filter_manufacturer_parts(self, rows: list[Row], q: dict[str, str]) -> list[Row]:
        return _by_ints(rows, q, ("part", "manufacturer"), strings=("MPN",))

    def _filter_supplier_parts(self, rows: list[Row], q: dict[str, str]) -> list[Row]:
        return _by_ints(rows, q, ("part", "supplier", "manufacturer_part"), strings=("SKU",))

    def _filter_price_breaks(self, rows: list[Row], q: dict[str, str]) -> list[Row]:
        rows = _by_ints(rows, q, ("part",))
        if "base_part" in q:
            want = _int_or(q["base_part"], -1)
            rows = [r for r in rows if self.supplier_parts.get(r["part"], {}).get("part") == want]
        if "supplier" in q:
            want = _int_or(q["supplier"], -1)
            rows = [r for r in rows
                    if self.supplier_parts.get(r["part"], {}).get("supplier") == want]
        return rows

    # -- writes ----------------------------------------------------------------------
    def _update_part(self, row: Row, body: Any) -> None:
        data = _object_body(body)
        if row.get("locked"):
            raise DrfError(400, {"non_field_errors": ["Part is locked"]})
        row.update({k: v for k, v in data.items() if k in PART_WRITABLE})

    def _validate_supplier_part(self, data: Row, current: Row | None) -> Row:
        errors: dict[str, list[str]] = {}
        merged = {**(current or {}), **{k: v for k, v in data.items() if k in SP_WRITABLE}}
        if current is None:
            merged.update({k: data.get(k) for k in ("part", "supplier")})
            for key in ("part", "supplier", "SKU"):
                if data.get(key) in (None, ""):
                    errors[key] = ["This field is required."]
            part = self.parts.get(data.get("part") or 0)
            if "part" not in errors and (part is None or not part.get("purchaseable")):
                errors["part"] = [f'Invalid pk "{data.get("part")}" - object does not exist.']
            supplier = self.companies.get(data.get("supplier") or 0)
            if "supplier" not in errors and (supplier is None or not supplier["is_supplier"]):
                errors["supplier"] = [
                    f'Invalid pk "{data.get("supplier")}" - object does not exist.'
                ]
        for key, limit in SP_LIMITS.items():
            if isinstance(merged.get(key), str) and len(merged[key]) > limit:
                errors[key] = [_max_length(limit)]
        link_limit = 2000 if self.api_version >= 320 else 200
        if isinstance(merged.get("link"), str) and len(merged["link"]) > link_limit:
            errors["link"] = [_max_length(link_limit)]
        mp = merged.get("manufacturer_part")
        if mp is not None and mp not in self.manufacturer_parts:
            errors["manufacturer_part"] = [f'Invalid pk "{mp}" - object does not exist.']
        if errors:
            raise DrfError(400, errors)
        for other in self.supplier_parts.values():
            if other is not current and all(
                other.get(k) == merged.get(k) for k in ("part", "supplier", "SKU")
            ):
                raise DrfError(400, {"non_field_errors": [
                    "The fields part, supplier, SKU must make a unique set."
                ]})
        if "available" in data:
            merged["availability_updated"] = self.clock.now().isoformat()
        return merged

    def _create_supplier_part(self, body: Any) -> Row:
        merged = self._validate_supplier_part(_object_body(body), None)
        return self.add_supplier_part(**{k: v for k, v in merged.items() if k != "pk"})

    def _update_supplier_part(self, row: Row, body: Any) -> None:
        row.update(self._validate_supplier_part(_object_body(body), row))

    def _validate_price_break(self, data: Row, current: Row | None) -> Row:
        errors: dict[str, list[str]] = {}
        merged = dict(current or {})
        if current is None:
            for key in ("part", "quantity"):
                if data.get(key) is None:
                    errors[key] = ["This field is required."]
            if "part" not in errors and data["part"] not in self.supplier_parts:
                errors["part"] = [f'Invalid pk "{data["part"]}" - object does not exist.']
            merged["part"] = data.get("part")
            merged["price_currency"] = self.default_currency
        if "quantity" in data:
            qty = _decimal(data["quantity"])
            if qty is None or qty <= 0:
                errors["quantity"] = ["A valid number is required."]
            merged["quantity"] = qty
        if "price" in data:
            price = None if data["price"] is None else _decimal(data["price"])
            if data["price"] is not None and price is None:
                errors["price"] = ["A valid number is required."]
            merged["price"] = price
        elif current is None:
            merged["price"] = None
        if "price_currency" in data:
            if data["price_currency"] not in self.currencies:
                errors["price_currency"] = [f'"{data["price_currency"]}" is not a valid choice.']
            merged["price_currency"] = data["price_currency"]
        if errors:
            raise DrfError(400, errors)
        for other in self.price_breaks.values():
            if other is not current and other["part"] == merged["part"] \
                    and other["quantity"] == merged["quantity"]:
                raise DrfError(400, {"non_field_errors": [
                    "The fields part, quantity must make a unique set."
                ]})
        return merged

    def _price_break_options(self) -> Row:
        """DRF's OPTIONS metadata: ``price_currency`` lists the server's CURRENCY_CODES."""
        return {"name": "Supplier Price Break List", "actions": {"POST": {
            "price_currency": {
                "type": "choice", "required": False, "read_only": False,
                "label": "Currency", "default": self.default_currency,
                "choices": [{"value": c, "display_name": c} for c in self.currencies],
            },
            "quantity": {"type": "float", "required": True, "read_only": False},
            "price": {"type": "decimal", "required": False, "read_only": False},
        }}}

    def _create_price_break(self, body: Any) -> Row:
        merged = self._validate_price_break(_object_body(body), None)
        return self.add_price_break(merged["part"], merged["quantity"], merged["price"],
                                    merged["price_currency"])

    def _update_price_break(self, row: Row, body: Any) -> None:
        row.update(self._validate_price_break(_object_body(body), row))

    # -- metadata ------------------------------------------------------------------------
    def _metadata_old(self, model: str) -> Handler:
        async def handler(request: web.Request) -> web.StreamResponse:
            if self.api_version >= METADATA_API_VERSION:
                raise _detail(404, "Not found.")
            return await self._metadata_answer(request, model)

        return handler

    async def _metadata_new(self, request: web.Request) -> web.StreamResponse:
        if self.api_version < METADATA_API_VERSION:
            raise _detail(404, "Not found.")
        model = request.match_info["model"]
        if model not in _METADATA_MODELS:
            raise _detail(404, f"Invalid model type: {model}")
        return await self._metadata_answer(request, model)

    async def _metadata_answer(self, request: web.Request, model: str) -> web.Response:
        row = self._get(_METADATA_MODELS[model], request)
        key = (model, row["pk"])
        if request.method in ("PATCH", "PUT"):
            data = _object_body(await _body(request))
            new = data.get("metadata")
            if not isinstance(new, dict):
                raise DrfError(400, {"metadata": ["Value must be a valid dictionary"]})
            old = self.metadata.get(key) or {}
            self.metadata[key] = new if request.method == "PUT" else {**old, **new}
        elif request.method != "GET":
            raise _not_allowed(request.method)
        return json_response({"metadata": self.metadata.get(key)})

    # -- data helpers for tests and the demo -------------------------------------------------
    def _pk(self, table: str, pk: int | None) -> int:
        if pk is None:
            pk = self._next_pk.get(table, 1)
        self._next_pk[table] = max(self._next_pk.get(table, 1), pk + 1)
        return pk

    def add_category(
        self, name: str, *, parent: int | None = None, pk: int | None = None,
        metadata: dict[str, Any] | None = None, description: str = "",
    ) -> Row:
        """A part category; ``metadata`` is what its metadata endpoint returns."""
        row: Row = {"pk": self._pk("categories", pk), "name": name, "description": description,
               "parent": parent, "structural": False, "default_location": None}
        self.categories[row["pk"]] = row
        self.metadata[("partcategory", row["pk"])] = metadata
        return row

    def add_part(
        self, name: str, *, category: int | None = None, pk: int | None = None,
        ipn: str = "", description: str = "", active: bool = True,
        purchaseable: bool = True, notes: str | None = None, locked: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> Row:
        """A part."""
        row: Row = {"pk": self._pk("parts", pk), "name": name, "IPN": ipn,
               "description": description, "active": active, "purchaseable": purchaseable,
               "category": category, "locked": locked, "notes": notes}
        self.parts[row["pk"]] = row
        self.metadata[("part", row["pk"])] = metadata
        return row

    def add_company(
        self, name: str, *, is_supplier: bool = True, is_manufacturer: bool = False,
        pk: int | None = None, currency: str = "USD",
    ) -> Row:
        """A company."""
        row: Row = {"pk": self._pk("companies", pk), "name": name, "description": "",
               "website": "", "currency": currency, "is_supplier": is_supplier,
               "is_manufacturer": is_manufacturer, "is_customer": False, "active": True,
               "notes": None}
        self.companies[row["pk"]] = row
        return row

    def add_manufacturer_part(self, part: int, manufacturer: int, mpn: str) -> Row:
        """A manufacturer part (what a new supplier part links to)."""
        row: Row = {"pk": self._pk("manufacturer_parts", None), "part": part,
               "manufacturer": manufacturer, "MPN": mpn, "description": "", "link": ""}
        self.manufacturer_parts[row["pk"]] = row
        return row

    def add_supplier_part(
        self, *, part: int, supplier: int, SKU: str, pk: int | None = None,
        **fields: Any,
    ) -> Row:
        """A supplier part; ``fields`` as in the API (``note``, ``link``, ``available`` …)."""
        row: Row = {"pk": self._pk("supplier_parts", pk), "part": part, "supplier": supplier,
                    "SKU": SKU, "manufacturer_part": None, "link": None, "description": None,
                    "note": None, "packaging": None, "pack_quantity": "1", "available": 0,
                    "availability_updated": None, "active": True, "primary": False,
                    "notes": None}
        row.update({k: v for k, v in fields.items() if k in row})
        self.supplier_parts[row["pk"]] = row
        return row

    def add_price_break(
        self, part: int, quantity: Decimal | int, price: Decimal | str | None,
        currency: str = "USD",
    ) -> Row:
        """A price break of supplier part ``part``."""
        row: Row = {"pk": self._pk("price_breaks", None), "part": part,
               "quantity": Decimal(quantity),
               "price": None if price is None else Decimal(price),
               "price_currency": currency, "updated": self.clock.now().isoformat()}
        self.price_breaks[row["pk"]] = row
        return row

    @classmethod
    def small_catalogue(
        cls, seed: int = 0, *, mouser_parts: list[tuple[str, str]] | None = None,
        **kwargs: Any,
    ) -> InvenTreeSimulator:
        """A deterministic shop floor: categories (one excluded), ~30 parts, a Mouser supplier.

        ``mouser_parts`` lists (Mouser part number, MPN) pairs; the first parts get
        those MPNs as names and, for about half, those Mouser part numbers as SKUs,
        so a Mouser simulator built from the same list answers for them.
        """
        sim = cls(**kwargs)
        rng = random.Random(seed)
        root = sim.add_category("Electronics", pk=1)
        ics = sim.add_category("ICs", parent=root["pk"], pk=2)
        passives = sim.add_category("Passives", parent=root["pk"], pk=3)
        legacy = sim.add_category("Legacy", parent=root["pk"], pk=4,
                                  metadata={"supplier_sync": {"exclude": "True"}})
        old_ics = sim.add_category("Old ICs", parent=legacy["pk"], pk=5)
        mech = sim.add_category("Mechanical", pk=6, metadata={})
        mouser = sim.add_company("Mouser Electronics", pk=3)
        sim.mouser_supplier = mouser["pk"]
        digikey = sim.add_company("DigiKey", pk=4)
        maker = sim.add_company("Texas Instruments", pk=5, is_supplier=False,
                                is_manufacturer=True)
        pairs = list(mouser_parts or [])
        for mpn in _BUILTIN_MPNS:
            if len(pairs) >= 30:
                break
            if all(mpn != p[1] for p in pairs):
                pairs.append((f"595-{mpn}", mpn))
        weights = [ics["pk"]] * 5 + [passives["pk"]] * 3 + [legacy["pk"], old_ics["pk"],
                                                              mech["pk"]]
        for i, (mouser_pn, mpn) in enumerate(pairs):
            pk = 100 + 3 * i + rng.randrange(3)  # gaps: pks are not contiguous
            part = sim.add_part(
                mpn, pk=pk, category=rng.choice(weights), ipn=f"P-{i + 1:04d}",
                description=f"Part {mpn}", active=rng.random() > 0.1,
                purchaseable=rng.random() > 0.1,
            )
            mp = sim.add_manufacturer_part(part["pk"], maker["pk"], mpn)
            if i % 2 == 0 and part["purchaseable"]:
                sp = sim.add_supplier_part(
                    part=part["pk"], supplier=mouser["pk"], SKU=mouser_pn,
                    manufacturer_part=mp["pk"], note="Active" if rng.random() > 0.3 else None,
                )
                if rng.random() > 0.5:
                    sim.add_price_break(sp["pk"], 1, Decimal("1.00"))
                    sim.add_price_break(sp["pk"], 10, Decimal("0.80"))
            elif i % 5 == 1 and part["purchaseable"]:
                sim.add_supplier_part(part=part["pk"], supplier=digikey["pk"],
                                      SKU=f"296-{mpn}-ND", manufacturer_part=mp["pk"])
        ignored = next(iter(sorted(sim.parts)))
        sim.metadata[("part", ignored)] = {"SupplierSyncPlugin": {"SyncIgnore": True}}
        return sim


_BUILTIN_MPNS = (
    "NE555P", "LM358DR", "TL072CP", "LM317T", "UA741CP", "SN74HC00N", "SN74HC595N",
    "TLV9002IDR", "OPA2134PA", "LM2596S-5.0", "TPS7A4700RGWR", "INA219AIDR",
    "CD4017BE", "ULN2003AN", "MAX232CPE", "LMV321IDBVR", "TL431AIDBZR", "LM393DR",
    "SN65HVD230DR", "TPS54331DR", "ADS1115IDGSR", "DRV8825PWPR", "LM7805CT",
    "TLC555CP", "OPA350UA", "TXS0108EPWR", "LM4040DIZ-2.5", "CSD18540Q5B",
    "TMP36GT9Z", "BQ24075RGTR", "SN74LVC1G14DBVR", "TPS61023DRLR",
)


# -- helpers ---------------------------------------------------------------------------
def _not_allowed(method: str) -> DrfError:
    return _detail(405, f'Method "{method}" not allowed.')


async def _body(request: web.Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise DrfError(400, {"detail": "JSON parse error"}) from None


def _object_body(body: Any) -> Row:
    if not isinstance(body, dict):
        raise DrfError(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    return body


def _int_or(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() else None


def _by_flag(rows: list[Row], q: dict[str, str], key: str) -> list[Row]:
    value = q.get(key)
    if value is None or value == "":
        return rows
    if value not in _TRUE | _FALSE:
        raise DrfError(400, {key: ["Select a valid choice."]})
    return [r for r in rows if bool(r.get(key)) == (value in _TRUE)]


def _by_ints(
    rows: list[Row], q: dict[str, str], keys: tuple[str, ...], strings: tuple[str, ...] = ()
) -> list[Row]:
    for key in keys:
        if key in q:
            want = _int_or(q[key], -1)
            rows = [r for r in rows if r.get(key) == want]
    for key in strings:
        if key in q:
            rows = [r for r in rows if r.get(key) == q[key]]
    return rows
