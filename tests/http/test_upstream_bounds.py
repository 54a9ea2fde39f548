"""Waits, answers and errors an upstream cannot stretch past their bounds (issue 15)."""

from __future__ import annotations

import asyncio
import resource
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from stocksyncd.clients.moysklad import moysklad_check
from stocksyncd.clock import FakeClock
from stocksyncd.errors import (
    FatalApiError,
    HoldOffError,
    RateLimitedError,
    ResponseTooLargeError,
    TransientError,
)
from stocksyncd.http.limits import MIB, Limits, default_limits
from stocksyncd.http.ratelimit import WindowLimiter
from stocksyncd.http.retry import RetryPolicy
from stocksyncd.http.transport import Transport, parse_retry_after
from stocksyncd.simulators.base import Simulator, json_response


class Upstream(Simulator):
    """Answers ``/items``; ``/endless`` streams until the client hangs up."""

    api = "up"

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.streamed = 0

    def setup_routes(self, app: web.Application) -> None:
        async def items(request: web.Request) -> web.Response:
            return json_response({"items": [1, 2, 3]})

        async def endless(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse()
            await response.prepare(request)
            chunk = b"[" + b"1," * 32767
            try:
                while True:
                    await response.write(chunk)
                    self.streamed += len(chunk)
            except (ConnectionError, RuntimeError):
                pass
            return response

        async def trickle(request: web.Request) -> web.StreamResponse:
            response = web.StreamResponse()
            await response.prepare(request)
            while True:
                await response.write(b" ")
                await asyncio.sleep(0.01)

        app.router.add_get("/items", items)
        app.router.add_get("/endless", endless)
        app.router.add_get("/trickle", trickle)


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[Upstream]:
    upstream = Upstream(clock)
    await upstream.start()
    yield upstream
    await upstream.stop()


def transport(sim: Upstream, session: aiohttp.ClientSession, clock: FakeClock,
              limiter: WindowLimiter | None = None, **limits: float) -> Transport:
    return Transport(session, api="insales", base_url=sim.url, clock=clock, limiter=limiter,
                     retry=RetryPolicy(attempts=3), limits=Limits(**limits))  # type: ignore[arg-type]


def moysklad(sim: Upstream, session: aiohttp.ClientSession, clock: FakeClock,
             limiter: WindowLimiter, attempts: int = 5) -> Transport:
    return Transport(session, api="moysklad", base_url=sim.url, clock=clock, limiter=limiter,
                     check=moysklad_check, retry=RetryPolicy(attempts=attempts))


@pytest.mark.parametrize(("header", "expected"), [
    ("120", 120.0), (" 5 ", 5.0), ("0", 0.0), ("1e8", None), ("nan", None), ("-5", None),
    ("1_000", None), ("\u0661\u0662", None), ("9" * 40, float("inf")), ("", None),
])
def test_retry_after_is_read_as_plain_digits(header: str, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


async def test_a_retry_after_past_the_cap_fails_at_once_and_blocks_nobody(
    sim: Upstream, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    # Issue 15: one "Retry-After: 100000" blocked the shop's limiter until restart.
    limiter = WindowLimiter(100, 60, clock=clock)
    stock_job = transport(sim, session, clock, limiter)
    other_job = transport(sim, session, clock, limiter)
    sim.inject(status=429, headers={"Retry-After": "100000"}, match="/items")
    with pytest.raises(HoldOffError, match=r"insales: GET http://127\.0\.0\.1:\d+/items: the "
                                           r"server asked to wait 100000s \(HTTP 429\), more "
                                           r"than max_wait 300s; not waiting"):
        await stock_job.request("GET", "/items")
    assert clock.slept == []  # nothing waited on it
    # The shop's other job goes on at once.
    assert (await other_job.request("GET", "/items", expect_json=True)).status == 200
    assert clock.slept == [] and limiter.waited == 0


async def test_moysklad_retry_after_in_ms_past_the_cap_fails_at_once(
    sim: Upstream, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    limiter = WindowLimiter(45, 3, clock=clock)
    t = moysklad(sim, session, clock, limiter)
    sim.inject(status=429, headers={"X-Lognex-Retry-After": "100000000"})
    with pytest.raises(HoldOffError, match="asked to wait 100000s"):
        await t.request("GET", "/items")
    assert (await t.request("GET", "/items")).status == 200 and limiter.waited == 0


async def test_an_unreadable_moysklad_wait_is_the_usual_backoff_not_a_stall(
    sim: Upstream, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    # "X-Lognex-Retry-After: 1e8" once blocked the account's limiter until restart.
    limiter = WindowLimiter(45, 3, clock=clock)
    t = moysklad(sim, session, clock, limiter)
    sim.inject(status=429, headers={"X-Lognex-Retry-After": "1e8"})
    assert (await t.request("GET", "/items")).status == 200
    assert sum(clock.slept) < 5


async def test_every_429_waits_at_least_the_floor(
    sim: Upstream, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    limiter = WindowLimiter(45, 3, clock=clock)
    t = moysklad(sim, session, clock, limiter)
    sim.inject(status=429, headers={"X-Lognex-Retry-After": "0"}, times=2)
    assert (await t.request("GET", "/items")).status == 200
    # Two refusals, each held back at least min_429_wait (1 s), not "retry after 0".
    assert sum(clock.slept) >= 2 * Limits().min_429_wait


async def test_the_breaker_opens_after_n_429s_in_a_minute_and_stays_open(
    sim: Upstream, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    # Issue 15: 429 with "retry after 0" gave 215 refused requests in 60 s
    # (MoySklad locks the account at 200).
    limiter = WindowLimiter(45, 3, concurrency=5, clock=clock)
    t = moysklad(sim, session, clock, limiter, attempts=100)
    other = moysklad(sim, session, clock, limiter)
    sim.inject(status=429, headers={"X-Lognex-Retry-After": "0"}, times=1000)
    results = await asyncio.gather(*(t.request("GET", "/items") for _ in range(5)),
                                   return_exceptions=True)
    assert all(isinstance(r, HoldOffError) for r in results), results
    refused = sim.count("GET", "/items")
    assert refused <= 2 * Limits().breaker_429s < 200
    assert any("circuit breaker opened" in str(r) for r in results)
    # Another job on the same account is refused without a request while it is open...
    with pytest.raises(HoldOffError, match="circuit breaker is open"):
        await other.request("GET", "/items")
    assert sim.count("GET", "/items") == refused
    # ...and goes out again once the pause is over.
    sim.faults.clear()
    clock.advance(Limits().breaker_pause + 1)
    assert (await other.request("GET", "/items")).status == 200


async def test_an_oversized_answer_fails_cleanly(
    sim: Upstream, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.inject(status=200, body=b"[" + b"0," * 600_000 + b"0]")  # with Content-Length
    t = transport(sim, session, clock, max_response_bytes=MIB)
    with pytest.raises(ResponseTooLargeError, match=r"insales: GET http://127\.0\.0\.1:\d+/"
                                                    r"items: the answer \(HTTP 200\) is larger "
                                                    r"than 1 MiB, the cap for insales"):
        await t.request("GET", "/items")
    assert sim.count() == 1  # not retried: it would be as large again
    assert (await t.request("GET", "/items")).status == 200


async def test_an_endless_answer_stops_at_the_cap_and_memory_is_released(
    sim: Upstream, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    # Issue 15: an endless body took the daemon to 6.2 GB.
    t = transport(sim, session, clock, max_response_bytes=8 * MIB)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(3):
        with pytest.raises(ResponseTooLargeError):
            await t.request("GET", "/endless")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mib < 64  # three reads of an endless body, bounded by the 8 MiB cap
    assert (await t.request("GET", "/items")).status == 200


async def test_the_total_time_cap_covers_a_body_that_never_ends(
    sim: Upstream, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    t = transport(sim, session, clock)
    t.timeout = 0.2
    t.retry = RetryPolicy(attempts=1)
    with pytest.raises(TransientError, match=r"GET http://127\.0\.0\.1:\d+/trickle: no "
                                             r"complete answer within 0.2s"):
        await t.request("GET", "/trickle")


async def test_network_failures_are_named_in_plain_words(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    t = Transport(session, api="kak2c", base_url=f"http://127.0.0.1:{port}/api",
                  clock=clock, retry=RetryPolicy(attempts=1))
    with pytest.raises(TransientError) as caught:
        await t.request("GET", "products", params={"page": 1})
    text = str(caught.value)
    assert text.startswith(f"kak2c: GET http://127.0.0.1:{port}/api/products?page=1: "
                           f"could not connect to 127.0.0.1:{port} (")
    assert text.endswith("(connection refused)")


async def test_a_request_aiohttp_refuses_to_send_is_a_clear_error(
    sim: Upstream, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    # Credentials in the URL and an Authorization header: aiohttp raises a bare
    # ValueError, which once surfaced as "ExceptionGroup" with the cause at DEBUG.
    base = sim.url.replace("http://", "http://id:secret-pass@")
    t = Transport(session, api="insales", base_url=base, clock=clock,
                  headers={"Authorization": "Basic eDp5"})
    with pytest.raises(FatalApiError) as caught:
        await t.request("GET", "/items")
    text = str(caught.value)
    assert text.startswith("insales: GET http://127.0.0.1:") and "not sent" in text
    assert "secret-pass" not in text


async def test_status_errors_name_the_request_and_hide_secrets(
    sim: Upstream, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.inject(status=407, body=b"Proxy Authentication Required")
    t = Transport(session, api="mouser", base_url=sim.url, clock=clock)
    with pytest.raises(FatalApiError) as caught:
        await t.request("POST", "/items", params={"apiKey": "k-123456789"})
    assert str(caught.value).startswith("mouser: HTTP 407 from http://127.0.0.1:")
    assert "apiKey=***" in str(caught.value) and "k-123456789" not in str(caught.value)
    sim.inject(status=429)
    t.retry = RetryPolicy(attempts=1)
    with pytest.raises(RateLimitedError) as limited:
        await t.request("GET", "/items")
    assert str(limited.value).startswith("mouser: rate limited (HTTP 429) (GET http://127.0.0.1:")


def test_default_response_caps_are_per_api() -> None:
    assert default_limits("insales").max_response_bytes == 64 * MIB
    assert default_limits("kak2c").max_response_bytes == 16 * MIB
    assert default_limits("unknown").max_response_bytes == 32 * MIB
