"""Kak2c ("Кактус") API lite: JWT login and the product list.

The token is a JWT valid for about four hours. The client reads its ``exp``
claim and logs in again shortly before it runs out; one login serves every
concurrent request. If the server still refuses the token (HTTP 401, or the
body ``{"errors":[{"code":401,...}],"success":false}``) the client logs in
again once and repeats the request once.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import aiohttp
import orjson
from loguru import logger

from stocksyncd.clock import SYSTEM_CLOCK, Clock
from stocksyncd.errors import (
    AuthError,
    FatalApiError,
    InvalidResponseError,
    NotFoundError,
    RateLimitedError,
    TransientError,
)
from stocksyncd.http.limits import Limits
from stocksyncd.http.ratelimit import RateLimiter, WindowLimiter
from stocksyncd.http.transport import (
    RequestObserver,
    Response,
    Transport,
    parse_retry_after,
)
from stocksyncd.redact import forget_secrets, register_secrets

API = "kak2c"
DEFAULT_BASE_URL = "https://app.kak2c.ru/api/lite"
# Kak2c documents no page-size cap, no rate limit and no concurrency limit. These
# defaults are assumptions chosen by measurement against the simulator (see
# docs/benchmarks.md, "Kak2c paging"): 500 products a page and 4 pages in flight
# read 100k variants in a few seconds at 50 ms latency while staying far below the
# 10 requests a second the client allows itself.
DEFAULT_PAGE_SIZE = 500
DEFAULT_CONCURRENCY = 4
DEFAULT_RATE = 10.0  # requests a second per account
DEFAULT_TOKEN_TTL = 14400.0  # documented lifetime, used when a token carries no exp
# recordsTotal above this is a broken answer, not a catalogue: it would set the
# number of pages read.
MAX_RECORDS = 10_000_000
REFRESH_AHEAD = 300.0  # log in again this long before exp (less for short-lived tokens)


class TokenRejectedError(AuthError):
    """The server refused the access token (expired or revoked): log in again."""


def _error_codes(body: bytes) -> tuple[list[Any], str]:
    """Codes and messages of a ``{"errors": [...], "success": false}`` body."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return [], ""
    errors = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errors, list):
        return [], ""
    codes = [e.get("code") for e in errors if isinstance(e, dict)]
    text = "; ".join(str(e.get("message", "")) for e in errors if isinstance(e, dict))
    return codes, text


def kak2c_check(response: Response) -> None:
    """Classify a Kak2c answer; a refused token becomes ``TokenRejectedError``."""
    status = response.status
    body = response.body
    if 200 <= status < 300 and b'"errors"' not in body[:64]:
        return
    codes, text = _error_codes(body)
    text = text or body[:200].decode("utf-8", "replace")
    api = response.api
    if status == 401 or 401 in codes or "401" in codes:
        raise TokenRejectedError(api, f"token refused (HTTP {status}): {text}", status=status)
    if status == 429 or (status == 503 and "Retry-After" in response.headers):
        raise RateLimitedError(
            api, f"rate limited (HTTP {status})", status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status >= 500:
        raise TransientError(api, f"server error HTTP {status}: {text}", status=status)
    if status == 403:
        raise AuthError(api, f"forbidden (HTTP 403): {text}", status=status)
    if status == 404:
        raise NotFoundError(api, f"not found: {response.url}", status=status)
    if 200 <= status < 300:
        raise FatalApiError(api, f"request failed: {text}", status=status)
    raise FatalApiError(api, f"HTTP {status} from {response.url}: {text}", status=status)


def kak2c_limiter(
    clock: Clock = SYSTEM_CLOCK, name: str = API, *, rate: float = DEFAULT_RATE,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> WindowLimiter:
    """Kak2c documents no limit; stay polite: ``rate`` requests a second, ``concurrency``
    at a time (the same ``concurrency`` bounds the pages ``products`` keeps in flight)."""
    return WindowLimiter(rate, 1.0, concurrency=concurrency, clock=clock, name=name)


def kak2c_transport(
    session: aiohttp.ClientSession,
    *,
    base_url: str = DEFAULT_BASE_URL,
    limiter: RateLimiter | None = None,
    clock: Clock = SYSTEM_CLOCK,
    timeout: float = 60.0,
    observer: RequestObserver | None = None,
    limits: Limits | None = None,
) -> Transport:
    """A transport with Kak2c's error classification."""
    return Transport(
        session, api=API, base_url=base_url, clock=clock, timeout=timeout, limiter=limiter,
        observer=observer, check=kak2c_check, limits=limits,
    )


def jwt_exp(token: str) -> float | None:
    """The ``exp`` claim of a JWT (payload decoded, signature not verified)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = orjson.loads(raw)
    except (binascii.Error, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, int | float) and not isinstance(exp, bool) and math.isfinite(exp):
        return float(exp)
    return None


T = TypeVar("T")


def _as_is(products: list[Any]) -> list[Any]:
    return products


class Kak2cClient:
    """Talks to Kak2c through one ``Transport`` with a cached, self-renewing JWT."""

    def __init__(
        self,
        transport: Transport,
        login: str,
        password: str,
        clock: Clock,
        *,
        domain: str | None = None,
        refresh_ahead: float = REFRESH_AHEAD,
    ) -> None:
        self.transport = transport
        self.login_name = login
        self._password = password
        self.clock = clock
        self.domain = domain
        self.refresh_ahead = refresh_ahead
        self._token: str | None = None
        self._refresh_at = 0.0  # epoch seconds
        self._lock = asyncio.Lock()
        self.logins = 0
        register_secrets([password])

    def _headers(self, token: str | None = None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if self.domain:
            # Selects the shop when one login manages several.
            headers["Domain"] = self.domain
        return headers

    async def login(self) -> str:
        """``POST /auth``; remember the token and when to renew it."""

        def check(response: Response) -> None:
            if response.status in (400, 401, 403):
                raise AuthError(
                    API, f"login refused (HTTP {response.status}): check login and password",
                    status=response.status,
                )
            kak2c_check(response)

        response = await self.transport.request(
            "POST", "auth", json_body={"login": self.login_name, "password": self._password},
            headers=self._headers(), check=check,
        )
        data = response.json()
        token = data.get("access_token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError(API, f"login answer from {response.url} has no access_token",
                            status=response.status)
        register_secrets([token])
        if self._token is not None and self._token != token:
            # Ours no more; a daemon logs in every few hours for months.
            forget_secrets([self._token])
        now = self.clock.time()
        exp = jwt_exp(token)
        lifetime = (exp - now) if exp is not None else DEFAULT_TOKEN_TTL
        # Short-lived tokens are renewed after 90% of their life instead.
        ahead = min(self.refresh_ahead, max(lifetime, 0.0) * 0.1)
        self._token = token
        self._refresh_at = now + lifetime - ahead
        self.logins += 1
        logger.debug("kak2c: logged in, token valid for {s:.0f}s", s=lifetime)
        return token

    async def _valid_token(self) -> str:
        token = self._token
        if token is not None and self.clock.time() < self._refresh_at:
            return token
        async with self._lock:  # single flight: the first caller logs in, the rest reuse
            if self._token is None or self.clock.time() >= self._refresh_at:
                return await self.login()
            return self._token

    async def _renew(self, stale: str) -> str:
        async with self._lock:
            if self._token is not None and self._token != stale:
                return self._token  # someone else already logged in again
            return await self.login()

    async def _send_json(
        self, method: str, path: str, params: Mapping[str, str | int | float] | None,
        token: str,
    ) -> tuple[Response, Any]:
        """Send and parse under the retry policy (a cut-off body is retried too)."""
        response = await self.transport.request(
            method, path, params=params, headers=self._headers(token), expect_json=True,
        )
        return response, response.json()

    async def request_json(
        self, method: str, path: str, *, params: Mapping[str, str | int | float] | None = None,
    ) -> tuple[Response, Any]:
        """An authenticated request and its parsed body.

        A refused token is renewed once and the request repeated once.
        """
        token = await self._valid_token()
        try:
            return await self._send_json(method, path, params, token)
        except TokenRejectedError as exc:
            logger.info("kak2c: token refused ({detail}); logging in again", detail=exc.detail)
        token = await self._renew(token)
        try:
            return await self._send_json(method, path, params, token)
        except TokenRejectedError as exc:
            raise AuthError(
                API, f"a fresh token was refused too: {exc.detail}", status=exc.status
            ) from exc

    async def products_page(
        self, page: int, size: int = DEFAULT_PAGE_SIZE
    ) -> tuple[list[Any], int]:
        """One page of ``GET /products`` (0-based): its products and ``recordsTotal``."""
        response, data = await self.request_json(
            "GET", "products", params={"page": page, "size": size}
        )
        products = data.get("products") if isinstance(data, dict) else None
        total = data.get("recordsTotal") if isinstance(data, dict) else None
        if (not isinstance(products, list) or isinstance(total, bool) or not isinstance(total, int)
                or not 0 <= total <= MAX_RECORDS):
            raise InvalidResponseError(
                API, f"products page {page}: no products or no plausible recordsTotal "
                f"({str(total)[:30]}) in the answer from "
                f"{response.url}",
                status=response.status,
            )
        return products, total

    async def products(
        self, size: int = DEFAULT_PAGE_SIZE, *, concurrency: int = 1,
        each_page: Callable[[list[Any]], list[T]] = _as_is,
    ) -> list[T]:
        """Every product, in page order, with up to ``concurrency`` pages in flight.

        The first page tells how many pages there are; the rest are fetched by
        ``concurrency`` workers taking page numbers in order. An empty page means
        the list shrank while it was read: no later page is asked for, and the
        pages after the first empty one are dropped (as a sequential read would
        never have seen them). A page that fails after its retries fails the call.
        ``each_page`` turns a page's products into what the caller keeps as soon
        as the page arrives, so the decoded answers need not all be held at once.
        """
        first, total = await self.products_page(0, size)
        if 0 < len(first) < min(size, total):
            # A server that caps the page size answers fewer than asked: page on in
            # its size, or every page after the first would skip products.
            logger.warning("kak2c: asked for {asked} products a page, got {got}; paging by "
                           "{got}", asked=size, got=len(first))
            size = len(first)
        pages = math.ceil(total / size) if size else 1
        fetched: dict[int, list[T]] = {0: each_page(first)}
        numbers = iter(range(1, pages))
        empty_at = pages if first else 0

        async def worker() -> None:
            nonlocal empty_at
            for page in numbers:
                if page > empty_at:
                    return
                batch, _ = await self.products_page(page, size)
                fetched[page] = each_page(batch)
                if not batch:
                    empty_at = min(empty_at, page)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(max(1, min(concurrency, pages - 1))):
                    group.create_task(worker())
        except ExceptionGroup as failed:
            # The first page that failed is the run's error, as in a sequential read.
            raise failed.exceptions[0] from None
        products: list[T] = []
        for page in range(min(pages, empty_at)):
            products.extend(fetched[page])
        return products

    def requests_made(self) -> int:
        """HTTP attempts sent through the transport."""
        return self.transport.requests
