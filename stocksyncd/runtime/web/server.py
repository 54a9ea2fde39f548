"""The HTTP server under the web app: connection cap, header and idle timeouts, quiet 400s.

aiohttp alone keeps an idle connection for an hour and waits for request headers
for as long as that; a few hundred half-open connections then use up the
process's descriptors and take /healthz down with them. Here every connection
must send its first request's headers within ``web.header_timeout``, is closed
after ``web.idle_timeout`` without a request, and beyond ``web.max_connections``
the oldest connection that has not sent a request yet is closed (or the new one,
when all are busy).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from stocksyncd.config import WebConfig

log = logging.getLogger("aiohttp.server")


class GuardedHandler(RequestHandler):
    """One connection, closed when it is one too many or too slow to send its headers."""

    __slots__ = ("_guard", "_header_deadline")

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = manager
        self._header_deadline: asyncio.TimerHandle | None = None

    @property
    def silent(self) -> bool:
        """Connected, but no complete request yet."""
        return self._request_count == 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        live = [c for c in self._guard.connections if c.transport is not None]
        if len(live) > self._guard.max_connections:
            # Make room by closing the oldest connection that never sent a
            # request (a flood of idle sockets then only displaces itself); if
            # every one is busy, this new one goes.
            oldest = next((c for c in live
                           if c is not self and isinstance(c, GuardedHandler) and c.silent),
                          None)
            log.debug("web: over %d connections, closing %s", self._guard.max_connections,
                      "the oldest silent one" if oldest is not None else "a new one")
            self._guard.refused += 1
            if oldest is None:
                self.force_close()
                return
            oldest.force_close()
        self._header_deadline = asyncio.get_running_loop().call_later(
            self._guard.header_timeout, self._headers_too_slow)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # The first request's headers are in: from here on the idle timeout rules.
        if self._header_deadline is not None and self._request_count > 0:
            self._header_deadline.cancel()
            self._header_deadline = None

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None
        super().connection_lost(exc)

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self._request_count == 0:
            log.debug("web: no request headers within %.0f s, closing the connection",
                      self._guard.header_timeout)
            self.force_close()

    def log_exception(self, *args: Any, **kw: Any) -> None:
        # A malformed request is the client's problem: one DEBUG line, no traceback.
        exc = kw.get("exc_info")
        if isinstance(exc, HttpProcessingError):
            log.debug("web: malformed request: %s", exc)
            return
        super().log_exception(*args, **kw)


class GuardedServer(web.Server):
    """``web.Server`` making ``GuardedHandler`` connections."""

    def __init__(self, *args: Any, max_connections: int, header_timeout: float,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.refused = 0  # connections closed to stay within the cap

    def __call__(self) -> RequestHandler:
        return GuardedHandler(self, loop=self._loop, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """An ``AppRunner`` whose server is a ``GuardedServer`` configured from ``[web]``."""

    def __init__(self, app: web.Application, cfg: WebConfig, **kwargs: Any) -> None:
        # keepalive_timeout is aiohttp's idle timeout: it also runs before the first request.
        super().__init__(app, handle_signals=False, keepalive_timeout=cfg.idle_timeout,
                         **kwargs)
        self.cfg = cfg

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        return GuardedServer(
            plain.request_handler, request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation, loop=plain._loop,
            max_connections=self.cfg.max_connections, header_timeout=self.cfg.header_timeout,
            **plain._kwargs,
        )


def server_settings(cfg: WebConfig) -> tuple[object, ...]:
    """The ``[web]`` keys the server is built with; a reload that changes one restarts it.

    The rest (token, allowed hosts, proxy trust, login limits) are read per request.
    """
    return (cfg.enabled, cfg.listen, cfg.max_connections, cfg.header_timeout,
            cfg.idle_timeout)


async def start_server(app: web.Application, cfg: WebConfig, host: str | None = None,
                       port: int | None = None) -> GuardedRunner:
    """Serve ``app`` on ``cfg.listen`` (or ``host``/``port``); the caller cleans up."""
    runner = GuardedRunner(app, cfg)
    await runner.setup()
    site = web.TCPSite(runner, host if host is not None else cfg.host,
                       port if port is not None else cfg.port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
