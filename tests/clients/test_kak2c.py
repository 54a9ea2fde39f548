"""Kak2cClient against the Kak2c simulator: JWT login, renewal, single flight, paging."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from stocksyncd.clients.kak2c import Kak2cClient, jwt_exp, kak2c_transport
from stocksyncd.clock import FakeClock
from stocksyncd.errors import AuthError, InvalidResponseError, StockSyncError
from stocksyncd.http.retry import RetryPolicy
from stocksyncd.http.transport import ExchangeRecord
from stocksyncd.redact import redact
from stocksyncd.simulators.kak2c import Kak2cSimulator

LOGIN = "shop@example.com"
PASSWORD = "s3cret-password"


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[Kak2cSimulator]:
    simulator = Kak2cSimulator(login=LOGIN, password=PASSWORD, clock=clock)
    await simulator.start()
    yield simulator
    await simulator.stop()


class AfterFirstPage:
    """Runs ``action`` once, right after the first products page was answered."""

    def __init__(self, action: object) -> None:
        self.action = action
        self.done = False

    def observe(self, record: ExchangeRecord) -> None:
        if not self.done and "/products" in record.url and record.status == 200:
            self.done = True
            self.action()  # type: ignore[operator]


def make_client(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock,
    *, password: str = PASSWORD, observer: AfterFirstPage | None = None,
) -> Kak2cClient:
    transport = kak2c_transport(session, base_url=sim.base_url, clock=clock, observer=observer)
    transport.retry = RetryPolicy(attempts=3, base_delay=0.5)
    return Kak2cClient(transport, LOGIN, password, clock)


def statuses(sim: Kak2cSimulator, path: str) -> list[int]:
    return [r.status for r in sim.requests if r.path.endswith(path)]


async def test_login_sends_credentials_and_reads_exp(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    client = make_client(sim, session, clock)
    token = await client.login()
    assert jwt_exp(token) == int(clock.time() + 14400)
    assert sim.requests[0].body == {"login": LOGIN, "password": PASSWORD}


def test_jwt_exp_of_garbage_is_none() -> None:
    assert jwt_exp("not-a-jwt") is None
    assert jwt_exp("a.!!!.c") is None
    assert jwt_exp("a.eyJzdWIiOiJ4In0.c") is None  # {"sub":"x"}: no exp


async def test_wrong_password_is_a_final_auth_error(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    client = make_client(sim, session, clock, password="wrong-password")
    with pytest.raises(AuthError, match="login refused"):
        await client.products()
    assert sim.count("POST", "/auth") == 1


async def test_products_pages_by_records_total(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.catalogue(235, seed=1, shape="single")
    client = make_client(sim, session, clock)
    products = await client.products(size=100)
    assert len(products) == 235
    assert [r.query["page"] for r in sim.requests if r.path.endswith("/products")] == [
        "0", "1", "2"]
    assert sim.logins == 1


async def test_no_extra_page_when_total_is_a_multiple_of_size(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.catalogue(200, seed=2, shape="single")
    assert len(await make_client(sim, session, clock).products(size=100)) == 200
    assert sim.count("GET", "/products") == 2


async def test_token_is_renewed_ahead_of_exp_without_a_401(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.catalogue(3, seed=3)
    client = make_client(sim, session, clock)
    await client.products()
    clock.advance(14400 - 200)  # inside the 300 s refresh margin, still valid upstream
    await client.products()
    assert sim.logins == 2
    assert 401 not in statuses(sim, "/products")
    clock.advance(60)  # the new token is fresh: no further login
    await client.products()
    assert sim.logins == 2


async def test_only_the_current_token_is_kept_for_redaction(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    """A token replaced by a new login is no longer held: months of logins stay bounded."""
    sim.catalogue(3, seed=3)
    client = make_client(sim, session, clock)
    tokens = []
    for _ in range(3):
        tokens.append(await client.login())
        clock.advance(60)
    assert len(set(tokens)) == 3
    assert redact(f"a {tokens[-1]} b") == "a *** b"
    assert redact(f"a {tokens[0]} b") == f"a {tokens[0]} b"
    assert redact(f"a {tokens[1]} b") == f"a {tokens[1]} b"


async def test_token_expiring_between_two_pages_is_renewed_once_and_the_run_completes(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    # The server's clock runs ahead of ours, so the token dies mid-run although
    # our reading of exp says it is fine: the 401 path must save the run.
    server_clock = FakeClock()
    sim = Kak2cSimulator(login=LOGIN, password=PASSWORD, clock=server_clock, token_ttl=3600)
    await sim.start()
    try:
        sim.catalogue(250, seed=4)
        client = make_client(sim, session, clock,
                             observer=AfterFirstPage(lambda: server_clock.advance(3601)))
        products = await client.products(size=100)
        assert sum(len(p["variants"]) for p in products) == 250
        assert sim.logins == 2
        assert statuses(sim, "/products").count(401) == 1
    finally:
        await sim.stop()


@pytest.mark.parametrize("status", [401, 400, 200])
async def test_the_401_body_shape_triggers_one_new_login_whatever_the_status(
    session: aiohttp.ClientSession, clock: FakeClock, status: int
) -> None:
    sim = Kak2cSimulator(login=LOGIN, password=PASSWORD, clock=clock, expired_status=status)
    await sim.start()
    try:
        sim.catalogue(150, seed=5, shape="single")
        client = make_client(sim, session, clock, observer=AfterFirstPage(sim.revoke_tokens))
        assert len(await client.products(size=100)) == 150
        assert sim.logins == 2
    finally:
        await sim.stop()


async def test_a_fresh_token_refused_again_stops_with_an_auth_error(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.catalogue(3, seed=6)
    body = {"errors": [{"code": 401, "message": "JWT expired"}], "success": False}
    sim.inject(status=401, body=body, match="/products", times=5)
    client = make_client(sim, session, clock)
    with pytest.raises(AuthError, match="fresh token was refused"):
        await client.products()
    assert sim.logins == 2
    assert sim.count("GET", "/products") == 2


async def test_concurrent_requests_share_one_login(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.catalogue(500, seed=7, shape="single")
    client = make_client(sim, session, clock)
    pages = await asyncio.gather(*(client.products_page(p, 50) for p in range(10)))
    assert sum(len(products) for products, _ in pages) == 500
    assert sim.logins == 1


async def test_concurrent_401s_share_one_new_login(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.catalogue(100, seed=8, shape="single")
    client = make_client(sim, session, clock)
    await client.login()
    sim.revoke_tokens()
    clock.advance(1)
    pages = await asyncio.gather(*(client.products_page(p, 10) for p in range(10)))
    assert sum(len(products) for products, _ in pages) == 100
    assert sim.logins == 2


async def test_server_errors_are_retried(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.catalogue(3, seed=9)
    sim.inject(status=502, match="/products", times=2)
    client = make_client(sim, session, clock)
    assert len(await client.products()) >= 1
    assert statuses(sim, "/products") == [502, 502, 200]


async def test_a_cut_off_page_is_retried(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.catalogue(20, seed=10, shape="single")
    sim.inject(kind="truncate", match="/products", times=1)
    client = make_client(sim, session, clock)
    assert len(await client.products()) == 20
    assert sim.count("GET", "/products") == 2


@pytest.mark.parametrize("total", [-1, 10**20, 1e3, "7", None, True])
async def test_an_implausible_records_total_fails_the_listing(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock, total: object
) -> None:
    # json, not orjson: only it writes 10**20.
    body = json.dumps({"products": [], "recordsTotal": total}).encode()
    sim.inject(status=200, match="/products", body=body)
    client = make_client(sim, session, clock)
    with pytest.raises(InvalidResponseError, match="no plausible recordsTotal"):
        await client.products()


async def test_concurrent_paging_keeps_page_order(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.catalogue(1050, seed=11, shape="single")
    client = make_client(sim, session, clock)
    products = await client.products(size=100, concurrency=4)
    assert [p["id"] for p in products] == [p["id"] for p in sim.products]
    pages = sorted(int(r.query["page"]) for r in sim.requests if r.path.endswith("/products"))
    assert pages == list(range(11))


async def test_concurrent_paging_stops_at_a_list_that_shrank(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.catalogue(1000, seed=12, shape="single")

    def shrink() -> None:
        del sim.products[450:]

    client = make_client(sim, session, clock, observer=AfterFirstPage(shrink))
    products = await client.products(size=100, concurrency=3)
    assert [p["id"] for p in products] == [p["id"] for p in sim.products]
    # Pages past the first empty one are neither asked for much nor kept.
    assert sim.count("GET", "/products") < 10


async def test_each_page_is_converted_as_it_arrives_and_kept_in_order(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.catalogue(1000, seed=12, shape="single")

    def shrink() -> None:
        del sim.products[450:]  # pages 5 on come back empty

    seen: list[int] = []

    def items(page: list[Any]) -> list[tuple[str, Any]]:
        seen.append(len(page))
        return [("item", p["id"]) for p in page]  # stands for the caller's own items

    client = make_client(sim, session, clock, observer=AfterFirstPage(shrink))
    got = await client.products(size=100, concurrency=3, each_page=items)
    assert got == [("item", p["id"]) for p in sim.products]
    assert sorted(seen, reverse=True)[:5] == [100, 100, 100, 100, 50]  # 450 left

    # A page that converts to nothing is not taken for the end of the list.
    calls: list[int] = []

    def all_but_the_first(page: list[Any]) -> list[Any]:
        calls.append(len(page))
        return [] if len(calls) == 1 else [p["id"] for p in page]

    got_rest = await client.products(size=100, each_page=all_but_the_first)
    assert got_rest == [p["id"] for p in sim.products[100:]]


async def test_concurrent_paging_fails_when_a_page_fails(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.catalogue(600, seed=13, shape="single")

    def refuse_next_page() -> None:
        sim.inject(status=400, body=b'{"errors":[{"code":400,"message":"bad page"}]}',
                   match="/products", times=1)

    client = make_client(sim, session, clock, observer=AfterFirstPage(refuse_next_page))
    with pytest.raises(StockSyncError, match="bad page"):
        await client.products(size=100, concurrency=4)


async def test_a_server_side_page_cap_does_not_skip_products(
    sim: Kak2cSimulator, session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    sim.catalogue(1000, seed=14, shape="single")
    sim.max_page_size = 300
    client = make_client(sim, session, clock)
    products = await client.products(size=500, concurrency=4)
    assert [p["id"] for p in products] == [p["id"] for p in sim.products]
    assert sim.count("GET", "/products") == 4  # 300 a page after the first
