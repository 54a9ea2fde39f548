"""MoySklad JSON API 1.2: products with a key, joined with the short stock report.

The client never mints tokens (``POST /security/token`` revokes the user's
other tokens); it uses the Bearer token it is given. MoySklad rejects any
request without ``Accept-Encoding: gzip`` (HTTP 415), so the transport built
by ``moysklad_transport`` sends it on every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Literal, TypedDict, TypeGuard

import aiohttp
import orjson
from yarl import URL

from stocksyncd.clock import SYSTEM_CLOCK, Clock
from stocksyncd.errors import (
    AuthError,
    FatalApiError,
    InvalidResponseError,
    NotFoundError,
    RateLimitedError,
    TransientError,
)
from stocksyncd.http.decode import selective
from stocksyncd.http.limits import Limits
from stocksyncd.http.ratelimit import RateLimiter, WindowLimiter
from stocksyncd.http.transport import Decoder, RequestObserver, Response, Transport
from stocksyncd.redact import register_secrets

API = "moysklad"
_MSK = timezone(timedelta(hours=3))  # MoySklad announces its dates in Moscow time
DEFAULT_BASE_URL = "https://api.moysklad.ru/api/remap/1.2"
PAGE_LIMIT = 1000  # the documented maximum page size

# Budget: 45 weight units per 3-second window, at most 5 requests in flight.
WINDOW_UNITS = 45.0
WINDOW_SECONDS = 3.0
MAX_PARALLEL = 5
# A user token's weight per request, as MoySklad announced it (docs,
# "_restrictions.md"): 2 units from 12 May 2026, 3 from 1 September 2026, 4
# from 1 December 2026. The client budgets the figure of the day (counting
# 2 before May, which only errs on the safe side); the ``request_weight``
# option overrides it, e.g. for a solution token (1 unit).
USER_TOKEN_WEIGHTS: tuple[tuple[datetime, float], ...] = (
    (datetime(2026, 12, 1, tzinfo=_MSK), 4.0),
    (datetime(2026, 9, 1, tzinfo=_MSK), 3.0),
)
USER_TOKEN_WEIGHT_BEFORE = 2.0
REPORT_WEIGHT = 5.0  # stock reports cost 5 units whatever the auth


def user_token_weight(now: datetime) -> float:
    """The announced weight of one request with a user token at ``now``."""
    for since, weight in USER_TOKEN_WEIGHTS:
        if now >= since:
            return weight
    return USER_TOKEN_WEIGHT_BEFORE

# Codes of the error objects in ``{"errors": [...]}`` bodies.
RATE_LIMIT_CODES = frozenset({1049, 1073})
AUTH_CODES = frozenset({1056, 1048})

SourceKey = Literal["article", "code", "externalCode"]
StockType = Literal["quantity", "stock", "freeStock"]


def msk_text(moment: datetime) -> str:
    """``moment`` as MoySklad's filters take it: Moscow time, whole seconds."""
    return moment.astimezone(_MSK).strftime("%Y-%m-%d %H:%M:%S")


def server_date(headers: Mapping[str, str]) -> datetime | None:
    """MoySklad's clock as its answer's ``Date`` header tells it (None if absent or bad)."""
    raw = headers.get("Date")
    if not raw:
        return None
    try:
        moment = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else None


def moysklad_limiter(clock: Clock = SYSTEM_CLOCK, name: str = API) -> WindowLimiter:
    """The limiter every request of one MoySklad user shares."""
    return WindowLimiter(
        WINDOW_UNITS, WINDOW_SECONDS, concurrency=MAX_PARALLEL, clock=clock,
        remaining_header="X-RateLimit-Remaining", name=name,
    )


def _errors(body: bytes) -> list[dict[str, Any]]:
    """The error objects of a ``{"errors": [...]}`` body (empty for anything else)."""
    if not body.lstrip().startswith(b"{"):
        return []
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return []
    return [e for e in errors if isinstance(e, dict)]


def _describe(errors: list[dict[str, Any]]) -> str:
    return "; ".join(f"{e.get('code', '?')}: {e.get('error', '')}".strip() for e in errors)


def _retry_after_s(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("X-Lognex-Retry-After")
    if raw is None:
        return None
    return _retry_after_ms(raw)  # milliseconds on the wire


def moysklad_check(response: Response) -> None:
    """Classify a MoySklad answer: 429 waits ``X-Lognex-Retry-After`` ms, 4xx are final."""
    status = response.status
    # 2xx bodies are only inspected when they look like an error envelope.
    looks_like_errors = response.body[:20].lstrip().startswith(b'{"errors"')
    if 200 <= status < 300 and not looks_like_errors:
        return
    errors = _errors(response.body)
    codes = {e.get("code") for e in errors}
    text = _describe(errors) or response.body[:200].decode("utf-8", "replace")
    api = response.api
    if status == 429 or codes & RATE_LIMIT_CODES:
        raise RateLimitedError(
            api, f"rate limited (HTTP {status}) {text}".strip(), status=status,
            retry_after=_retry_after_s(response.headers),
        )
    if status >= 500:
        raise TransientError(api, f"server error HTTP {status}: {text}", status=status)
    if status == 401 or codes & AUTH_CODES:
        raise AuthError(
            api, f"token refused (HTTP {status}): {text}; the token was revoked or the user "
            "is blocked: create a new token in MoySklad and put it in the config",
            status=status,
        )
    if status == 403:
        raise AuthError(
            api, f"forbidden (HTTP 403): {text}; the user needs the stock ('Остатки') "
            "permission", status=status,
        )
    if status == 415:
        raise FatalApiError(api, "HTTP 415: the request lacked Accept-Encoding: gzip",
                            status=status)
    if status == 404:
        raise NotFoundError(api, f"not found: {response.url} {text}".strip(), status=status)
    raise FatalApiError(api, f"HTTP {status} from {response.url}: {text}", status=status)


def moysklad_transport(
    session: aiohttp.ClientSession,
    *,
    token: str,
    base_url: str = DEFAULT_BASE_URL,
    limiter: RateLimiter | None = None,
    clock: Clock = SYSTEM_CLOCK,
    timeout: float = 300.0,
    observer: RequestObserver | None = None,
    limits: Limits | None = None,
) -> Transport:
    """A transport with MoySklad's headers, error classification and budget."""
    register_secrets([token])
    return Transport(
        session, api=API, base_url=base_url, clock=clock, timeout=timeout,
        limiter=limiter if limiter is not None else moysklad_limiter(clock),
        headers={
            "Authorization": f"Bearer {token}",
            "Accept-Encoding": "gzip",
            "Accept": "application/json;charset=utf-8",
        },
        observer=observer, check=moysklad_check, limits=limits,
    )


class MoySkladClient:
    """Reads products and stock from MoySklad through one ``Transport``."""

    def __init__(self, transport: Transport, *, weight: float | None = None) -> None:
        self.transport = transport
        self._weight = weight  # None: the announced user-token weight of the day
        # The earliest ``Date`` MoySklad sent since ``reset_server_date``: an
        # incremental reader starts its next window from MoySklad's clock.
        self.earliest_date: datetime | None = None

    def reset_server_date(self) -> None:
        """Forget the dates seen so far (``earliest_date``)."""
        self.earliest_date = None

    @property
    def weight(self) -> float:
        """Units budgeted per ordinary request."""
        if self._weight is not None:
            return self._weight
        return user_token_weight(self.transport.clock.now())

    async def _get_json(
        self, path: str, params: Mapping[str, str | int | float], weight: float,
        decoder: Decoder | None = None,
    ) -> tuple[Response, Any]:
        """GET and parse; a cut-off body is retried like any other retriable failure."""
        response = await self.transport.request("GET", path, params=params, weight=weight,
                                                expect_json=True, decoder=decoder)
        date = server_date(response.headers)
        if date is not None and (self.earliest_date is None or date < self.earliest_date):
            self.earliest_date = date
        return response, response.json()

    async def _product_page(
        self, params: Mapping[str, str | int | float]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        response, data = await self._get_json("entity/product", params, self.weight,
                                              decode_product_page)
        page = data.get("rows") if isinstance(data, dict) else None
        meta = data.get("meta") if isinstance(data, dict) else None
        if not isinstance(page, list) or not isinstance(meta, dict):
            raise InvalidResponseError(
                API, f"entity/product: no rows/meta in the answer from {response.url}",
                status=response.status,
            )
        return [r for r in page if isinstance(r, dict)], meta

    async def first_products(self, limit: int = 1) -> list[dict[str, Any]]:
        """One page of ``entity/product`` (what a credentials check reads)."""
        rows, _meta = await self._product_page({"limit": limit, "offset": 0})
        return rows

    async def products(
        self, key: SourceKey = "article", *, updated_since: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Every non-archived product whose ``key`` field is non-empty, all pages.

        With ``updated_since``: every product changed at or after that moment
        instead, archived ones and ones without a key included (a product that
        lost its key or was archived must leave the caller's index).

        The first page's ``meta.size`` tells every other offset, so the rest
        are requested at once (the limiter lets 5 fly and keeps the budget).
        Any page failing after retries fails the whole call. Rows are
        deduplicated by id, and their number must equal ``meta.size``:
        products added or removed while the pages were read shift offsets,
        so a mismatch means rows may be missing, and the call raises rather
        than return incomplete data. Without ``meta.size`` the pages are
        followed one by one through ``meta.nextHref``.
        """
        # ``field!=`` with an empty value is MoySklad's "has a value" filter.
        wanted = f"{key}!=" if updated_since is None else (
            f"updated>={msk_text(updated_since)};archived=true;archived=false")
        params: dict[str, str | int | float] = {
            "filter": wanted, "limit": PAGE_LIMIT, "offset": 0,
        }
        rows, meta = await self._product_page(params)
        size = meta.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            return await self._follow(rows, meta)
        limit = meta.get("limit")
        step = limit if isinstance(limit, int) and not isinstance(limit, bool) and (
            0 < limit <= PAGE_LIMIT) else PAGE_LIMIT
        offsets = range(step, size, step)

        async def page(offset: int) -> list[dict[str, Any]]:
            return (await self._product_page({**params, "limit": step, "offset": offset}))[0]

        if offsets:
            try:
                async with asyncio.TaskGroup() as group:
                    tasks = [group.create_task(page(offset)) for offset in offsets]
            except ExceptionGroup as failed:
                raise failed.exceptions[0] from None  # the other pages were cancelled
            for task in tasks:
                rows.extend(task.result())
        unique = _dedupe(rows)
        if len(unique) != size:
            raise InvalidResponseError(
                API, f"entity/product: {len(unique)} distinct products read, meta.size said "
                f"{size} (the catalogue changed while it was read?); incomplete data, not used",
            )
        return unique

    async def _follow(
        self, rows: list[dict[str, Any]], meta: dict[str, Any]
    ) -> list[dict[str, Any]]:
        """The remaining pages by ``meta.nextHref``, one after the other."""
        seen_offsets: set[str] = set()
        page_rows = rows
        while True:
            next_href = meta.get("nextHref")
            if not next_href or not page_rows:
                return _dedupe(rows)
            # Follow nextHref's query against our own base URL, so a configured
            # base URL (a proxy, a simulator) is kept for every page.
            params: dict[str, str | int | float] = dict(URL(str(next_href)).query)
            offset = str(params.get("offset", ""))
            if offset in seen_offsets:
                raise InvalidResponseError(API, f"entity/product: nextHref repeats offset {offset}")
            seen_offsets.add(offset)
            page_rows, meta = await self._product_page(params)
            rows.extend(page_rows)

    async def stock(
        self, stock_type: StockType = "quantity", store_id: str | None = None, *,
        changed_since: datetime | None = None,
    ) -> dict[str, object]:
        """``assortmentId -> value`` from ``report/stock/all/current`` (one call, raw values).

        With ``changed_since`` (at most 24 h back): only the items whose stock
        changed since, with their current value; an item not listed is unchanged.
        """
        params: dict[str, str | int | float] = {
            "stockType": stock_type, "include": "zeroLines",
        }
        if changed_since is not None:
            params["changedSince"] = msk_text(changed_since)
        if store_id:
            params["filter"] = f"storeId={store_id}"
        response, data = await self._get_json(
            "report/stock/all/current", params, max(self.weight, REPORT_WEIGHT)
        )
        if not isinstance(data, list):
            raise InvalidResponseError(
                API, f"report/stock/all/current: expected a JSON array from {response.url}",
                status=response.status,
            )
        return stock_rows(data, stock_type, response.url)

    def requests_made(self) -> int:
        """HTTP attempts sent through the transport."""
        return self.transport.requests


# MoySklad ids are UUIDs; anything else in assortmentId is a broken row, not a product.
_UUID = re.compile(r"[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}", re.ASCII)


def is_entity_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a MoySklad id (a UUID as text)."""
    return type(value) is str and _UUID.fullmatch(value) is not None


def stock_rows(data: list[Any], stock_type: str, url: str) -> dict[str, object]:
    """``assortmentId -> value`` of a stock report, or an error naming the first bad row.

    A row whose product cannot be told (no ``assortmentId``, or one that is
    not text) or a product listed twice with different figures makes the
    whole report unusable: the job would otherwise take that product as
    absent from the report, which means 0. Values are returned raw; the
    planner judges them.
    """
    stock: dict[str, object] = {}
    for n, row in enumerate(data):
        if type(row) is not dict:
            raise _bad_row(n, f"is {type(row).__name__}, not an object", url)
        ref = row.get("assortmentId")
        if not is_entity_id(ref):
            raise _bad_row(n, f"has no usable assortmentId ({_shown(ref)})", url)
        value = row.get(stock_type)
        if ref in stock and stock[ref] != value:
            raise _bad_row(n, f"lists {ref} a second time with another {stock_type} "
                              f"({_shown(stock[ref])} and {_shown(value)})", url)
        stock[ref] = value
    return stock


def _shown(value: object) -> str:
    text = "missing" if value is None else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bad_row(n: int, what: str, url: str) -> InvalidResponseError:
    return InvalidResponseError(
        API, f"report/stock/all/current: row {n} {what}, so its stock cannot be attributed "
        f"to a product; the report is not used ({url})",
    )


def _retry_after_ms(raw: str) -> float | None:
    """Milliseconds of ``X-Lognex-Retry-After`` as seconds; None unless plain digits."""
    raw = raw.strip()
    if not (raw.isascii() and raw.isdigit()):
        return None  # "1e8", "-5", "soon": no figure to honour; the usual backoff applies
    if len(raw) > 12:
        return float("inf")  # beyond any cap; the transport refuses to wait that long
    return int(raw) / 1000.0


class _Row(TypedDict, total=False):
    """The fields of a product the job reads; the others are skipped unread."""

    id: Any
    archived: Any  # read by the incremental source, which asks for archived ones too
    name: Any  # for reports (which item a key belongs to)
    article: Any
    code: Any
    externalCode: Any


class _Meta(TypedDict, total=False):
    size: Any
    limit: Any
    nextHref: Any


class _ProductPage(TypedDict, total=False):
    meta: _Meta
    rows: list[_Row]


# Products carry dozens of fields (prices, barcodes, attributes, hrefs) the job
# never reads: decoding only the ones it needs is about 3x faster than a full
# parse, and a run reads every product.
# An answer of another shape (rows that are not objects, say) is parsed in
# full, for ``_product_page`` to judge as before.
decode_product_page = selective(_ProductPage)


def _dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in order, each id once (a row without an id is kept as it is)."""
    ids = [row.get("id") for row in rows]
    with contextlib.suppress(TypeError):  # an unhashable id: take the long way
        if len(set(ids)) == len(ids):
            return rows  # the usual case: every id once, nothing to drop
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for row, rid in zip(rows, ids, strict=True):
        if isinstance(rid, str):
            if rid in seen:
                continue
            seen.add(rid)
        out.append(row)
    return out
