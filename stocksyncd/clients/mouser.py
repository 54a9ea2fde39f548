"""Mouser Search API: part-number and keyword search, parsed into typed parts.

Mouser answers most errors with HTTP 200 and an ``Errors`` list, so the
classification runs as the transport's ``check`` hook: a body error that is
worth retrying (``InternalError``) is retried by the transport like a 5xx.
The API key travels in the URL; every message this module builds comes from
redacted URLs and is scrubbed of the key once more before it is raised.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from loguru import logger

from stocksyncd.clients.prices import parse_price
from stocksyncd.errors import (
    ApiError,
    AuthError,
    FatalApiError,
    InvalidResponseError,
    PayloadError,
    QuotaExhaustedError,
    TransientError,
)
from stocksyncd.http.transport import Response, Transport
from stocksyncd.redact import MASK

API = "mouser"
NA = "N/A"
DEFAULT_PACKAGING_LABELS = ("Packaging", "Verpackung")
MAX_RECORDS = 50

# Codes that describe the search string, not the service: skip that part.
INPUT_CODES = frozenset(
    {"InvalidCharacters", "MinLength", "MaxLength", "InvalidFormat", "NotFound",
     "NotAvailable", "NotAllowed", "Invalid", "Required"}
)


@dataclass(frozen=True)
class PriceBreak:
    """One quantity break of a Mouser price list."""

    quantity: int
    price: Decimal
    currency: str


@dataclass
class MouserPart:
    """One catalogue entry as the sync needs it."""

    mouser_part_number: str
    manufacturer: str
    manufacturer_part_number: str
    description: str  # HTML tags removed, entities decoded
    lifecycle_status: str | None  # None for ordinary active parts
    availability: str  # Mouser's localized prose, e.g. "5000 In Stock"
    in_stock: int | None  # None when Mouser gives no number
    price_breaks: list[PriceBreak] = field(default_factory=list)
    packaging: str = ""  # every packaging attribute value, joined with ", "
    product_detail_url: str = ""
    data_sheet_url: str = ""
    category: str = ""
    min_order: int | None = None
    multiple: int | None = None  # order multiple; the supplier part's pack quantity
    lead_time: str = ""
    is_discontinued: bool = False
    suggested_replacement: str = ""
    warnings: list[str] = field(default_factory=list)  # price breaks that were skipped

    @property
    def is_na(self) -> bool:
        """Mouser lists the part but it cannot be ordered (PN "N/A")."""
        return self.mouser_part_number.strip().upper() == NA


@dataclass
class SearchResult:
    """One search answer: the parts that parsed, and why the others did not."""

    query: str
    number_of_results: int  # Mouser's total; may exceed len(parts) (50 per call)
    parts: list[MouserPart] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # one message per malformed part

    def best_match(self, number: str) -> MouserPart | None:
        """The hit whose Mouser PN or MPN equals ``number`` (case-insensitive), orderable first."""
        wanted = number.strip().casefold()
        same = [
            p for p in self.parts
            if wanted in (p.mouser_part_number.casefold(), p.manufacturer_part_number.casefold())
        ]
        same.sort(key=lambda p: p.is_na)
        return same[0] if same else None


def next_utc_midnight(now: float) -> float:
    """Epoch seconds of the next 00:00 UTC after ``now``."""
    day = datetime.fromtimestamp(now, UTC).date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


class MouserClient:
    """Search calls against one Mouser Search API key."""

    def __init__(
        self,
        transport: Transport,
        api_key: str,
        *,
        packaging_labels: Iterable[str] = DEFAULT_PACKAGING_LABELS,
    ) -> None:
        self.transport = transport
        self._api_key = api_key
        self.packaging_labels = frozenset(label.casefold() for label in packaging_labels)

    # -- public calls ----------------------------------------------------------
    async def search_part_number(self, number: str, *, exact: bool) -> SearchResult:
        """Part-number search: ``exact`` for a known SKU, otherwise Mouser's prefix match."""
        body = {
            "SearchByPartRequest": {
                "mouserPartNumber": number,
                "partSearchOptions": "Exact" if exact else "None",
            }
        }
        data = await self._post("search/partnumber", body)
        return self._parse_results(number, data)

    async def lookup(self, sku: str) -> MouserPart | None:
        """Exact search on a Mouser SKU; None when Mouser no longer knows it.

        Raises ``PayloadError`` when the only answer for the SKU is malformed
        or when several hits leave the SKU ambiguous.
        """
        result = await self.search_part_number(sku, exact=True)
        match = result.best_match(sku)
        if match is not None:
            return match
        if len(result.parts) == 1 and not result.rejected:
            return result.parts[0]
        if result.rejected:
            raise PayloadError(self._scrub(f"mouser: SKU {sku!r}: {result.rejected[0]}"))
        if result.parts:
            raise PayloadError(
                self._scrub(f"mouser: SKU {sku!r} is ambiguous: {len(result.parts)} hits")
            )
        return None

    async def search_name(self, name: str) -> SearchResult:
        """Search by a part name (the manufacturer part number): non-exact matching."""
        return await self.search_part_number(name, exact=False)

    async def search_keyword(
        self, keyword: str, *, records: int = MAX_RECORDS, starting_record: int = 0
    ) -> SearchResult:
        """Keyword search, one page (at most 50 parts) from ``starting_record``."""
        body = {
            "SearchByKeywordRequest": {
                "keyword": keyword,
                "records": max(1, min(MAX_RECORDS, records)),
                "startingRecord": max(0, starting_record),
                "searchOptions": "None",
            }
        }
        data = await self._post("search/keyword", body)
        return self._parse_results(keyword, data)

    # -- transport -------------------------------------------------------------
    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self.transport.request(
                "POST", path, params={"apiKey": self._api_key}, json_body=body,
                headers={"Accept": "application/json", "User-Agent": "stocksyncd"},
                check=self._check,
            )
        except ApiError as exc:
            raise self._scrubbed(exc) from None
        data = response.json()
        assert isinstance(data, dict)  # _check accepted the body, so it is an object
        return data

    def _check(self, response: Response) -> None:
        """Classify HTTP status and Mouser's 200-with-Errors answers."""
        status = response.status
        data: Any = None
        if response.body:
            try:
                data = orjson.loads(response.body)
            except orjson.JSONDecodeError:
                data = None
        message = _framework_message(data)
        if status in (403, 429):
            # Mouser does not document per-minute overflow; treat it like the
            # quota: stop calling, never retry into it.
            raise QuotaExhaustedError(
                API, f"HTTP {status}: call limit reached",
                resets_at=self.transport.clock.time() + 60,
            )
        if status >= 500:
            raise TransientError(API, f"server error HTTP {status}", status=status)
        if status == 401:
            raise AuthError(API, "HTTP 401: API key refused", status=status)
        if status >= 300:
            detail = f": {message}" if message else ""
            raise FatalApiError(API, f"HTTP {status} from {response.url}{detail}", status=status)
        if data is None:
            response.json()  # raises InvalidResponseError with a snippet (retried)
            raise InvalidResponseError(API, f"empty answer from {response.url}", status=status)
        if not isinstance(data, dict):
            raise PayloadError(f"mouser: answer is a {type(data).__name__}, not an object")
        if message and "Errors" not in data and "SearchResults" not in data:
            raise FatalApiError(API, f"Mouser said: {message}", status=status)
        errors = data.get("Errors")
        if errors:
            self._raise_for_errors(errors if isinstance(errors, list) else [errors])
        if not isinstance(data.get("SearchResults"), dict):
            raise PayloadError("mouser: answer has no SearchResults and no Errors")

    def _raise_for_errors(self, errors: list[Any]) -> None:
        first = next((e for e in errors if isinstance(e, dict)), {})
        code = _text(first.get("Code"))
        text = _text(first.get("Message"))
        prop = _text(first.get("PropertyName"))
        said = ", ".join(x for x in (code or "no code", text, prop) if x)
        if code == "TooManyRequests":
            # Mouser does not say when the daily quota resets; assume 00:00 UTC.
            resets_at = next_utc_midnight(self.transport.clock.time())
            raise QuotaExhaustedError(API, "daily call quota used up (TooManyRequests)",
                                      resets_at=resets_at)
        if prop.replace(" ", "").casefold() == "apikey":
            raise AuthError(API, f"API key refused ({said})")
        if code in INPUT_CODES:
            raise PayloadError(f"mouser: search string rejected ({said})")
        raise TransientError(API, f"Mouser error ({said})")

    # -- parsing ---------------------------------------------------------------
    def _parse_results(self, query: str, data: dict[str, Any]) -> SearchResult:
        results = data["SearchResults"]  # a dict: _check made sure
        raw_parts = results.get("Parts")
        if raw_parts is None:
            raw_parts = []
        if not isinstance(raw_parts, list):
            raise PayloadError(f"mouser: Parts is a {type(raw_parts).__name__}, not a list")
        total = _int(results.get("NumberOfResult"))
        result = SearchResult(query, total if total is not None else len(raw_parts))
        for index, raw in enumerate(raw_parts):
            try:
                result.parts.append(self.parse_part(raw))
            except PayloadError as exc:
                result.rejected.append(f"hit #{index + 1}: {exc}")
                logger.warning("mouser: skipped a malformed hit for {q!r}: {e}", q=query, e=exc)
        return result

    def parse_part(self, raw: Any) -> MouserPart:
        """One ``Parts`` entry; ``PayloadError`` names what is wrong with it."""
        try:
            return self._parse_part(raw)
        except PayloadError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
            raise PayloadError(f"mouser: malformed part ({type(exc).__name__}: {exc})") from None

    def _parse_part(self, raw: Any) -> MouserPart:
        if not isinstance(raw, dict):
            raise PayloadError(f"mouser: part is a {type(raw).__name__}, not an object")
        pn = _text(raw.get("MouserPartNumber"))
        if not pn:
            mpn = _text(raw.get("ManufacturerPartNumber")) or "?"
            raise PayloadError(f"mouser: part {mpn!r} has no MouserPartNumber")
        warnings: list[str] = []
        breaks = self._price_breaks(pn, raw.get("PriceBreaks"), warnings)
        availability = _text(raw.get("Availability"))
        in_stock = _int(raw.get("AvailabilityInStock"))
        if in_stock is None:
            in_stock = _leading_int(availability)
        lifecycle = _text(raw.get("LifecycleStatus")) or None
        return MouserPart(
            mouser_part_number=pn,
            manufacturer=_text(raw.get("Manufacturer")),
            manufacturer_part_number=_text(raw.get("ManufacturerPartNumber")),
            description=_plain(_text(raw.get("Description"))),
            lifecycle_status=lifecycle,
            availability=availability,
            in_stock=in_stock,
            price_breaks=breaks,
            packaging=self._packaging(pn, raw.get("ProductAttributes")),
            product_detail_url=_text(raw.get("ProductDetailUrl")),
            data_sheet_url=_text(raw.get("DataSheetUrl")),
            category=_text(raw.get("Category")),
            min_order=_int(raw.get("Min")),
            multiple=_int(raw.get("Mult")),
            lead_time=_text(raw.get("LeadTime")),
            is_discontinued=_text(raw.get("IsDiscontinued")).casefold() == "true",
            suggested_replacement=_text(raw.get("SuggestedReplacement")),
            warnings=warnings,
        )

    def _price_breaks(self, pn: str, raw: Any, warnings: list[str]) -> list[PriceBreak]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            raise PayloadError(f"mouser: part {pn!r}: PriceBreaks is a {type(raw).__name__}")
        breaks: list[PriceBreak] = []
        for entry in raw:
            if not isinstance(entry, dict):
                warnings.append(f"price break {entry!r} is not an object")
                continue
            quantity = _int(entry.get("Quantity"))
            hint = _text(entry.get("Currency")).upper() or None
            try:
                price, currency = parse_price(_text(entry.get("Price")), hint)
            except ValueError as exc:
                warnings.append(f"skipped price break for quantity {quantity}: {exc}")
                continue
            if quantity is None or quantity < 1 or currency is None:
                warnings.append(
                    f"skipped price break {entry.get('Quantity')!r} / {entry.get('Price')!r}: "
                    "no valid quantity or currency"
                )
                continue
            breaks.append(PriceBreak(quantity, price, currency))
        for warning in warnings:
            logger.warning("mouser: part {pn}: {w}", pn=pn, w=warning)
        breaks.sort(key=lambda b: b.quantity)
        return breaks

    def _packaging(self, pn: str, raw: Any) -> str:
        if not isinstance(raw, list):
            return ""
        values: list[str] = []
        for attr in raw:
            if not isinstance(attr, dict):
                continue
            if _text(attr.get("AttributeName")).casefold() not in self.packaging_labels:
                continue
            value = _text(attr.get("AttributeValue"))
            if value and value not in values:
                values.append(value)
        return ", ".join(values)

    # -- secrets ---------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, MASK) if self._api_key else text

    def _scrubbed(self, exc: ApiError) -> ApiError:
        """The same error with the key removed from its message (belt and braces)."""
        if not self._api_key or self._api_key not in str(exc):
            return exc
        clean = self._scrub(exc.detail)
        if isinstance(exc, QuotaExhaustedError):
            return QuotaExhaustedError(exc.api, clean, resets_at=exc.resets_at)
        return type(exc)(exc.api, clean, status=exc.status)


def _text(value: Any) -> str:
    """A string field that may be null, a number or missing."""
    if value is None or isinstance(value, dict | list):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def _int(value: Any) -> int | None:
    """An integer that Mouser may send as int, float, "1200", "1,200" or null."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        if _GROUPED_INT.match(text):
            text = re.sub(r"\D", "", text)
        return int(text) if text.isdigit() and text.isascii() else None
    return None


def _leading_int(text: str) -> int | None:
    match = re.match(r"^\s*(\d[\d.,'\s\u00a0\u202f]*)", text)
    return _int(match.group(1)) if match else None


_GROUPED_INT = re.compile(r"^\d{1,3}(?:[.,'\s\u00a0\u202f]\d{3})+$")
_TAG = re.compile(r"<[^>]*>")


def _plain(text: str) -> str:
    return " ".join(html.unescape(_TAG.sub(" ", text)).split())


def _framework_message(data: Any) -> str:
    """ASP.NET-style ``{"Message": ...}`` or ``{"Error": {"Message": ...}}`` bodies."""
    if not isinstance(data, dict):
        return ""
    error = data.get("Error")
    if isinstance(error, dict):
        return _text(error.get("Message")) or _text(error.get("Code"))
    return _text(data.get("Message"))


__all__ = [
    "DEFAULT_PACKAGING_LABELS",
    "MouserClient",
    "MouserPart",
    "PriceBreak",
    "SearchResult",
    "next_utc_midnight",
]
