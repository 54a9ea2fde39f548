"""Test doubles for the stock pipeline: a dict-backed state store, a list source, resources."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp

from stocksyncd.clock import FakeClock
from stocksyncd.http.ratelimit import RateLimiter
from stocksyncd.integrations.base import RunContext
from stocksyncd.integrations.stock.model import SourceItem


class DictState:
    """The StateStore methods the pipeline uses, backed by a dict."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], Any] = {}
        self.writes = 0
        self.reads: list[str] = []  # keys, in the order read

    async def get_value(self, scope: str, key: str) -> Any | None:
        self.reads.append(key)
        return self.values.get((scope, key))

    async def set_value(self, scope: str, key: str, value: Any) -> None:
        self.writes += 1
        self.values[(scope, key)] = value

    async def delete_value(self, scope: str, key: str) -> None:
        self.values.pop((scope, key), None)


class ListSource:
    """A stock source returning a fixed list (or raising ``error``)."""

    api = "testsource"

    def __init__(self, items: list[SourceItem] | None = None) -> None:
        self.items = list(items or [])
        self.error: Exception | None = None
        self.calls = 0

    async def fetch(self, ctx: RunContext) -> list[SourceItem]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return list(self.items)

    def requests_made(self) -> int:
        return self.calls


class FakeResources:
    """What the runtime lends: one session per upstream, shared limiters, the clock."""

    def __init__(self, session: aiohttp.ClientSession, clock: FakeClock) -> None:
        self.clock = clock
        self.observer = None
        self._session = session
        self.limiters: dict[str, RateLimiter] = {}
        self.upstreams: list[str] = []

    def session(self, upstream: str, *, limit_per_host: int = 10,
                proxy: str | None = None) -> aiohttp.ClientSession:
        self.upstreams.append(upstream)
        return self._session

    def limiter(self, key: str, factory: Callable[[], RateLimiter]) -> RateLimiter:
        if key not in self.limiters:
            self.limiters[key] = factory()
        return self.limiters[key]
