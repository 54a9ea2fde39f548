"""A cut-off JSON answer is fetched again when the caller expects JSON."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from stocksyncd.clock import FakeClock
from stocksyncd.errors import InvalidResponseError
from stocksyncd.http.transport import Transport
from stocksyncd.simulators.base import Simulator, json_response


class Echo(Simulator):
    api = "echo"

    def setup_routes(self, app: web.Application) -> None:
        async def items(request: web.Request) -> web.Response:
            return json_response({"items": list(range(50))})

        app.router.add_get("/items", items)


async def test_truncated_body_is_retried_with_expect_json(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with Echo(clock=clock) as sim:
        sim.inject(kind="truncate", times=2)
        t = Transport(session, api="echo", base_url=sim.url, clock=clock)
        response = await t.request("GET", "/items", expect_json=True)
        assert response.json() == {"items": list(range(50))}
        assert sim.count("GET", "/items") == 3
        assert len(clock.slept) == 2


async def test_truncated_body_without_expect_json_reaches_the_caller(
    session: aiohttp.ClientSession, clock: FakeClock
) -> None:
    async with Echo(clock=clock) as sim:
        sim.inject(kind="truncate")
        t = Transport(session, api="echo", base_url=sim.url, clock=clock)
        response = await t.request("GET", "/items")
        try:
            response.json()
        except InvalidResponseError as exc:
            assert "invalid JSON" in str(exc)
        else:
            raise AssertionError("a cut-off body parsed")
        assert sim.count("GET", "/items") == 1
