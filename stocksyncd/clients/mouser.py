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
from typing import Any, Literal

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
BATCH_MAX = 10  # part numbers one part-number search takes, joined by "|"
MAX_COUNT = 10**12  # no stock figure, quantity or result count is larger
SKU_MIN, SKU_MAX = 3, 40  # Mouser's length limits for one searched part number

LimitWindow = Literal["minute", "day", "unknown"]

# Codes that describe the search string, not the service: skip that part.
INPUT_CODES = frozenset(
    {"InvalidCharacters", "MinLength", "MaxLength", "InvalidFormat", "NotFound",
     "NotAvailable", "NotAllowed", "Invalid", "Required"}
)


class MouserRateLimited(QuotaExhaustedError):
    """``TooManyRequests`` (or HTTP 429): ``window`` says which limit, when Mouser tells.

    Mouser's daily refusal carries no message at all, and its per-minute
    refusal is not documented; "unknown" leaves the decision to the caller's
    own ledger of calls.
    """

    def __init__(self, message: str, *, window: LimitWindow, resets_at: float | None,
                 ledger: bool = False) -> None:
        super().__init__(API, message, resets_at=resets_at)
        self.window: LimitWindow = window
        self.ledger = ledger  # refused by our own count of calls: nothing went out


def limit_window(message: str) -> LimitWindow:
    """Which limit a refusal's message names ("... per minute", "daily ...")."""
    text = message.casefold()
    if any(w in text for w in ("minute", "second", "per min")):
        return "minute"
    if any(w in text for w in ("day", "daily", "24 h", "24h", "24 hours")):
        return "day"
    return "unknown"


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
    # Why Mouser's price list cannot be used (then ``price_breaks`` is empty): a
    # list with one unreadable break is never applied in part.
    price_error: str | None = None

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

    @property
    def complete(self) -> bool:
        """Every hit Mouser counted is here and readable: a missing SKU is really gone."""
        return not self.rejected and self.number_of_results == len(self.parts)

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

        Raises ``PayloadError`` when the answer for the SKU is malformed or
        several hits leave the SKU ambiguous.
        """
        found = (await self.lookup_many([sku]))[sku]
        if isinstance(found, PayloadError):
            raise found
        return found

    async def lookup_many(
        self, skus: Iterable[str]
    ) -> dict[str, MouserPart | PayloadError | None]:
        """One exact search for up to ten SKUs, the answer split per SKU.

        Each SKU maps to its part, to None when a complete, well-formed answer
        has no part with that Mouser part number (Mouser no longer knows it),
        or to a ``PayloadError`` saying why its part cannot be told.
        """
        wanted = list(dict.fromkeys(s.strip() for s in skus))
        if not 1 <= len(wanted) <= BATCH_MAX:
            raise ValueError(f"lookup_many takes 1 to {BATCH_MAX} SKUs, not {len(wanted)}")
        for sku in wanted:
            problem = sku_problem(sku)
            if problem:
                raise ValueError(f"SKU {sku!r} {problem}")
        result = await self.search_part_number("|".join(wanted), exact=True)
        return {sku: self._split(result, sku, single=len(wanted) == 1) for sku in wanted}

    def _split(self, result: SearchResult, sku: str, *, single: bool
               ) -> MouserPart | PayloadError | None:
        key = sku.casefold()
        same = [p for p in result.parts if p.mouser_part_number.casefold() == key]
        if len(same) == 1:
            return same[0]
        if same:
            return PayloadError(self._scrub(f"mouser: SKU {sku!r} is ambiguous: "
                                            f"{len(same)} parts with that number"))
        if single and len(result.parts) == 1 and result.complete:
            # Mouser may answer a SKU typed in another spelling with its own.
            return result.parts[0]
        if result.rejected:
            return PayloadError(self._scrub(
                f"mouser: SKU {sku!r}: the answer holds unreadable parts "
                f"({result.rejected[0]})"))
        if not result.complete:
            return PayloadError(self._scrub(
                f"mouser: SKU {sku!r} is not among the {len(result.parts)} parts sent of "
                f"{result.number_of_results} found, so whether Mouser knows it cannot be told"))
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
        if status == 429:
            # Mouser does not document how it signals the per-minute limit;
            # which window it was is for the caller's ledger to decide.
            said = f": {message}" if message else ""
            raise MouserRateLimited(f"HTTP 429: call limit reached{said}",
                                    window=limit_window(message),
                                    resets_at=self.transport.clock.time() + 60)
        if status >= 500:
            raise TransientError(API, f"server error HTTP {status}", status=status)
        if status == 401:
            raise AuthError(API, "HTTP 401: API key refused", status=status)
        if status >= 300:
            # Mouser reports a bad search string in a 200 body; an HTTP error
            # is about the service, the key or a proxy, never about one part.
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
            raise PayloadError(f"mouser: answer from {response.url} has no SearchResults "
                               "and no Errors")

    def _raise_for_errors(self, errors: list[Any]) -> None:
        first = next((e for e in errors if isinstance(e, dict)), {})
        code = _text(first.get("Code"))
        text = _text(first.get("Message"))
        prop = _text(first.get("PropertyName"))
        said = ", ".join(x for x in (code or "no code", text, prop) if x)
        if code == "TooManyRequests":
            window = limit_window(text)
            now = self.transport.clock.time()
            # Mouser does not say when the daily quota resets; assume 00:00 UTC.
            resets_at = now + 60 if window == "minute" else next_utc_midnight(now)
            raise MouserRateLimited(f"call limit reached ({said})", window=window,
                                    resets_at=resets_at)
        if prop.replace(" ", "").casefold() == "apikey":
            raise AuthError(API, f"API key refused ({said})")
        if code in INPUT_CODES:
            raise PayloadError(f"mouser: search string rejected ({said})")
        raise TransientError(API, f"Mouser error ({said})")

    # -- parsing ---------------------------------------------------------------
    def _parse_results(self, query: str, data: dict[str, Any]) -> SearchResult:
        """A well-formed answer only: nulls or wrong types never read as "no parts"."""
        results = data["SearchResults"]  # a dict: _check made sure
        raw_parts = results.get("Parts")
        if not isinstance(raw_parts, list):
            raise PayloadError(self._scrub(
                f"mouser: search {query!r}: Parts is {_kind(raw_parts)}, not a list"))
        total = _count(results.get("NumberOfResult"), "NumberOfResult")
        if isinstance(total, str):
            raise PayloadError(self._scrub(f"mouser: search {query!r}: {total}"))
        if total < len(raw_parts):
            raise PayloadError(self._scrub(
                f"mouser: search {query!r}: NumberOfResult {total} but "
                f"{len(raw_parts)} parts sent"))
        result = SearchResult(query, total)
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
            raise PayloadError(f"mouser: part is {_kind(raw)}, not an object")
        pn_raw = raw.get("MouserPartNumber")
        pn = pn_raw.strip() if isinstance(pn_raw, str) else ""
        if not pn:
            mpn = _text(raw.get("ManufacturerPartNumber")) or "?"
            raise PayloadError(f"mouser: part {mpn!r} has no MouserPartNumber "
                               f"(it is {_kind(pn_raw)})")
        for key in ("ManufacturerPartNumber", "Manufacturer", "Description",
                    "LifecycleStatus", "Availability", "ProductDetailUrl"):
            if not isinstance(raw.get(key), str | None):
                raise PayloadError(f"mouser: part {pn!r}: {key} is {_kind(raw.get(key))}, "
                                   "not text")
        breaks, price_error = self._price_breaks(raw.get("PriceBreaks"))
        availability = _text(raw.get("Availability"))
        in_stock = self._number(pn, raw, "AvailabilityInStock")
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
            min_order=self._number(pn, raw, "Min"),
            multiple=self._number(pn, raw, "Mult"),
            lead_time=_text(raw.get("LeadTime")),
            is_discontinued=_text(raw.get("IsDiscontinued")).casefold() == "true",
            suggested_replacement=_text(raw.get("SuggestedReplacement")),
            price_error=price_error,
        )

    @staticmethod
    def _number(pn: str, raw: dict[str, Any], key: str) -> int | None:
        """A count Mouser may send as text or number; null is "not said", garbage an error."""
        value = raw.get(key)
        if value is None or value == "":
            return None
        parsed = _count(value, key)
        if isinstance(parsed, str):
            raise PayloadError(f"mouser: part {pn!r}: {parsed}")
        return parsed

    @staticmethod
    def _price_breaks(raw: Any) -> tuple[list[PriceBreak], str | None]:
        """Every break, or none and the reason: a partial list is never applied."""
        if raw is None:
            return [], None
        if not isinstance(raw, list):
            return [], f"PriceBreaks is {_kind(raw)}, not a list"
        breaks: list[PriceBreak] = []
        for index, entry in enumerate(raw, 1):
            if not isinstance(entry, dict):
                return [], f"price break #{index} is {_kind(entry)}, not an object"
            quantity = _count(entry.get("Quantity"), "Quantity")
            if isinstance(quantity, str):
                return [], f"price break #{index}: {quantity}"
            if quantity < 1:
                return [], f"price break #{index}: Quantity is 0"
            currency = entry.get("Currency")
            code_ok = isinstance(currency, str) and _ISO.fullmatch(currency.strip().upper())
            if not isinstance(currency, str) or not code_ok:
                return [], (f"price break #{index} (quantity {quantity}): Currency "
                            f"{currency!r} is not a currency code")
            price_text = entry.get("Price")
            if not isinstance(price_text, str):
                return [], (f"price break #{index} (quantity {quantity}): Price is "
                            f"{_kind(price_text)}, not text")
            try:
                price, code = parse_price(price_text, currency)
            except ValueError as exc:
                return [], f"price break #{index} (quantity {quantity}): {exc}"
            if price < 0 or code is None:
                return [], f"price break #{index} (quantity {quantity}): no usable price"
            breaks.append(PriceBreak(quantity, price, code))
        if len({b.quantity for b in breaks}) != len(breaks):
            return [], "two price breaks for the same quantity"
        if len({b.currency for b in breaks}) > 1:
            return [], "price breaks in more than one currency"
        breaks.sort(key=lambda b: b.quantity)
        return breaks, None

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
        if isinstance(exc, MouserRateLimited):
            return MouserRateLimited(clean, window=exc.window, resets_at=exc.resets_at)
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


def _kind(value: Any) -> str:
    """What a JSON value is, for messages ("null", "a list", "the text 'x'")."""
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    if isinstance(value, bool | int | float):
        return f"the {type(value).__name__} {value!r}"[:60]
    return f"a {type(value).__name__}"


def _count(value: Any, name: str) -> int | str:
    """A non-negative integer up to ``MAX_COUNT`` (int, "1200", "1,200"), else why not.

    Floats, exponents and huge numbers are refused rather than rounded: "1e300"
    in a stock field is a bad value of that part, never a different number.
    """
    if isinstance(value, bool):
        return f"{name} is {_kind(value)}, not a count"
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        text = value.strip()
        if _GROUPED_INT.match(text):
            text = re.sub(r"\D", "", text)
        if not (text.isascii() and text.isdigit() and len(text) <= 13):
            return f"{name} is {_kind(value)}, not a count"
        number = int(text)
    else:
        return f"{name} is {_kind(value)}, not a count"
    if not 0 <= number <= MAX_COUNT:
        return f"{name} {number} is out of range"
    return number


def _int(value: Any) -> int | None:
    """A count, or None for anything else (used only on Mouser's prose)."""
    parsed = _count(value, "")
    return None if isinstance(parsed, str) else parsed


def sku_problem(sku: str) -> str | None:
    """Why ``sku`` cannot go into a part-number search, or None."""
    if not SKU_MIN <= len(sku) <= SKU_MAX:
        return f"is not {SKU_MIN}-{SKU_MAX} characters long"
    if not sku.isascii() or not sku.isprintable() or "|" in sku:
        return "holds characters Mouser does not search for"
    return None


def _leading_int(text: str) -> int | None:
    match = re.match(r"^\s*(\d[\d.,'\s\u00a0\u202f]*)", text)
    return _int(match.group(1)) if match else None


_ISO = re.compile(r"[A-Z]{3}")
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
    "BATCH_MAX",
    "DEFAULT_PACKAGING_LABELS",
    "MouserClient",
    "MouserPart",
    "MouserRateLimited",
    "PriceBreak",
    "SearchResult",
    "limit_window",
    "next_utc_midnight",
    "sku_problem",
]
