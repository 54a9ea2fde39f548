"""MoySkladClient against the MoySklad simulator: paging, stock report, gzip, limits, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest

from stocksyncd.clients.moysklad import (
    MoySkladClient,
    decode_product_page,
    moysklad_limiter,
    moysklad_transport,
    user_token_weight,
)
from stocksyncd.clock import FakeClock
from stocksyncd.errors import AuthError, FatalApiError, InvalidResponseError, RateLimitedError
from stocksyncd.http.ratelimit import WindowLimiter
from stocksyncd.http.retry import RetryPolicy
from stocksyncd.simulators.moysklad import MoySkladSimulator

TOKEN = "ms-token-0123456789abcdef"


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[MoySkladSimulator]:
    simulator = MoySkladSimulator(token=TOKEN, clock=clock)
    await simulator.start()
    yield simulator
    await simulator.stop()


def make_client(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock,
    *, token: str = TOKEN,
) -> MoySkladClient:
    transport = moysklad_transport(
        session, token=token, base_url=sim.base_url, clock=clock,
        limiter=moysklad_limiter(clock),
    )
    transport.retry = RetryPolicy(attempts=3, base_delay=0.5)
    return MoySkladClient(transport)


async def test_products_follow_next_href_until_the_last_page(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    keys = sim.catalogue(2500, seed=1)
    sim.add_product(None, stock=5)  # no article: filtered out by the server
    client = make_client(sim, session, clock)

    rows = await client.products("article")

    assert [r["article"] for r in rows] == keys
    pages = [r for r in sim.requests if r.path.endswith("/entity/product")]
    assert [p.query["offset"] for p in pages] == ["0", "1000", "2000"]
    assert all(p.query["limit"] == "1000" and p.query["filter"] == "article!=" for p in pages)


async def test_products_by_code_key(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.catalogue(3, seed=2, keys=["C1", "C2", "C3"], key_field="code")
    sim.add_product("ART-ONLY", code="")  # empty code: not listed
    rows = await make_client(sim, session, clock).products("code")
    assert [r["code"] for r in rows] == ["C1", "C2", "C3"]
    assert sim.requests[0].query["filter"] == "code!="


async def test_stock_report_types_zero_lines_and_store_filter(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    a = sim.add_product("A", stock=10, reserve=3, in_transit=2)
    b = sim.add_product("B", stock=0)
    sim.set_stock(b, 7, store="store-2")
    sim.add_product("C")  # never moved: absent from the report
    client = make_client(sim, session, clock)

    assert await client.stock("quantity") == {a: 9, b: 7}
    assert await client.stock("stock") == {a: 10, b: 7}
    assert await client.stock("freeStock") == {a: 7, b: 7}
    assert await client.stock("stock", store_id="store-2") == {b: 7}
    last = sim.requests[-1]
    assert last.query == {"stockType": "stock", "include": "zeroLines", "filter": "storeId=store-2"}
    assert await client.stock("stock", store_id="default-less") == {}


async def test_fractional_stock_is_returned_as_is(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    a = sim.add_product("A", stock=46.5)
    assert await make_client(sim, session, clock).stock("stock") == {a: 46.5}


async def test_every_request_asks_for_gzip_and_the_answer_is_gzipped(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.catalogue(5, seed=3)
    client = make_client(sim, session, clock)
    async with session.get(
        sim.base_url + "/entity/product", headers={"Authorization": f"Bearer {TOKEN}",
                                                   "Accept-Encoding": "gzip"},
        auto_decompress=False,
    ) as raw:
        assert raw.headers["Content-Encoding"] == "gzip"
    assert len(await client.products()) == 5


async def test_without_gzip_the_simulator_answers_415_and_the_error_is_final(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    client = make_client(sim, session, clock)
    client.transport.headers["Accept-Encoding"] = "deflate"
    with pytest.raises(FatalApiError, match="415"):
        await client.products()
    assert sim.count("GET") == 1


async def test_bad_token_is_a_clear_auth_error_without_retries(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    client = make_client(sim, session, clock, token="wrong-token-value")
    with pytest.raises(AuthError, match="1056") as info:
        await client.stock()
    assert "new token" in str(info.value)
    assert sim.count("GET") == 1


async def test_429_waits_the_retry_after_milliseconds(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.catalogue(3, seed=4)
    sim.throttle(times=1, retry_after_ms=1500)
    client = make_client(sim, session, clock)

    assert len(await client.products()) == 3
    assert any(1.5 <= s < 1.8 for s in clock.slept)
    assert sim.count("GET") == 2


async def test_429_blocks_the_shared_limiter_for_everyone(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.throttle(times=1, retry_after_ms=2000)
    client = make_client(sim, session, clock)
    client.transport.retry = RetryPolicy(attempts=1)
    with pytest.raises(RateLimitedError) as info:
        await client.stock()
    assert info.value.retry_after == 2.0
    start = clock.monotonic()
    await client.stock()
    assert clock.monotonic() - start >= 2.0


async def test_remaining_header_slows_the_client_before_any_429(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    # The server's budget is tighter than the client's own: X-RateLimit-Remaining
    # tells the limiter, which waits instead of drawing 429s.
    sim = MoySkladSimulator(token=TOKEN, clock=clock, window_units=10, request_weight=2)
    await sim.start()
    try:
        sim.catalogue(30, seed=5)
        transport = moysklad_transport(session, token=TOKEN, base_url=sim.base_url, clock=clock)
        client = MoySkladClient(transport, weight=1)
        for _ in range(8):
            assert len(await client.stock()) == len(sim.stock[next(iter(sim.stock))])
        assert sim.rejected_429 == 0
        assert clock.slept
    finally:
        await sim.stop()


async def test_simulator_window_429s_are_honoured(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    # A limiter that ignores the headers runs into the server's own window;
    # every 429 is then waited out for X-Lognex-Retry-After, never hammered.
    sim = MoySkladSimulator(token=TOKEN, clock=clock, window_units=10, request_weight=2)
    await sim.start()
    try:
        sim.catalogue(30, seed=5)
        transport = moysklad_transport(
            session, token=TOKEN, base_url=sim.base_url, clock=clock,
            limiter=WindowLimiter(45, 3.0, clock=clock),
        )
        client = MoySkladClient(transport, weight=1)
        for _ in range(8):
            await client.stock()
        assert 0 < sim.rejected_429 <= 4
        assert sim.count("GET") == 8 + sim.rejected_429
    finally:
        await sim.stop()


async def test_limiter_keeps_under_the_documented_budget(clock: FakeClock) -> None:
    limiter = moysklad_limiter(clock)
    for _ in range(20):
        async with limiter.slot(5):
            pass
    # 20 reports of 5 units = 100 units: at least two extra 3-second windows.
    assert clock.monotonic() - 1000.0 >= 6.0


async def test_transport_keeps_the_configured_base_url_for_next_pages(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.catalogue(1500, seed=6)
    client = make_client(sim, session, clock)
    assert len(await client.products()) == 1500
    assert client.requests_made() == 2


async def test_a_cut_off_page_is_retried(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.catalogue(20, seed=7)
    sim.inject(kind="truncate", match="/entity/product", times=1)
    assert len(await make_client(sim, session, clock).products()) == 20
    assert sim.count("GET", "/entity/product") == 2


async def test_pages_after_the_first_are_fetched_together(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    keys = sim.catalogue(4500, seed=11)
    client = make_client(sim, session, clock)
    in_flight = 0
    peak = 0
    send = client.transport.send_once

    async def counting(*args: Any, **kwargs: Any) -> Any:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        try:
            return await send(*args, **kwargs)
        finally:
            in_flight -= 1

    client.transport.send_once = counting  # type: ignore[method-assign]
    rows = await client.products("article")
    assert [r["article"] for r in rows] == keys
    offsets = sorted(int(r.query["offset"]) for r in sim.requests
                     if r.path.endswith("/entity/product"))
    assert offsets == [0, 1000, 2000, 3000, 4000]
    assert peak == 4  # the four remaining pages at once (the limiter allows 5)


async def test_duplicate_rows_are_dropped_and_a_short_count_raises(
    sim: MoySkladSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.catalogue(2500, seed=12)
    client = make_client(sim, session, clock)
    real = client._product_page

    async def shifted(params: Any) -> Any:
        rows, meta = await real(params)
        if params["offset"] == 1000:
            rows = [*rows[:1], *rows]  # a row repeated, as a shift between pages does
        return rows, meta

    client._product_page = shifted  # type: ignore[method-assign]
    assert len(await client.products()) == 2500

    async def short(params: Any) -> Any:
        rows, meta = await real(params)
        return (rows[1:] if params["offset"] == 2000 else rows), meta

    client._product_page = short  # type: ignore[method-assign]
    with pytest.raises(InvalidResponseError, match=r"meta\.size said 2500"):
        await client.products()


def test_user_token_weight_follows_the_announced_schedule() -> None:
    msk = timezone(timedelta(hours=3))
    assert user_token_weight(datetime(2026, 6, 1, tzinfo=UTC)) == 2.0
    assert user_token_weight(datetime(2026, 9, 1, tzinfo=msk)) == 3.0
    assert user_token_weight(datetime(2026, 11, 30, 20, 59, tzinfo=UTC)) == 3.0
    assert user_token_weight(datetime(2026, 11, 30, 21, 0, tzinfo=UTC)) == 4.0
    assert user_token_weight(datetime(2027, 3, 1, tzinfo=UTC)) == 4.0


def test_product_pages_decode_only_the_fields_the_job_reads() -> None:
    body = (b'{"meta": {"size": 2, "limit": 1000, "href": "x"}, "rows": ['
            b'{"id": "a", "article": "A-1", "name": "Bolt", "salePrices": [{"value": 1}]},'
            b'{"id": "b", "code": "C-2", "externalCode": "E-2", "archived": false}]}')
    page = decode_product_page(body)
    # The name is read (reports name the item); prices are not.
    assert page == {"meta": {"size": 2, "limit": 1000}, "rows": [
        {"id": "a", "article": "A-1", "name": "Bolt"},
        {"id": "b", "code": "C-2", "externalCode": "E-2", "archived": False}]}
    # Another shape is parsed in full, for the client to judge as before.
    odd = b'{"meta": {"size": 2}, "rows": [{"id": "a", "article": "A"}, "nonsense"]}'
    assert decode_product_page(odd)["rows"][1] == "nonsense"
    with pytest.raises(ValueError, match=r"truncated|malformed|JSON"):
        decode_product_page(body[:40])
