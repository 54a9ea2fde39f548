"""What every simulator shares: lifecycle, a request log, latency and fault injection."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from stocksyncd.clock import SYSTEM_CLOCK, Clock

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Fault:
    """One injected failure, consumed by the next matching request.

    kind:
      ``status``   answer ``status`` with ``body`` and ``headers``;
      ``timeout``  hold the request until ``release()`` or the client gives up;
      ``truncate`` answer 200 with the real body cut in half (and wrong length);
      ``reset``    close the connection without an answer.
    """

    kind: str = "status"
    status: int = 500
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    match: str = ""  # substring of the path; empty matches every path
    method: str = ""  # empty matches every method
    times: int = 1


@dataclass
class RecordedRequest:
    """A request the simulator saw (for assertions and request counting)."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0


class Simulator:
    """Base class: subclasses add routes in ``setup_routes`` and keep their own data."""

    api = "sim"

    def __init__(self, *, clock: Clock = SYSTEM_CLOCK, latency: float = 0.0) -> None:
        self.clock = clock
        self.latency = latency
        self.faults: list[Fault] = []
        self.requests: list[RecordedRequest] = []
        self.app = web.Application(middlewares=[self._middleware])
        self.setup_routes(self.app)
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.host = "127.0.0.1"
        self._held = asyncio.Event()
        self.held_requests = 0  # how many requests sit in a ``timeout`` fault right now
        self.hold_event = asyncio.Event()  # set while at least one request is held

    # -- lifecycle ---------------------------------------------------------
    def setup_routes(self, app: web.Application) -> None:
        """Add the API's routes (subclasses)."""

    async def start(self, port: int = 0, host: str = "127.0.0.1") -> str:
        """Listen on ``host:port`` (0 = any free port); returns the base URL."""
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None)
        assert sockets
        self.port = int(sockets[0].getsockname()[1])
        self.host = host
        return self.url

    async def stop(self) -> None:
        """Stop listening and release held requests."""
        self.release()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """Root URL of the server (subclasses append their API prefix)."""
        return f"http://{self.host}:{self.port}"

    # -- faults --------------------------------------------------------------
    def inject(self, fault: Fault | None = None, **kwargs: Any) -> Fault:
        """Queue a fault; keyword arguments build one."""
        fault = fault or Fault(**kwargs)
        self.faults.append(fault)
        return fault

    def release(self) -> None:
        """Let every request held by a ``timeout`` fault finish with a 504."""
        self._held.set()

    def _take_fault(self, request: web.Request) -> Fault | None:
        for fault in self.faults:
            if fault.match and fault.match not in request.path:
                continue
            if fault.method and fault.method.upper() != request.method:
                continue
            fault.times -= 1
            if fault.times <= 0:
                self.faults.remove(fault)
            return fault
        return None

    def count(self, method: str | None = None, contains: str = "") -> int:
        """How many requests matched ``method`` and a path substring."""
        return sum(
            1 for r in self.requests
            if (method is None or r.method == method) and contains in r.path
        )

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body: Any = None
        if request.can_read_body:
            raw = await request.read()
            try:
                body = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                body = raw.decode("utf-8", "replace")
        record = RecordedRequest(request.method, request.path, dict(request.query), body)
        self.requests.append(record)
        arrived = asyncio.get_running_loop().time()
        if self.latency:
            # Requests that arrived together are all stamped before any of them is
            # worked on: otherwise each would wait for the work of the ones before
            # it, a queue the real service's many servers do not have.
            await asyncio.sleep(0)
        fault = self._take_fault(request)
        if fault is not None:
            response = await self._apply_fault(fault, request, handler)
        else:
            response = await handler(request)
        record.status = response.status
        if self.latency:
            # Benchmarks only (tests keep latency 0). The answer leaves ``latency``
            # after the request arrived, the handler's own work included, as from
            # a service whose servers do not queue behind each other; sleeping
            # first and then working would add this one process's CPU (and the
            # wait behind concurrent requests) to every round trip.
            await asyncio.sleep(max(0.0, arrived + self.latency
                                    - asyncio.get_running_loop().time()))
        return response

    async def _apply_fault(
        self, fault: Fault, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        if fault.kind == "timeout":
            self.held_requests += 1
            self.hold_event.set()
            try:
                await self._held.wait()
            finally:
                self.held_requests -= 1
            return web.Response(status=504, text="held request released")
        if fault.kind == "reset":
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError  # aiohttp drops the connection
        if fault.kind == "truncate":
            real = await handler(request)
            data = real.body if isinstance(real, web.Response) else b""
            raw = data if isinstance(data, bytes) else b""
            if real.headers.get("Content-Encoding") == "gzip":
                raw = gzip.decompress(raw)
            return web.Response(status=200, body=raw[: max(1, len(raw) // 2)],
                                content_type="application/json")
        payload = fault.body
        if isinstance(payload, dict | list):
            payload = orjson.dumps(payload)
        elif isinstance(payload, str):
            payload = payload.encode()
        headers = dict(fault.headers)
        headers.setdefault("Content-Type", "application/json")
        return web.Response(status=fault.status, body=payload, headers=headers)


def json_response(data: Any, *, status: int = 200, headers: dict[str, str] | None = None,
                  gzip_body: bool = False) -> web.Response:
    """A JSON answer serialised with orjson (optionally gzip-encoded)."""
    body = orjson.dumps(data)
    all_headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
    if gzip_body:
        body = gzip.compress(body, compresslevel=1)
        all_headers["Content-Encoding"] = "gzip"
    return web.Response(status=status, body=body, headers=all_headers)
