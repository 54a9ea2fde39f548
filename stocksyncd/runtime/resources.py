"""Sessions, limiters and request observers the runtime lends to integrations.

One ``aiohttp.ClientSession`` per upstream (and proxy), created on first use
and owned here: integrations never close them. Each integration gets a
scoped view (``IntegrationResources``) whose observer counts its requests,
feeds the metrics, and captures raw answers for the debug dump; the view
also records which sessions the integration uses, so a reload that drops the
last user of an upstream closes that session.

A session's pool is sized by what shares it: each user declares the
connections it may hold at once (its limiter's concurrency), and the pool
allows their sum per host, with no cap across hosts. Three hundred Kak2c jobs
of 4 pages in flight each then do not queue behind aiohttp's default of 100
connections (10 per host); the limiters stay the only throttle.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from loguru import logger

from stocksyncd import __version__
from stocksyncd.clock import SYSTEM_CLOCK, Clock
from stocksyncd.http.ratelimit import RateLimiter
from stocksyncd.http.transport import ExchangeRecord, RequestObserver
from stocksyncd.runtime.fence import FencedLimiter
from stocksyncd.state.api import StateStore

USER_AGENT = f"stocksyncd/{__version__}"

# Bounds the debug capture so a huge run cannot hold every answer in memory.
MAX_CAPTURED = 500

SessionKey = tuple[str, str | None]


class PooledConnector(aiohttp.TCPConnector):
    """A connector whose per-host limit follows the users of its session."""

    def __init__(self, limit_per_host: int) -> None:
        super().__init__(limit=0, limit_per_host=limit_per_host)

    def resize(self, limit_per_host: int) -> None:
        """Allow ``limit_per_host`` connections per host from the next request on."""
        # aiohttp reads the limit on every acquire; there is no public setter.
        self._limit_per_host = limit_per_host


def pool_size(demands: dict[int | None, int]) -> int:
    """Connections per host a session needs: the sum of what its users may hold."""
    return max(1, sum(demands.values()))


@dataclass
class RunCapture:
    """What one run's requests looked like: counts by API and, optionally, the answers."""

    requests: dict[str, int] = field(default_factory=dict)
    records: list[ExchangeRecord] = field(default_factory=list)
    dropped: int = 0


class IntegrationObserver:
    """Per-integration ``RequestObserver``: forwards to metrics, counts, captures."""

    def __init__(self, upstream: RequestObserver | None = None) -> None:
        self.upstream = upstream
        self._capture = RunCapture()
        self._keep_bodies = False

    def begin(self, *, keep_bodies: bool) -> None:
        """Start collecting for a new run."""
        self._capture = RunCapture()
        self._keep_bodies = keep_bodies

    def end(self) -> RunCapture:
        """Stop collecting and hand over what the run did."""
        capture, self._capture = self._capture, RunCapture()
        self._keep_bodies = False
        return capture

    def observe(self, record: ExchangeRecord) -> None:
        """Count the exchange, pass it on to metrics, keep it for the dump."""
        if self.upstream is not None:
            self.upstream.observe(record)
        cap = self._capture
        cap.requests[record.api] = cap.requests.get(record.api, 0) + 1
        if self._keep_bodies:
            if len(cap.records) < MAX_CAPTURED:
                cap.records.append(record)
            else:
                cap.dropped += 1


class SharedResources:
    """The process-wide pool of sessions and limiters."""

    def __init__(
        self,
        *,
        clock: Clock = SYSTEM_CLOCK,
        observer: RequestObserver | None = None,
        user_agent: str = USER_AGENT,
        state: StateStore | None = None,
    ) -> None:
        self.clock = clock
        self.state = state
        self.observer = observer
        self.user_agent = user_agent
        self._sessions: dict[SessionKey, aiohttp.ClientSession] = {}
        self._owners: dict[SessionKey, set[int]] = {}
        self._demand: dict[SessionKey, dict[int | None, int]] = {}
        self._limiters: dict[str, RateLimiter] = {}
        self._tokens = itertools.count(1)

    def session(
        self, upstream: str, *, limit_per_host: int = 10, proxy: str | None = None,
        owner: int | None = None,
    ) -> aiohttp.ClientSession:
        """The session for ``upstream`` through ``proxy``; created on first use.

        ``limit_per_host`` is what ``owner`` may hold at once; the pool allows
        the sum over every user of the session.
        """
        key: SessionKey = (upstream, proxy or None)
        demand = self._demand.setdefault(key, {})
        demand[owner] = max(demand.get(owner, 0), limit_per_host)
        size = pool_size(demand)
        sess = self._sessions.get(key)
        if sess is None or sess.closed:
            # The proxy is a session default, so a Transport needs no proxy argument.
            sess = aiohttp.ClientSession(
                connector=PooledConnector(size),
                headers={"User-Agent": self.user_agent},
                proxy=proxy or None,
            )
            self._sessions[key] = sess
        else:
            self._resize(sess, size)
        if owner is not None:
            self._owners.setdefault(key, set()).add(owner)
        return sess

    @staticmethod
    def _resize(sess: aiohttp.ClientSession, size: int) -> None:
        connector = sess.connector
        if isinstance(connector, PooledConnector) and connector.limit_per_host != size:
            connector.resize(size)

    def pool_limit(self, upstream: str, proxy: str | None = None) -> int | None:
        """Connections per host the session for ``upstream`` allows; None without one."""
        sess = self._sessions.get((upstream, proxy or None))
        if sess is None or sess.closed or sess.connector is None:
            return None
        return sess.connector.limit_per_host

    def limiter(self, key: str, factory: Callable[[], RateLimiter]) -> RateLimiter:
        """The limiter for ``key``; ``factory`` runs only the first time."""
        found = self._limiters.get(key)
        if found is None:
            # Every request waits here last: the place to check a writer's lease.
            found = self._limiters[key] = FencedLimiter(factory())
        return found

    def for_integration(self, name: str) -> IntegrationResources:
        """A view for one integration object (a rebuilt integration gets a new one)."""
        return IntegrationResources(self, name, next(self._tokens))

    @property
    def upstreams(self) -> list[SessionKey]:
        """Keys of the open sessions."""
        return [k for k, s in self._sessions.items() if not s.closed]

    async def release(self, owner: int) -> None:
        """Forget ``owner``; close the sessions nobody uses any more."""
        for key in list(self._owners):
            users = self._owners[key]
            users.discard(owner)
            demand = self._demand.get(key, {})
            demand.pop(owner, None)
            if users:
                if (sess := self._sessions.get(key)) is not None:
                    self._resize(sess, pool_size(demand))
            else:
                del self._owners[key]
                self._demand.pop(key, None)
                sess = self._sessions.pop(key, None)
                if sess is not None and not sess.closed:
                    logger.debug("closing the unused session for {}", key[0])
                    await sess.close()

    async def close(self) -> None:
        """Close every session."""
        sessions = list(self._sessions.values())
        self._sessions.clear()
        self._owners.clear()
        self._demand.clear()
        for sess in sessions:
            if not sess.closed:
                await sess.close()


class IntegrationResources:
    """``Resources`` for one integration: shared sessions and limiters, its own observer."""

    def __init__(self, shared: SharedResources, name: str, token: int) -> None:
        self.shared = shared
        self.name = name
        self.token = token
        self.clock: Clock = shared.clock
        self.state: StateStore | None = shared.state
        self.counter = IntegrationObserver(shared.observer)
        self.observer: RequestObserver | None = self.counter

    def session(
        self, upstream: str, *, limit_per_host: int = 10, proxy: str | None = None
    ) -> aiohttp.ClientSession:
        """The shared session for ``upstream``, noted as used by this integration."""
        return self.shared.session(
            upstream, limit_per_host=limit_per_host, proxy=proxy, owner=self.token
        )

    def limiter(self, key: str, factory: Callable[[], RateLimiter]) -> RateLimiter:
        """The shared limiter for ``key``."""
        return self.shared.limiter(key, factory)

    async def release(self) -> None:
        """This integration object is gone: close sessions only it used."""
        await self.shared.release(self.token)
