"""A Mouser Search API simulator: catalogue, key checks, call quotas, garbage answers.

Shapes follow the published error bodies: HTTP 200 with an ``Errors`` list
and ``SearchResults: null`` for a bad key, a missing key, ``TooManyRequests``
and ``InvalidCharacters``; GET on a search URL is a 405 with ``{"Error": ...}``.
Quotas count per UTC minute and per UTC day on the injected clock.
"""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from aiohttp import web

from stocksyncd.clock import SYSTEM_CLOCK, Clock
from stocksyncd.simulators.base import Simulator, json_response

LIFECYCLES: tuple[str | None, ...] = (
    None, None, None, "New Product", "Not Recommended for New Designs", "End of Life",
    "Obsolete",
)
CURRENCIES = ("EUR", "USD", "JPY", "SEK")
FAMILIES = ("LM358", "NE555", "BC547", "TL072", "AMS1117", "SN74HC595", "ATMEGA328",
            "STM32F103", "LM317", "MAX232", "ESP32", "IRF540")
MAKERS = ("Texas Instruments", "STMicroelectronics", "onsemi", "Microchip", "Nexperia",
          "Infineon", "Diodes Incorporated")
SUFFIXES = ("P", "DR", "N", "DT", "-TR", "A", "B", "CDR", "IPWR")
PACKAGINGS = ("Reel", "Cut Tape", "MouseReel", "Tube", "Tray", "Bulk")

SEARCHED_FIELDS = ("ManufacturerPartNumber", "Description", "Manufacturer", "Category",
                   "MouserPartNumber")

# Garbage an answer can be replaced with, keyed by the name ``garble`` takes.
GARBAGE_KINDS = (
    "missing_keys", "nulls", "strings_for_numbers", "wrong_types", "no_results_object",
    "html", "not_json", "message_only", "null_results",
)


def format_price(value: Decimal, currency: str) -> str:
    """Render a price the way Mouser shows it to an account of that currency's locale."""
    if currency == "JPY":
        whole = int(value.quantize(Decimal(1), ROUND_HALF_UP))
        return f"¥{whole:,}"
    text = f"{value:,.2f}" if value >= 1 else f"{value:.3f}"
    if currency == "USD":
        return f"${text}"
    if currency == "CHF":  # a Swiss account: point decimal, the code after the number
        return f"{text} CHF"
    continental = text.replace(",", "_").replace(".", ",").replace("_", ".")
    if currency == "SEK":
        return f"{continental} kr"
    return f"{continental} €"


def _error(code: str, message: str | None = None, prop: str | None = None,
           resource: str | None = None) -> dict[str, Any]:
    return {"Id": 0, "Code": code, "Message": message, "ResourceKey": resource,
            "ResourceFormatString": None, "ResourceFormatString2": None, "PropertyName": prop}


def make_part(rng: random.Random, index: int, mpn: str, maker: str) -> dict[str, Any]:
    """One catalogue entry in Mouser's response shape."""
    currency = CURRENCIES[index % len(CURRENCIES)]
    german = currency == "EUR"
    na = index % 10 == 7
    prefix = 500 + rng.randrange(400)
    base = Decimal(rng.randrange(50, 250000)) / 100
    breaks = []
    if not na:
        for qty, factor in ((1, "1"), (10, "0.8"), (100, "0.6"), (1000, "0.45")):
            price = (base * Decimal(factor)).quantize(Decimal("0.01"))
            breaks.append({"Quantity": qty, "Price": format_price(price, currency),
                           "Currency": currency})
    stock = 0 if na else rng.randrange(0, 20000)
    label = "Verpackung" if german else "Packaging"
    packs = rng.sample(PACKAGINGS, k=1 + index % 3)
    host = "www.mouser.de" if german else "www.mouser.com"
    description = f"{maker} {mpn} general purpose part"
    if index % 6 == 0:
        description = f"<b>{mpn}</b> op-amp &amp; driver, 2&nbsp;channels"
    availability = "None" if na else (f"{stock} Auf Lager" if german else f"{stock:,} In Stock")
    return {
        "Availability": availability,
        "AvailabilityInStock": None if na else str(stock),
        "AvailabilityOnOrder": [],
        "DataSheetUrl": "" if index % 5 == 0 else f"https://{host}/datasheet/2/{mpn}.pdf",
        "Description": description,
        "FactoryStock": "0",
        "ImagePath": "",
        "Category": "Semiconductors",
        "LeadTime": f"{rng.randrange(1, 120)} {'Tage' if german else 'Days'}",
        "LifecycleStatus": None if na else LIFECYCLES[rng.randrange(len(LIFECYCLES))],
        "IsDiscontinued": "false",
        "SuggestedReplacement": "",
        "Manufacturer": maker,
        "ManufacturerPartNumber": mpn,
        "Min": "0" if na else "1",
        "Mult": "0" if na else str(rng.choice((1, 1, 10, 50, 2500))),
        "MouserPartNumber": "N/A" if na else f"{prefix}-{mpn}",
        "ProductAttributes": [{"AttributeName": label, "AttributeValue": p} for p in packs]
        + [{"AttributeName": "Standard Pack Qty", "AttributeValue": "2500"}],
        "PriceBreaks": breaks,
        "AlternatePackagings": None,
        "ProductDetailUrl": f"https://{host}/ProductDetail/{maker.replace(' ', '-')}/{mpn}",
        "Reeling": "Reel" in packs,
        "ROHSStatus": "RoHS Compliant",
        "ProductCompliance": [{"ComplianceName": "USHTS", "ComplianceValue": "8542390090"}],
        "UnitWeightKg": {"UnitWeight": 0.0012},
        "InfoMessages": [],
    }


def catalogue(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` deterministic parts: every 10th is "N/A", families share an MPN prefix.

    Part ``i`` belongs to family ``FAMILIES[i % 12]``, so searching a family
    name without ``Exact`` finds several hits from several manufacturers.
    """
    rng = random.Random(seed)
    parts: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index in range(n):
        family = FAMILIES[index % len(FAMILIES)]
        mpn = family + SUFFIXES[(index // len(FAMILIES)) % len(SUFFIXES)]
        round_ = index // (len(FAMILIES) * len(SUFFIXES))
        if round_:
            mpn = f"{mpn}{round_}"
        while mpn in seen:
            mpn += "X"
        seen.add(mpn)
        parts.append(make_part(rng, index, mpn, MAKERS[index % len(MAKERS)]))
    return parts


class MouserSimulator(Simulator):
    """``POST /api/{v1,v1.0,v2}/search/{partnumber,keyword}?apiKey=...``."""

    api = "mouser"

    def __init__(
        self,
        parts: list[dict[str, Any]] | None = None,
        *,
        api_keys: set[str] | frozenset[str] = frozenset({"00000000-test-key-0000-000000000000"}),
        per_minute: int = 30,
        per_day: int = 1000,
        overflow: str = "errors",  # "errors": 200 + TooManyRequests, "429": HTTP 429
        clock: Clock = SYSTEM_CLOCK,
        latency: float = 0.0,
    ) -> None:
        self.parts: list[dict[str, Any]] = parts if parts is not None else catalogue(60)
        self.api_keys = set(api_keys)
        self.per_minute = per_minute
        self.per_day = per_day
        self.overflow = overflow
        self.minute_counts: dict[str, int] = {}
        self.day_counts: dict[str, int] = {}
        self.garbage: list[tuple[str, str]] = []  # (kind, only for this search string)
        super().__init__(clock=clock, latency=latency)

    @property
    def base_url(self) -> str:
        """What a client uses as its base URL."""
        return f"{self.url}/api/v1"

    def setup_routes(self, app: web.Application) -> None:
        """Search routes under every version prefix Mouser answers."""
        for version in ("v1", "v1.0", "v2"):
            for kind in ("partnumber", "keyword"):
                path = f"/api/{version}/search/{kind}"
                app.router.add_post(path, self._search)
                app.router.add_get(path, self._wrong_method)

    # -- helpers for tests and the demo -----------------------------------------
    def part(self, number: str) -> dict[str, Any]:
        """The catalogue entry with this Mouser PN (KeyError when absent)."""
        for part in self.parts:
            if part["MouserPartNumber"] == number:
                return part
        raise KeyError(number)

    def set_lifecycle(self, number: str, status: str | None) -> None:
        """Change a part's ``LifecycleStatus``."""
        self.part(number)["LifecycleStatus"] = status

    def set_prices(self, number: str, breaks: list[tuple[int, Decimal]], currency: str) -> None:
        """Replace a part's price breaks, formatted for the currency's locale."""
        self.part(number)["PriceBreaks"] = [
            {"Quantity": q, "Price": format_price(p, currency), "Currency": currency}
            for q, p in breaks
        ]

    def set_stock(self, number: str, stock: int) -> None:
        """Change availability (prose and number)."""
        part = self.part(number)
        part["AvailabilityInStock"] = str(stock)
        part["Availability"] = f"{stock:,} In Stock"

    def remove(self, number: str) -> None:
        """Mouser stops listing the part."""
        self.parts.remove(self.part(number))

    def garble(self, kind: str, query: str = "") -> None:
        """Answer the next search (for ``query`` only, if given) with garbage ``kind``."""
        if kind not in GARBAGE_KINDS:
            raise ValueError(f"unknown garbage kind {kind!r}; use one of {GARBAGE_KINDS}")
        self.garbage.append((kind, query))

    def calls_today(self) -> int:
        """Counted calls in the current UTC day."""
        return self.day_counts.get(self._day(), 0)

    # -- handlers ------------------------------------------------------------------
    async def _wrong_method(self, request: web.Request) -> web.Response:
        return json_response(
            {"Error": {"Code": "UnsupportedApiVersion",
                       "Message": f"The requested resource with API version '1' does not "
                                  f"support HTTP method '{request.method}'."}},
            status=405,
        )

    def _day(self) -> str:
        return datetime.fromtimestamp(self.clock.time(), UTC).strftime("%Y-%m-%d")

    def _minute(self) -> str:
        return datetime.fromtimestamp(self.clock.time(), UTC).strftime("%Y-%m-%dT%H:%M")

    @staticmethod
    def _fail(*errors: dict[str, Any]) -> web.Response:
        return json_response({"Errors": list(errors), "SearchResults": None})

    async def _search(self, request: web.Request) -> web.StreamResponse:
        key = request.query.get("apiKey", "")
        if not key:
            return self._fail(_error("Required", "Required", "API Key"))
        if key not in self.api_keys:
            return self._fail(_error("Invalid", "Invalid unique identifier.", "API Key",
                                     "InvalidIdentifier"))
        day, minute = self._day(), self._minute()
        if self.day_counts.get(day, 0) >= self.per_day or (
            self.minute_counts.get(minute, 0) >= self.per_minute
        ):
            if self.overflow == "429" and self.day_counts.get(day, 0) < self.per_day:
                return web.Response(status=429, text="")
            return self._fail(_error("TooManyRequests"))
        self.day_counts[day] = self.day_counts.get(day, 0) + 1
        self.minute_counts[minute] = self.minute_counts.get(minute, 0) + 1
        try:
            body = await request.json()
        except ValueError:
            body = None
        if request.path.endswith("/keyword"):
            answer = self._keyword(body)
        else:
            answer = self._partnumber(body)
        if isinstance(answer, web.StreamResponse):
            return answer
        query = self._query(body)
        for index, (kind, only) in enumerate(self.garbage):
            if not only or only.casefold() == query.casefold():
                del self.garbage[index]
                return self._garbage(kind, answer)
        return json_response(answer)

    @staticmethod
    def _query(body: Any) -> str:
        if not isinstance(body, dict):
            return ""
        for root, field_ in (("SearchByPartRequest", "mouserPartNumber"),
                             ("SearchByKeywordRequest", "keyword")):
            inner = body.get(root)
            if isinstance(inner, dict):
                return str(inner.get(field_) or "")
        return ""

    def _partnumber(self, body: Any) -> dict[str, Any] | web.Response:
        inner = body.get("SearchByPartRequest") if isinstance(body, dict) else None
        if not isinstance(inner, dict) or not inner.get("mouserPartNumber"):
            return self._fail(_error("Required", "Required", "SearchByPartRequest"))
        option = str(inner.get("partSearchOptions") or "None").casefold()
        exact = option in ("exact", "2")
        numbers = [n.strip() for n in str(inner["mouserPartNumber"]).split("|")][:10]
        for number in numbers:
            if not number.isascii():
                return self._fail(_error("InvalidCharacters"))
            if len(number) < 3:
                return self._fail(_error("MinLength", None, "MouserPartNumber"))
            if len(number) > 40:
                return self._fail(_error("MaxLength", None, "MouserPartNumber"))
        hits = [p for p in self.parts if any(self._matches(p, n, exact) for n in numbers)]
        return self._results(hits, 0, 50)

    @staticmethod
    def _matches(part: dict[str, Any], number: str, exact: bool) -> bool:
        wanted = number.casefold()
        names = (str(part.get("MouserPartNumber", "")).casefold(),
                 str(part.get("ManufacturerPartNumber", "")).casefold())
        if exact:
            return wanted in names
        return any(name.startswith(wanted) for name in names if name != "n/a")

    def _keyword(self, body: Any) -> dict[str, Any] | web.Response:
        inner = body.get("SearchByKeywordRequest") if isinstance(body, dict) else None
        if not isinstance(inner, dict) or not inner.get("keyword"):
            return self._fail(_error("Required", "Required", "Keyword"))
        keyword = str(inner["keyword"]).casefold()
        if not keyword.isascii():
            return self._fail(_error("InvalidCharacters"))
        hits = [
            p for p in self.parts
            if keyword in " ".join(str(p.get(k, "")) for k in SEARCHED_FIELDS).casefold()
        ]
        start = _as_int(inner.get("startingRecord"), 0)
        records = min(50, max(1, _as_int(inner.get("records"), 50)))
        return self._results(hits, start, records)

    @staticmethod
    def _results(hits: list[dict[str, Any]], start: int, records: int) -> dict[str, Any]:
        return {"Errors": [], "SearchResults": {
            "NumberOfResult": len(hits),
            "Parts": copy.deepcopy(hits[start:start + records]),
        }}

    def _garbage(self, kind: str, answer: dict[str, Any]) -> web.Response:
        parts: list[dict[str, Any]] = answer["SearchResults"]["Parts"]
        if kind == "html":
            return web.Response(status=200, content_type="text/html",
                                text="<html><body><h1>Service Unavailable</h1></body></html>")
        if kind == "not_json":
            return web.Response(status=200, content_type="application/json", text='{"Errors": [')
        if kind == "message_only":
            return json_response({"Message": "An error has occurred."})
        if kind == "no_results_object":
            return json_response({"Errors": [], "SearchResults": None})
        if kind == "null_results":
            return json_response({"Errors": None,
                                  "SearchResults": {"NumberOfResult": None, "Parts": None}})
        for part in parts:
            if kind == "missing_keys":
                for key in ("MouserPartNumber", "PriceBreaks", "Availability"):
                    part.pop(key, None)
            elif kind == "nulls":
                for key in part:
                    part[key] = None
            elif kind == "strings_for_numbers":
                part["AvailabilityInStock"] = "lots"
                part["Min"] = "one"
                for pb in part.get("PriceBreaks") or []:
                    pb["Quantity"] = str(pb["Quantity"])
                    pb["Price"] = "call us"
            elif kind == "wrong_types":
                part["PriceBreaks"] = "none"
                part["ProductAttributes"] = {"Packaging": "Reel"}
        if kind == "wrong_types":
            answer["SearchResults"]["NumberOfResult"] = "many"
        return json_response(answer)


def _as_int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


__all__ = ["GARBAGE_KINDS", "MouserSimulator", "catalogue", "format_price", "make_part"]
