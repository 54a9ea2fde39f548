"""One HTTP transport per upstream: timeouts, rate limiting, retry, classification.

Clients build URLs and parse models; everything about *how* a request goes
out lives here, once. The aiohttp session is injected (the runtime owns one
per upstream) and never closed by the transport.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiohttp
import orjson
from multidict import CIMultiDictProxy
from yarl import URL

from stocksyncd.clock import SYSTEM_CLOCK, Clock
from stocksyncd.errors import (
    ApiError,
    AuthError,
    FatalApiError,
    InvalidResponseError,
    NotFoundError,
    RateLimitedError,
    ResponseTooLargeError,
    TransientError,
)
from stocksyncd.http.guard import guard_for
from stocksyncd.http.limits import Limits, default_limits
from stocksyncd.http.ratelimit import RateLimiter
from stocksyncd.http.retry import DEFAULT_RETRY, RetryPolicy, call_with_retry
from stocksyncd.redact import redact_url

_UNPARSED: Any = object()
Decoder = Callable[[bytes], Any]


@dataclass
class Response:
    """A fully read HTTP response."""

    api: str
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: str  # already redacted
    # From sending this attempt to its last byte: how long before its headers
    # (a server's Date) the server can have begun working on it, at most.
    elapsed_s: float = 0.0
    _parsed: Any = field(default=_UNPARSED, repr=False, compare=False)

    def json(self, decoder: Decoder | None = None) -> Any:
        """Parse the body (once); a broken body is retriable (it is usually a cut-off answer).

        ``decoder`` replaces ``orjson.loads`` (say, one that skips fields the
        caller does not need); it signals a malformed body with ``ValueError``.
        """
        if self._parsed is not _UNPARSED:
            return self._parsed
        try:
            self._parsed = (decoder or orjson.loads)(self.body)
            return self._parsed
        except ValueError as exc:  # orjson.JSONDecodeError is one
            snippet = self.body[:80].decode("utf-8", "replace")
            raise InvalidResponseError(
                self.api, f"invalid JSON from {self.url} (HTTP {self.status}): {snippet!r}",
                status=self.status,
            ) from exc


@dataclass
class ExchangeRecord:
    """What an observer learns about one request (for metrics and debug dumps)."""

    api: str
    method: str
    url: str  # redacted
    status: int | None  # None when no response arrived
    duration_s: float
    body: bytes = b""
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class RequestObserver(Protocol):
    """Receives every exchange: metrics, request counting, debug capture."""

    def observe(self, record: ExchangeRecord) -> None:
        """Called once per HTTP attempt."""
        ...


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date).

    Delta-seconds are plain ASCII digits (RFC 9110); "1e8", "nan" or "-5" are
    no figure to honour (None: the usual backoff applies).
    """
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value) if len(value) <= 12 else float("inf")
    if value[:1].isdigit() or value[:1] in "+-.":
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def default_check(response: Response) -> None:
    """Map an HTTP status to the error tree; 2xx passes."""
    status = response.status
    if 200 <= status < 300:
        return
    api = response.api
    detail = response.body[:200].decode("utf-8", "replace")
    if status in (429, 503) and "Retry-After" in response.headers:
        raise RateLimitedError(
            api, f"rate limited (HTTP {status})", status=status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )
    if status == 429:
        raise RateLimitedError(api, "rate limited (HTTP 429)", status=status)
    if status >= 500:
        raise TransientError(api, f"server error HTTP {status}: {detail}", status=status)
    if status in (401, 403):
        raise AuthError(api, f"HTTP {status}: credentials refused or not allowed", status=status)
    if status == 404:
        raise NotFoundError(api, f"not found: {response.url}", status=status)
    raise FatalApiError(api, f"HTTP {status} from {response.url}: {detail}", status=status)


Check = Callable[[Response], None]


class Transport:
    """Sends requests for one upstream API with retry, rate limiting and classification."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api: str,
        base_url: str,
        retry: RetryPolicy = DEFAULT_RETRY,
        limiter: RateLimiter | None = None,
        clock: Clock = SYSTEM_CLOCK,
        timeout: float = 60.0,
        headers: Mapping[str, str] | None = None,
        observer: RequestObserver | None = None,
        check: Check = default_check,
        rng: random.Random | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.session = session
        self.api = api
        self.base_url = URL(base_url.rstrip("/"))
        self.retry = retry
        self.limiter = limiter
        self.clock = clock
        self.timeout = timeout
        self.headers = dict(headers or {})
        self.observer = observer
        self.check = check
        self.rng = rng or random.Random()
        self.limits = limits or default_limits(api)
        # Shared by every transport spending the same budget (see http.guard).
        self.guard = guard_for(limiter if limiter is not None else self, api, self.limits, clock)
        self.requests = 0  # attempts sent, for benchmarks and tests

    def url(self, path: str) -> URL:
        """Resolve ``path`` against the base URL (absolute URLs pass through)."""
        if path.startswith(("http://", "https://")):
            return URL(path, encoded=True)
        return URL(str(self.base_url) + "/" + path.lstrip("/"), encoded=False)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | float] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        weight: float = 1.0,
        check: Check | None = None,
        retry: RetryPolicy | None = None,
        expect_json: bool = False,
        decoder: Decoder | None = None,
    ) -> Response:
        """Send a request, retrying retriable failures under the shared policy.

        With ``expect_json`` (or a ``decoder``) the body is parsed inside the
        retried attempt, so a cut-off answer is fetched again instead of failing
        the caller (only for requests that are safe to repeat).
        """

        async def attempt() -> Response:
            response = await self.send_once(
                method, path, params=params, json_body=json_body, headers=headers,
                weight=weight, check=check,
            )
            if expect_json or decoder is not None:
                response.json(decoder)
            return response

        policy = retry or self.retry
        if policy.max_retry_after < self.limits.max_wait + 1:
            # The guard already refused longer waits; what it let through is waited for.
            policy = replace(policy, max_retry_after=self.limits.max_wait + 1)
        try:
            return await call_with_retry(attempt, policy, clock=self.clock, rng=self.rng)
        except ApiError as exc:
            name_request(exc, method, self._shown(path, params))
            raise

    def _shown(self, path: str, params: Mapping[str, str | int | float] | None) -> str:
        url = self.url(path)
        if params:
            url = url.update_query({k: str(v) for k, v in params.items()})
        return redact_url(str(url))

    async def send_once(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int | float] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        weight: float = 1.0,
        check: Check | None = None,
    ) -> Response:
        """One attempt: wait for budget, send, read, classify."""
        url = self.url(path)
        if params:
            url = url.update_query({k: str(v) for k, v in params.items()})
        shown = redact_url(str(url))
        all_headers = {**self.headers, **(headers or {})}
        data: bytes | None = None
        if json_body is not None:
            data = orjson.dumps(json_body)
            all_headers.setdefault("Content-Type", "application/json")
        request = f"{method} {shown}"
        self.guard.admit(request)
        if self.limiter is not None:
            async with self.limiter.slot(weight):
                self.guard.admit(request)  # the circuit may have opened while we queued
                response = await self._send(method, url, shown, all_headers, data)
        else:
            response = await self._send(method, url, shown, all_headers, data)
        if self.limiter is not None:
            self.limiter.observe(response.headers)
        try:
            (check or self.check)(response)
        except RateLimitedError as exc:
            # Capped before anything waits on it: a wait past the cap (or an
            # open circuit) fails this request and blocks nobody.
            exc.retry_after = self.guard.rate_limited(exc, request)
            if self.limiter is not None:
                # Everyone sharing this budget waits, not only this request.
                self.limiter.block_for(exc.retry_after)
            raise
        return response

    async def _send(
        self, method: str, url: URL, shown: str, headers: dict[str, str], data: bytes | None
    ) -> Response:
        started = self.clock.monotonic()
        self.requests += 1
        request = f"{method} {shown}"
        cap = self.limits.max_response_bytes
        try:
            # The total-time cap covers connecting, sending and reading the whole body.
            async with asyncio.timeout(self.timeout), self.session.request(
                method, url, headers=headers, data=data,
                timeout=aiohttp.ClientTimeout(total=self.timeout), allow_redirects=False,
            ) as resp:
                body = await read_capped(resp, cap)
                response = Response(self.api, resp.status, resp.headers, body, shown,
                                    elapsed_s=self.clock.monotonic() - started)
        except _TooLarge as exc:
            self._observe(method, shown, exc.status, started, error="too large")
            raise ResponseTooLargeError(
                self.api, f"{request}: the answer (HTTP {exc.status}) is larger than "
                f"{_size(cap)}, the cap for {self.api}; not read further", status=exc.status,
            ) from None
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            self._observe(method, shown, None, started, error="timeout")
            raise TransientError(
                self.api, f"{request}: no complete answer within {self.timeout:g}s"
            ) from exc
        except aiohttp.ClientPayloadError as exc:
            self._observe(method, shown, None, started, error="payload")
            raise InvalidResponseError(
                self.api, f"{request}: the answer was cut off ({network_cause(exc)})"
            ) from exc
        except aiohttp.ClientError as exc:
            self._observe(method, shown, None, started, error=type(exc).__name__)
            raise TransientError(self.api, f"{request}: {network_cause(exc)}") from exc
        except ValueError as exc:
            # aiohttp refuses some requests before sending (credentials in the
            # URL as well as an Authorization header, say): nothing to retry.
            self._observe(method, shown, None, started, error="not sent")
            raise FatalApiError(self.api, f"{request}: not sent: {exc}") from exc
        self._observe(method, shown, response.status, started, body=response.body)
        return response

    def _observe(
        self, method: str, url: str, status: int | None, started: float,
        *, body: bytes = b"", error: str | None = None,
    ) -> None:
        if self.observer is None:
            return
        self.observer.observe(
            ExchangeRecord(
                api=self.api, method=method, url=url, status=status,
                duration_s=self.clock.monotonic() - started, body=body, error=error,
            )
        )


class _TooLarge(Exception):
    def __init__(self, status: int) -> None:
        self.status = status


async def read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes:
    """The whole body, or ``_TooLarge`` as soon as it passes ``cap`` bytes (decompressed).

    The chunks read so far are dropped with the exception, and leaving the
    response unread closes its connection, so nothing of it stays in memory.
    """
    declared = resp.content_length
    if declared is not None and declared > cap and "Content-Encoding" not in resp.headers:
        raise _TooLarge(resp.status)
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > cap:
            raise _TooLarge(resp.status)
        chunks.append(chunk)
    return b"".join(chunks)


def _size(n: int) -> str:
    return f"{n // 1048576} MiB" if n % 1048576 == 0 else f"{n // 1024} KiB"


def network_cause(exc: aiohttp.ClientError) -> str:
    """What went wrong on the network, in words an operator can act on."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"the server's TLS certificate was not accepted ({exc.certificate_error})"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"the host name {exc.host} could not be resolved ({_os_cause(exc)})"
    if isinstance(exc, aiohttp.ClientSSLError):
        return f"the TLS handshake with {exc.host}:{exc.port} failed ({_os_cause(exc)})"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"could not connect to {exc.host}:{exc.port} ({_os_cause(exc)})"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(exc, aiohttp.ClientOSError):
        return f"network error ({exc.strerror or exc})"
    if isinstance(exc, aiohttp.InvalidURL):
        return f"invalid URL ({exc})"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _os_cause(exc: aiohttp.ClientConnectorError) -> str:
    error = exc.os_error
    # asyncio words a refused connection "Connect call failed (...)"; errno says it plainly.
    text = os.strerror(error.errno) if error.errno else (str(error) or type(error).__name__)
    return text[:1].lower() + text[1:]


def name_request(exc: ApiError, method: str, shown: str) -> None:
    """Make ``exc`` name the request it is about, once (its text is what operators see)."""
    if shown in exc.detail:
        return
    exc.detail = f"{exc.detail} ({method} {shown})"
    exc.args = (f"{exc.api}: {exc.detail}", *exc.args[1:])


__all__ = [
    "ApiError",
    "Check",
    "Decoder",
    "ExchangeRecord",
    "RequestObserver",
    "Response",
    "Transport",
    "default_check",
    "parse_retry_after",
]


WIRE_TURNS = 4  # loop turns between starting a request and aiohttp sending it, with margin


async def on_the_wire() -> None:
    """Let requests just started reach the wire before the caller goes on with CPU work.

    aiohttp puts a request on the wire a few turns of the loop after it
    starts (the body is written by a task of its own); yielding that long
    costs nothing when nothing else is waiting to run.
    """
    for _ in range(WIRE_TURNS):
        await asyncio.sleep(0)
