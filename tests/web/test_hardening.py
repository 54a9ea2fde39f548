"""The web page against an attacker, over HTTP to the server the daemon runs.

Allowed hosts (DNS rebinding), redirects after login, the login throttle, the
session cookie's flags, expiry and sign-out, and the server's connection guards.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from stocksyncd.clock import FakeClock
from stocksyncd.config import Config
from stocksyncd.runtime.web import create_app, security
from stocksyncd.runtime.web.server import GuardedRunner, start_server

from .conftest import CSRF_RE, FakeView, make_config

TOKEN = "s3cret-token"
EVIL = "evil.test"


def configure(view: FakeView, token: str = "", **web: Any) -> FakeView:
    base = make_config(token=token)
    view.config = Config(**{**base.model_dump(), "web": {**base.web.model_dump(), **web,
                                                          "token": token}})
    return view


class Served:
    """A running server and a client without a cookie jar (cookies are sent by hand)."""

    def __init__(self, runner: GuardedRunner, session: aiohttp.ClientSession) -> None:
        self.runner = runner
        self.session = session
        host, port = runner.addresses[0][:2]
        self.host, self.port = host, port
        self.base = f"http://{host}:{port}"

    async def request(self, method: str, path: str, **kw: Any) -> tuple[int, dict[str, str], str]:
        kw.setdefault("allow_redirects", False)
        async with self.session.request(method, self.base + path, **kw) as resp:
            headers = {k: v for k, v in resp.headers.items()}
            cookies = resp.headers.getall("Set-Cookie", [])
            if cookies:
                headers["Set-Cookie"] = "\n".join(cookies)
            return resp.status, headers, await resp.text()

    async def csrf(self, path: str = "/", **kw: Any) -> str:
        status, _, body = await self.request("GET", path, **kw)
        match = CSRF_RE.search(body)
        assert match, (status, body[:300])
        return match.group(1)


Serve = Callable[[FakeView], Awaitable[Served]]


@pytest.fixture
async def serve(fake_clock: FakeClock) -> AsyncIterator[Serve]:
    started: list[Served] = []

    async def factory(view: FakeView) -> Served:
        app = create_app(view, clock=fake_clock)  # type: ignore[arg-type]
        runner = await start_server(app, view.config.web, host="127.0.0.1", port=0)
        session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        served = Served(runner, session)
        started.append(served)
        return served

    yield factory
    for served in started:
        await served.session.close()
        await served.runner.cleanup()


def session_cookie(headers: dict[str, str]) -> str:
    for line in headers.get("Set-Cookie", "").splitlines():
        if line.startswith(security.SESSION_COOKIE + "="):
            return line.split(";", 1)[0].split("=", 1)[1]
    raise AssertionError(f"no session cookie in {headers.get('Set-Cookie')!r}")


# -- allowed hosts -----------------------------------------------------------------------


async def test_a_rebinding_host_gets_nothing_and_drives_nothing(serve: Serve,
                                                                view: FakeView) -> None:
    server = await serve(view)
    token = await server.csrf()
    evil = {"Host": EVIL, "Origin": f"http://{EVIL}"}
    status, _, body = await server.request("GET", "/", headers=evil)
    assert status == 421 and "web.allowed_hosts" in body
    status, _, _ = await server.request("GET", "/healthz", headers=evil)
    assert status == 421
    status, _, _ = await server.request("POST", "/integrations/warehouse/run",
                                        data={"csrf_token": token}, headers=evil)
    assert status == 421
    status, _, _ = await server.request("POST", "/review/1/delete",
                                        data={"csrf_token": token}, headers=evil)
    assert status == 421
    assert view.triggered == []


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "127.0.0.1", "[::1]"])
async def test_local_names_are_served(serve: Serve, view: FakeView, host: str) -> None:
    server = await serve(view)
    status, _, _ = await server.request("GET", "/", headers={"Host": f"{host}:{server.port}"})
    assert status == 200


async def test_listed_names_are_served_and_can_post(serve: Serve, view: FakeView) -> None:
    server = await serve(configure(view, allowed_hosts=["stock.example.com"]))
    name = {"Host": "stock.example.com"}
    token = await server.csrf(headers=name)
    status, _, _ = await server.request(
        "POST", "/integrations/warehouse/run", data={"csrf_token": token},
        headers={**name, "Origin": "http://stock.example.com"})
    assert status == 303 and view.triggered == ["warehouse"]
    status, _, _ = await server.request("GET", "/", headers={"Host": "other.example.com"})
    assert status == 421


def test_host_rules() -> None:
    from aiohttp.test_utils import make_mocked_request

    def verdict(host: str, **web: Any) -> str | None:
        cfg = Config(**{**make_config().model_dump(),
                        "web": {"token": "t0ken", **web}}).web
        return security.check_host(make_mocked_request("GET", "/", headers={"Host": host}), cfg)

    assert verdict("192.168.1.5:8780", listen="192.168.1.5:8780") is None
    assert verdict("10.0.0.7:8780", listen="192.168.1.5:8780") is not None
    # A wildcard listen address answers on every address of the machine, never to names.
    assert verdict("10.0.0.7:8780", listen="0.0.0.0:8780") is None
    assert verdict("[fd00::7]:8780", listen="[::]:8780") is None
    assert verdict("rebind.evil.test:8780", listen="0.0.0.0:8780") is not None
    assert verdict("localhost.evil.test") is not None
    assert verdict("evil.test:80@localhost") is not None
    assert verdict("localhost:notaport") is not None


# -- redirects after login ---------------------------------------------------------------


@pytest.mark.parametrize("target", [
    "//evil.test", "/\t/evil.test", "/%09/evil.test", "/\n/evil.test", "/\\evil.test",
    "\\\\evil.test", "https://evil.test/", "/\\/evil.test", " //evil.test", "/ /evil",
    "javascript:alert(1)", "evil.test",
])
async def test_next_accepts_only_a_path_on_this_site(serve: Serve, view: FakeView,
                                                     target: str) -> None:
    server = await serve(configure(view, token=TOKEN))
    status, headers, body = await server.request("GET", "/login", params={"next": target})
    assert status == 200
    assert 'name="next" value="/"' in body, body
    csrf = CSRF_RE.search(body)
    assert csrf
    status, headers, _ = await server.request(
        "POST", "/login", data={"csrf_token": csrf.group(1), "token": TOKEN, "next": target})
    assert status == 303 and headers["Location"] == "/", headers


async def test_next_keeps_a_real_local_path(serve: Serve, view: FakeView) -> None:
    assert security.safe_next("/runs/abc?page=2") == "/runs/abc?page=2"
    server = await serve(view)  # no token: /login sends the browser straight on
    status, headers, _ = await server.request("GET", "/login",
                                              params={"next": "/review?x=1"})
    assert status == 303 and headers["Location"] == "/review?x=1"
    status, headers, _ = await server.request("GET", "/login", params={"next": "/%09/evil.test"})
    assert status == 303 and headers["Location"] == "/"


# -- login throttle ----------------------------------------------------------------------


async def test_wrong_tokens_lock_the_client_out_even_with_the_right_one(
        serve: Serve, view: FakeView, fake_clock: FakeClock) -> None:
    server = await serve(configure(view, token=TOKEN, login_attempts=5, login_window="5m"))
    csrf = await server.csrf("/login")
    for _ in range(5):
        status, _, _ = await server.request("POST", "/login",
                                            data={"csrf_token": csrf, "token": "guess"})
        assert status == 401
    status, headers, body = await server.request("POST", "/login",
                                                 data={"csrf_token": csrf, "token": TOKEN})
    assert status == 429 and "Too many wrong tokens" in body
    assert 1 <= int(headers["Retry-After"]) <= 300
    assert security.SESSION_COOKIE not in headers.get("Set-Cookie", "")
    fake_clock.advance(301)
    status, headers, _ = await server.request("POST", "/login",
                                              data={"csrf_token": csrf, "token": TOKEN})
    assert status == 303 and session_cookie(headers)


async def test_the_throttle_is_per_client(serve: Serve, view: FakeView) -> None:
    server = await serve(configure(view, token=TOKEN, login_attempts=2, trust_proxy=True))
    csrf = await server.csrf("/login")
    one = {"X-Forwarded-For": "203.0.113.1"}
    for _ in range(2):
        await server.request("POST", "/login", data={"csrf_token": csrf, "token": "x"},
                             headers=one)
    status, _, _ = await server.request("POST", "/login",
                                        data={"csrf_token": csrf, "token": TOKEN}, headers=one)
    assert status == 429
    # A client cannot escape by forging an earlier X-Forwarded-For entry.
    status, _, _ = await server.request(
        "POST", "/login", data={"csrf_token": csrf, "token": TOKEN},
        headers={"X-Forwarded-For": "198.51.100.9, 203.0.113.1"})
    assert status == 429
    status, _, _ = await server.request(
        "POST", "/login", data={"csrf_token": csrf, "token": TOKEN},
        headers={"X-Forwarded-For": "203.0.113.2"})
    assert status == 303


def test_throttle_memory_is_bounded() -> None:
    throttle = security.LoginThrottle(attempts=3, window=60.0, max_clients=100)
    for i in range(1000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}", 0.0)
    assert len(throttle._failures) == 100


# -- the session cookie ------------------------------------------------------------------


async def sign_in(server: Served, **headers: str) -> dict[str, str]:
    csrf = await server.csrf("/login", headers=headers)
    status, got, _ = await server.request("POST", "/login", headers=headers,
                                          data={"csrf_token": csrf, "token": TOKEN})
    assert status == 303
    return got


async def test_cookie_is_secure_only_over_https(serve: Serve, view: FakeView) -> None:
    plain = await serve(configure(view, token=TOKEN))
    line = (await sign_in(plain))["Set-Cookie"]
    assert "HttpOnly" in line and "SameSite=Strict" in line and "Max-Age=43200" in line
    assert "Secure" not in line
    # X-Forwarded-Proto is a claim anyone can make: ignored unless the proxy is trusted.
    assert "Secure" not in (await sign_in(plain, **{"X-Forwarded-Proto": "https"}))["Set-Cookie"]
    proxied = await serve(configure(view, token=TOKEN, trust_proxy=True))
    assert "Secure" in (await sign_in(proxied, **{"X-Forwarded-Proto": "https"}))["Set-Cookie"]
    # The one-time message cookie of a POST follows the same rule.
    bearer = {"Authorization": f"Bearer {TOKEN}", "X-Forwarded-Proto": "https"}
    csrf = await proxied.csrf("/", headers=bearer)
    status, headers, _ = await proxied.request("POST", "/integrations/warehouse/run",
                                               data={"csrf_token": csrf}, headers=bearer)
    assert status == 303 and "stocksyncd_flash=" in headers["Set-Cookie"]
    assert "Secure" in headers["Set-Cookie"]
    assert "Secure" not in (await sign_in(proxied, **{"X-Forwarded-Proto": "http"}))["Set-Cookie"]


async def test_the_session_expires(serve: Serve, view: FakeView,
                                   fake_clock: FakeClock) -> None:
    server = await serve(configure(view, token=TOKEN, session_lifetime="1h"))
    cookie = session_cookie(await sign_in(server))
    jar = {"Cookie": f"{security.SESSION_COOKIE}={cookie}"}
    assert (await server.request("GET", "/", headers=jar))[0] == 200
    fake_clock.advance(3601)
    assert (await server.request("GET", "/", headers=jar))[0] == 401
    # A forged expiry does not help: the expiry is signed.
    stamp, _, signature = cookie.partition(".")
    forged = {"Cookie": f"{security.SESSION_COOKIE}={int(stamp) + 10**6}.{signature}"}
    assert (await server.request("GET", "/", headers=forged))[0] == 401


async def test_sign_out_clears_and_voids_the_cookie(serve: Serve, view: FakeView) -> None:
    server = await serve(configure(view, token=TOKEN))
    cookie = session_cookie(await sign_in(server))
    jar = {"Cookie": f"{security.SESSION_COOKIE}={cookie}"}
    csrf = await server.csrf("/logout", headers=jar)
    status, headers, _ = await server.request("POST", "/logout", data={"csrf_token": csrf},
                                              headers=jar)
    assert status == 303 and headers["Location"] == "/login"
    assert f"{security.SESSION_COOKIE}=\"\"" in headers["Set-Cookie"] or (
        f"{security.SESSION_COOKIE}=;" in headers["Set-Cookie"])
    assert "Max-Age=0" in headers["Set-Cookie"]
    # A copy of the cookie taken before signing out no longer works.
    assert (await server.request("GET", "/", headers=jar))[0] == 401
    # The token itself still does.
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert (await server.request("GET", "/", headers=bearer))[0] == 200


# -- the server's connection guards ------------------------------------------------------


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        data = await asyncio.wait_for(reader.read(), timeout=within)
    except TimeoutError:
        return False
    return data == b"" or data.startswith(b"HTTP/1.1 4")


async def test_idle_and_slow_connections_are_closed(serve: Serve, view: FakeView) -> None:
    server = await serve(configure(view, header_timeout="100ms", idle_timeout="300ms"))
    idle_r, idle_w = await asyncio.open_connection(server.host, server.port)
    slow_r, slow_w = await asyncio.open_connection(server.host, server.port)
    slow_w.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")  # headers never finish
    await slow_w.drain()
    assert await _closed_by_server(idle_r, within=5.0)
    assert await _closed_by_server(slow_r, within=5.0)
    # A kept-alive connection is closed after idle_timeout without a request.
    ka_r, ka_w = await asyncio.open_connection(server.host, server.port)
    ka_w.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await ka_w.drain()
    head = await asyncio.wait_for(ka_r.readuntil(b"\r\n\r\n"), 5.0)
    assert head.startswith(b"HTTP/1.1 ")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    await ka_r.readexactly(length)
    assert await _closed_by_server(ka_r, within=5.0)
    for w in (idle_w, slow_w, ka_w):
        w.close()


async def test_idle_connections_cannot_crowd_out_a_request(serve: Serve,
                                                          view: FakeView) -> None:
    server = await serve(configure(view, max_connections=4))
    held = [await asyncio.open_connection(server.host, server.port) for _ in range(20)]
    # Each new connection displaced the oldest silent one: the first 16 are gone.
    for reader, _ in held[:16]:
        assert await _closed_by_server(reader, within=2.0)
    status, _, _ = await server.request("GET", "/healthz")
    assert status in (200, 503)
    for _, writer in held:
        writer.close()


async def test_when_all_connections_are_busy_a_new_one_is_closed(serve: Serve,
                                                                view: FakeView) -> None:
    server = await serve(configure(view, max_connections=3, header_timeout="100ms"))
    busy = []
    for _ in range(3):  # headers in, body still coming: not silent
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"POST /login HTTP/1.1\r\nHost: localhost\r\nContent-Length: 50\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n\r\n")
        await writer.drain()
        busy.append((reader, writer))
    for _ in range(10000):  # until the server has read all three sets of headers
        if sum(not c.silent for c in server.runner.server.connections  # type: ignore[attr-defined]
               ) == 3:
            break
        await asyncio.sleep(0)
    else:
        raise AssertionError("the server never read the headers")
    extra_r, extra_w = await asyncio.open_connection(server.host, server.port)
    assert await _closed_by_server(extra_r, within=2.0)
    for reader, writer in busy:
        assert not reader.at_eof()
        writer.close()
    extra_w.close()


async def test_malformed_requests_log_at_debug_only(serve: Serve, view: FakeView,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    server = await serve(view)
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    for garbage in (b"GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: x\r\n\r\n",
                    b"GET /\x00 HTTP/1.1\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03",
                    b"GET / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"zz\r\n"):
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(garbage)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5.0)
        assert answer[:8] in (b"HTTP/1.0", b"HTTP/1.1") and answer[9:12] == b"400", answer[:80]
        writer.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [
        r.getMessage() for r in caplog.records]
    # One DEBUG line per bad request (TLS on the HTTP port is aiohttp's own DEBUG line).
    server_lines = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert len(server_lines) == 4 and all(r.levelno == logging.DEBUG for r in server_lines)
    assert sum("malformed request" in r.getMessage() and r.exc_info is None
               for r in server_lines) == 3


async def test_guessing_through_the_bearer_header_is_limited_too(
        serve: Serve, view: FakeView, fake_clock: FakeClock) -> None:
    server = await serve(configure(view, token=TOKEN, login_attempts=3, login_window="1m"))
    for n in range(3):
        status, _, _ = await server.request("GET", "/metrics",
                                            headers={"Authorization": f"Bearer guess-{n}"})
        assert status == 401
    right = {"Authorization": f"Bearer {TOKEN}"}
    status, headers, _ = await server.request("GET", "/metrics", headers=right)
    assert status == 429 and int(headers["Retry-After"]) <= 60
    # The login form shares the limit.
    csrf = await server.csrf("/login")
    status, _, _ = await server.request("POST", "/login",
                                        data={"csrf_token": csrf, "token": TOKEN})
    assert status == 429
    assert (await server.request("GET", "/healthz"))[0] in (200, 503)  # never limited
    fake_clock.advance(61)
    assert (await server.request("GET", "/metrics", headers=right))[0] == 200


def test_a_reload_restarts_the_server_only_for_server_settings() -> None:
    from stocksyncd.config import WebConfig
    from stocksyncd.runtime.web.server import server_settings

    base = WebConfig()
    same = WebConfig(token="t0ken", allowed_hosts=("a.example",), login_attempts=9)
    assert server_settings(same) == server_settings(base)  # read per request
    for changed in (WebConfig(idle_timeout=5), WebConfig(header_timeout=1),
                    WebConfig(max_connections=7), WebConfig(listen="127.0.0.1:9999")):
        assert server_settings(changed) != server_settings(base)
