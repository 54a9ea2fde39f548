"""The daemon: start-up, scheduled runs, reload on SIGHUP, drain on SIGTERM.

Signal handlers only queue an intent; ``serve`` is the one supervisor that
acts on it. Runs are tasks tracked here (never by APScheduler), so a reload
never drops a run in flight and a shutdown can wait for them within
``daemon.shutdown_timeout`` before cancelling the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from loguru import logger

from stocksyncd import __version__
from stocksyncd.clock import SYSTEM_CLOCK, Clock
from stocksyncd.config import Config, load_config
from stocksyncd.errors import ConfigError, StockSyncError
from stocksyncd.integrations import registry
from stocksyncd.integrations.base import Integration, Resources
from stocksyncd.redact import register_secrets
from stocksyncd.runtime.executor import Executor, new_run_id, run_deadline
from stocksyncd.runtime.fairshare import FairShare
from stocksyncd.runtime.fence import MARGIN, HeldLease
from stocksyncd.runtime.heap import settle_heap
from stocksyncd.runtime.history import prune_history
from stocksyncd.runtime.logs import setup_logging
from stocksyncd.runtime.notify import Notifier as Notifications
from stocksyncd.runtime.resources import IntegrationResources, SharedResources
from stocksyncd.runtime.scheduler import (
    JobScheduler,
    JobSpec,
    job_spec,
    period_of,
    ran_this_period,
)
from stocksyncd.runtime.sdnotify import Notifier, watchdog_interval, watchdog_loop
from stocksyncd.runtime.view import DaemonView, JobInfo
from stocksyncd.state.api import RunRecord, StateStore

if TYPE_CHECKING:
    from stocksyncd.integrations.base import RunResult
    from stocksyncd.runtime.metrics import Metrics

HEARTBEAT_EVERY = 15.0
STORE_RETRY_EVERY = 2.0  # heartbeat while the store cannot record
PRUNE_EVERY_BEATS = 240  # once an hour, and once at start
QUOTA_HISTORY = timedelta(days=2)  # quota buckets untouched this long are deleted
RECENT_RUNS = 10  # the newest runs of a job, read when its lease is taken
CANCELLED_AT_SHUTDOWN = "cancelled at shutdown"


class StartupError(StockSyncError):
    """The daemon cannot start (state store unreachable, web port taken)."""


class Builder(Protocol):
    """``registry.build`` or a stand-in."""

    def __call__(self, name: str, cfg: Any, config: Config, res: Resources) -> Integration: ...


class StateFactory(Protocol):
    """``stocksyncd.state.open_store`` or a stand-in."""

    async def __call__(self, url: str, *, clock: Clock) -> StateStore: ...


WebFactory = Callable[[DaemonView], web.Application]


async def _open_store(url: str, *, clock: Clock) -> StateStore:
    from stocksyncd.state import open_store

    return await open_store(url, clock=clock)


def _create_app(view: DaemonView) -> web.Application:
    from stocksyncd.runtime.web import create_app

    return create_app(view)


def _default_metrics() -> Metrics:
    from stocksyncd.runtime.metrics import Metrics

    return Metrics()


@dataclass
class Live:
    """One built integration object and what it borrowed."""

    name: str
    cfg: Any
    obj: Integration
    res: IntegrationResources
    runs: set[asyncio.Task[None]] = field(default_factory=set)


@dataclass
class Running:
    """The run in flight of one integration on this replica."""

    run_id: str
    task: asyncio.Task[None]


def _integration_inputs(config: Config, name: str) -> tuple[Any, Any]:
    """What an integration object is built from: its section and the shop it writes to."""
    cfg = config.integrations[name]
    shop = getattr(cfg, "shop", None)
    return cfg, config.shops.get(shop) if shop is not None else None


class Daemon:
    """The long-running process; implements ``DaemonView`` for the web page."""

    def __init__(
        self,
        config: Config,
        *,
        config_path: Path | str | None = None,
        builder: Builder = registry.build,
        state_factory: StateFactory = _open_store,
        web_factory: WebFactory | None = _create_app,
        metrics: Metrics | None = None,
        clock: Clock = SYSTEM_CLOCK,
        notifier: Notifier | None = None,
        configure_logging: bool = True,
        handle_signals: bool = True,
        start_delay: float = 1.0,
    ) -> None:
        self._config = config
        self.config_path = Path(config_path) if config_path is not None else None
        self._builder = builder
        self._state_factory = state_factory
        self._web_factory = web_factory
        self._metrics = metrics
        self.clock = clock
        self.notifier = notifier or Notifier()
        self._configure_logging = configure_logging
        self._handle_signals = handle_signals
        self.replica = config.daemon.replica
        self.started_at = clock.now()
        self._state: StateStore | None = None
        self._executor: Executor | None = None
        self._notifications: Notifications | None = None  # [notify]: apprise messages
        self._resources: SharedResources | None = None
        self._scheduler = JobScheduler(self._due, start_delay=start_delay)
        self._live: dict[str, Live] = {}
        self._build_errors: dict[str, str] = {}
        self._running: dict[str, Running] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._retiring: set[asyncio.Task[None]] = set()
        self._background: list[asyncio.Task[None]] = []
        self._leases: dict[str, str] = {}
        self._swept: set[str] = set()  # integrations whose abandoned runs were closed once
        self._fair: FairShare | None = None
        self._runner: web.AppRunner | None = None
        self._intents: asyncio.Queue[str] = asyncio.Queue()
        self._stopping = False
        self._force = asyncio.Event()

    # -- DaemonView ----------------------------------------------------------------
    @property
    def config(self) -> Config:
        """The configuration in force."""
        return self._config

    @property
    def state(self) -> StateStore:
        """The state store (open while serving)."""
        if self._state is None:
            raise RuntimeError("the state store is not open")
        return self._state

    @property
    def metrics(self) -> Metrics:
        """The Prometheus metrics."""
        if self._metrics is None:
            self._metrics = _default_metrics()
        return self._metrics

    @property
    def leases_in_use(self) -> bool:
        """Leases only matter when replicas share a PostgreSQL store."""
        return self._state is not None and self._state.backend == "postgresql"

    def jobs(self) -> list[JobInfo]:
        """Every configured integration, enabled or not, in config order."""
        specs = self._scheduler.specs
        out = []
        for name, cfg in self._config.integrations.items():
            spec = specs.get(name)
            extra: dict[str, Any] = {}
            if name in self._build_errors:
                extra["error"] = self._build_errors[name]
            if name in self._running:
                extra["run_id"] = self._running[name].run_id
            out.append(JobInfo(
                name=name, type=cfg.type, enabled=cfg.enabled, dry_run=cfg.dry_run,
                every_s=spec.every if spec else None, cron=cfg.cron,
                next_run=self._scheduler.next_run(name), running=name in self._running,
                lease_holder=self._leases.get(name), extra=extra,
            ))
        return out

    def integration(self, name: str) -> Integration | None:
        """The live integration object, or None."""
        live = self._live.get(name)
        return live.obj if live is not None else None

    async def trigger(self, name: str) -> str:
        """Start a manual run now; the run id (the current one if already running)."""
        if name not in self._live:
            raise KeyError(name)
        if name in self._running:
            return self._running[name].run_id
        if self._stopping:
            raise RuntimeError("the daemon is shutting down")
        return self._start_run(name, "manual")

    # -- runs ------------------------------------------------------------------------
    def _due(self, name: str) -> None:
        """A scheduled tick: start a run unless one is in flight or we are stopping."""
        if self._stopping:
            return
        if name in self._running:
            logger.info("{}: previous run still in flight; skipping this tick", name)
            return
        if name not in self._live:
            return
        self._start_run(name, "schedule")

    def _start_run(self, name: str, trigger: str) -> str:
        live = self._live[name]
        run_id = new_run_id()
        task = asyncio.create_task(self._run(live, run_id, trigger), name=f"run:{name}")
        self._running[name] = Running(run_id, task)
        self._tasks.add(task)
        live.runs.add(task)

        def done(t: asyncio.Task[None]) -> None:
            self._tasks.discard(t)
            live.runs.discard(t)
            current = self._running.get(name)
            if current is not None and current.task is t:
                del self._running[name]

        task.add_done_callback(done)
        return run_id

    async def _run(self, live: Live, run_id: str, trigger: str) -> None:
        state, executor = self.state, self._executor
        assert executor is not None
        key = f"integration:{live.name}"
        ttl = self._config.daemon.lease_ttl
        lease: HeldLease | None = None
        renewer: asyncio.Task[None] | None = None
        lost = asyncio.Event()
        me = asyncio.current_task()
        assert me is not None
        try:
            if self.leases_in_use:
                if trigger == "schedule" and not await self._my_turn(live.name):
                    return

                async def renew() -> bool:
                    return await state.renew_lease(key, self.replica, ttl)

                lease = HeldLease(key, self.replica, ttl, self.clock, renew)
                attempt = self.clock.monotonic()
                if not await state.try_acquire_lease(key, self.replica, ttl):
                    logger.debug("{}: another replica holds the lease; not running", live.name)
                    return
                lease.kept(attempt)
                self._leases[live.name] = self.replica
                renewer = asyncio.create_task(self._renew(lease, me, lost))
                recent = await state.recent_runs(live.name, limit=RECENT_RUNS, details=False)
                await self._close_abandoned(live.name, recent)
            try:
                if lease and trigger == "schedule" and self._done_this_period(live.name, recent):
                    return
                await executor.run(
                    live.obj, trigger=trigger, dry_run=live.cfg.dry_run,
                    deadline=run_deadline(live.cfg, live.cfg.type),
                    observer=live.res.counter, run_id=run_id, lease=lease,
                )
            except asyncio.CancelledError:
                # Our own renewer stopped the run (recorded as failed): not a shutdown.
                if not lost.is_set() or me.uncancel() > 0:
                    raise
            finally:
                if renewer is not None:
                    renewer.cancel()
                if lease is not None:
                    lease.lose("the run is over")
                    with contextlib.suppress(Exception):
                        await state.release_lease(key, self.replica)
                    self._leases.pop(live.name, None)
        except Exception as exc:  # noqa: BLE001 - only state store errors get here

            logger.error("{}: run could not be recorded: {}", live.name, exc)

    async def _my_turn(self, name: str) -> bool:
        """Whether this replica takes ``name``'s tick (its fair share; see fairshare)."""
        spec = self._scheduler.specs.get(name)
        now = self.clock.now()
        period = None if spec is None else period_of(spec, self._scheduler.next_run(name), now)
        return self._fair is None or await self._fair.my_turn(name, period)

    async def _close_abandoned(self, name: str, recent: list[RunRecord]) -> None:
        """Close the runs of ``name`` another replica left ``running`` (we hold the lease).

        Holding the lease means no other replica runs this integration: any run
        of it still marked "running" elsewhere belongs to a replica that died (or
        lost its lease); its changes stay as they stood. The first time this
        replica holds the lease it closes every such run; after that only when
        ``recent`` (the newest runs) shows one, which saves a write per run
        start: an older one would have been closed by a later holder of the lease.
        """
        foreign = any(r.status == "running" and r.replica != self.replica for r in recent)
        if name in self._swept and not foreign:
            return
        closed = await self.state.abandon_runs(
            integration=name, except_replica=self.replica, finished_at=self.clock.now(),
            message="interrupted: its replica stopped or lost the lease mid-run",
        )
        self._swept.add(name)
        if closed:
            logger.warning("{}: closed {} run(s) another replica left unfinished", name, closed)

    def _done_this_period(self, name: str, recent: list[RunRecord]) -> bool:
        """Another replica (or we) already ran this period's scheduled run (see scheduler)."""
        spec = self._scheduler.specs.get(name)
        now = self.clock.now()
        period = None if spec is None else period_of(spec, self._scheduler.next_run(name), now)
        if period is None:
            return False
        done = ran_this_period(recent, now=now, period=period)
        if done is None:
            return False
        logger.info("{}: replica {} already ran it this period (run {}); skipping this tick",
                    name, done.replica or "?", done.run_id)
        return True

    async def _renew(self, lease: HeldLease, run: asyncio.Task[None],
                     lost: asyncio.Event) -> None:
        """Keep the lease while the run lasts; stop the run once it may have expired.

        Writes stop first (``lease.lose``: no batch goes out after that), then the
        run is cancelled (and recorded as failed): when another replica took the
        lease, or when no renewal succeeded and the next attempt would come after
        the lease's expiry, since from then on another replica may start the job.
        """
        key, ttl = lease.name, lease.ttl
        step = ttl / 3
        while True:
            await asyncio.sleep(step)
            attempt = self.clock.monotonic()
            try:
                async with asyncio.timeout(step):
                    kept = await self.state.renew_lease(key, self.replica, ttl)
                if kept:
                    lease.kept(attempt)
                    continue
                why = "another replica took it over"
            except Exception as exc:  # noqa: BLE001 - a store outage: retry while it lasts
                if lease.left() > step + MARGIN:
                    logger.warning("could not renew the lease {}: {}", key,
                                   str(exc) or type(exc).__name__)
                    continue
                why = f"could not renew it before its expiry ({str(exc) or type(exc).__name__})"
            lease.lose(why)
            logger.error("lost the lease {} while running: {}; stopping the run", key, why)
            lost.set()
            run.cancel(f"lost the lease: {why}")
            return

    async def _heartbeat(self) -> None:
        beats = 0
        while True:
            if beats % PRUNE_EVERY_BEATS == 0:
                await prune_history(self.state, self._config.daemon, self.clock.now())
            if beats % PRUNE_EVERY_BEATS == 0:
                try:
                    # Mouser's buckets are per minute and per day: older ones are history.
                    await self.state.prune_quotas(before=self.clock.now() - QUOTA_HISTORY)
                except Exception as exc:  # noqa: BLE001 - pruning can wait for the next hour
                    logger.warning("could not delete old quota buckets: {}", exc)
            beats += 1
            try:
                await self.state.heartbeat(
                    self.replica, started_at=self.started_at, version=__version__,
                    info={"integrations": sorted(self._live)},
                )
                if self.leases_in_use:
                    held = await self.state.leases()
                    prefix = "integration:"
                    self._leases = {
                        lease.name.removeprefix(prefix): lease.holder
                        for lease in held if lease.name.startswith(prefix)
                    }
            except Exception as exc:  # noqa: BLE001 - a store outage must not stop the loop
                logger.warning("heartbeat failed: {}", exc)
                await asyncio.sleep(STORE_RETRY_EVERY)
                continue
            # Runs that ended during an outage are closed as soon as the store is back.
            assert self._executor is not None
            if self._executor.unrecorded and await self._executor.record_unrecorded():
                await asyncio.sleep(STORE_RETRY_EVERY)
                continue
            await asyncio.sleep(HEARTBEAT_EVERY)

    # -- building integrations -----------------------------------------------------------
    def _build(self, name: str, config: Config) -> Live | None:
        assert self._resources is not None
        cfg = config.integrations[name]
        res = self._resources.for_integration(name)
        try:
            obj = self._builder(name, cfg, config, res)
        except Exception as exc:  # noqa: BLE001 - one bad integration must not stop the rest
            self._build_errors[name] = str(exc)
            logger.error("{}: cannot set up the integration: {}", name, exc)
            return None
        self._build_errors.pop(name, None)
        return Live(name=name, cfg=cfg, obj=obj, res=res)

    async def _close_live(self, live: Live) -> None:
        """Close an integration object once its runs in flight are done."""
        if live.runs:
            await asyncio.wait(set(live.runs))
        try:
            await live.obj.close()
        except Exception as exc:  # noqa: BLE001 - closing must go on for the others
            logger.warning("{}: error while closing: {}", live.name, exc)
        await live.res.release()

    def _retire(self, live: Live) -> None:
        task = asyncio.create_task(self._close_live(live), name=f"retire:{live.name}")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def _specs(self, config: Config) -> dict[str, JobSpec]:
        return {
            name: job_spec(name, cfg, cfg.type)
            for name, cfg in config.integrations.items()
            if cfg.enabled and name in self._live
        }

    def _set_up_metrics(self, config: Config) -> None:
        for name, cfg in config.integrations.items():
            self.metrics.set_up(name, cfg.enabled and name in self._live)

    # -- web -------------------------------------------------------------------------
    async def _start_web(self, config: Config) -> web.AppRunner | None:
        if not config.web.enabled or self._web_factory is None:
            return None
        from stocksyncd.runtime.web.server import start_server

        app = self._web_factory(self)
        try:
            runner = await start_server(app, config.web)
        except OSError as exc:
            why = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise StartupError(f"web.listen {config.web.listen}: cannot listen: {why}") from exc
        logger.info("web page on http://{}", config.web.listen)
        return runner

    # -- lifecycle ---------------------------------------------------------------------
    def request_reload(self) -> None:
        """SIGHUP: queue a reload."""
        self._intents.put_nowait("reload")

    def request_stop(self) -> None:
        """SIGTERM/SIGINT: queue a shutdown; a second one cuts the grace period short."""
        if self._stopping:
            logger.warning("second stop signal: cancelling runs in flight now")
            self._force.set()
            return
        self._stopping = True
        self._intents.put_nowait("stop")

    def _apply_logging(self, config: Config) -> None:
        register_secrets(config.secret_values())
        if self._configure_logging:
            setup_logging(config.daemon.log_level, config.daemon.log_format,
                          secrets=config.secret_values())

    def _status(self) -> str:
        n = len(self._scheduler.specs)
        return f"{n} integration{'s' if n != 1 else ''} scheduled"

    async def start(self) -> None:
        """Open the state store, build integrations, start web and scheduler."""
        config = self._config
        self._apply_logging(config)
        try:
            self._state = await self._state_factory(config.daemon.state_url, clock=self.clock)
        except Exception as exc:
            raise StartupError(f"daemon.state_url: cannot open the state store: {exc}") from exc
        # Runs this replica left "running" were cut off by a crash or a kill.
        stale = await self._state.abandon_runs(
            replica=self.replica, finished_at=self.clock.now(),
            message="interrupted: the daemon stopped before the run finished",
        )
        if stale:
            logger.warning("closed {} run(s) left unfinished by the previous start", stale)
        self._fair = FairShare(self._state, self.replica, clock=self.clock)
        self._resources = SharedResources(clock=self.clock, observer=self.metrics,
                                          state=self._state)
        self._notifications = self._make_notifications(config)
        self._executor = Executor(
            state=self._state, clock=self.clock, replica=self.replica,
            metrics=self.metrics, debug_dir=config.daemon.debug_dir,
            after_run=self._after_run,
        )
        for name, cfg in config.integrations.items():
            if cfg.enabled and (live := self._build(name, config)) is not None:
                self._live[name] = live
        self._set_up_metrics(config)
        self._runner = await self._start_web(config)
        self._scheduler.start()
        self._scheduler.apply(self._specs(config))
        self._background.append(asyncio.create_task(self._heartbeat(), name="heartbeat"))
        if (interval := watchdog_interval()) is not None:
            self._background.append(
                asyncio.create_task(watchdog_loop(self.notifier, interval), name="watchdog"))
        logger.info("stocksyncd {} started on replica {}: {}", __version__, self.replica,
                    self._status())

    def _make_notifications(self, config: Config) -> Notifications | None:
        if not config.notify.urls or self._state is None:
            return None
        return Notifications(config.notify, self._state, self.clock,
                             page_url=config.notify.page_url)

    async def _after_run(self, result: RunResult) -> None:
        if self._notifications is not None:
            await self._notifications.after_run(result)

    async def reload(self) -> bool:
        """Re-read the config and apply the difference; False (old config kept) on error."""
        # RELOADING first, whatever happens: systemctl reload waits for it and READY.
        self.notifier.reloading()
        try:
            if self.config_path is None:
                raise ConfigError("no config file to reload from")
            new = await asyncio.to_thread(load_config, self.config_path)
        except ConfigError as exc:
            logger.error("reload failed, keeping the running configuration: {}", exc)
            self.notifier.ready(f"reload failed; {self._status()}")
            return False
        old = self._config
        self._apply_logging(new)
        if new.daemon.state_url != old.daemon.state_url:
            logger.warning("daemon.state_url changed: takes effect after a restart")
        assert self._executor is not None
        self._executor.debug_dir = new.daemon.debug_dir
        if new.notify != old.notify:
            if self._notifications is not None:
                await self._notifications.close()
            self._notifications = self._make_notifications(new)

        for name in list(self._live):
            gone = name not in new.integrations or not new.integrations[name].enabled
            changed = not gone and (
                _integration_inputs(new, name) != _integration_inputs(old, name)
            )
            if gone or changed:
                self._retire(self._live.pop(name))
                logger.info("{}: {}", name, "removed" if gone else "changed; rebuilding")
        for name in old.integrations:
            if name not in new.integrations:
                self._build_errors.pop(name, None)
                with contextlib.suppress(Exception):
                    self.metrics.forget(name)
        self._config = new
        for name, cfg in new.integrations.items():
            if cfg.enabled and name not in self._live:
                if (live := self._build(name, new)) is not None:
                    self._live[name] = live
            elif not cfg.enabled:
                self._build_errors.pop(name, None)
        self._set_up_metrics(new)
        self._scheduler.apply(self._specs(new))

        from stocksyncd.runtime.web.server import server_settings

        if server_settings(new.web) != server_settings(old.web):
            await self._restart_web(new)
        logger.info("configuration reloaded: {}", self._status())
        self.notifier.ready(self._status())
        return True

    async def _restart_web(self, config: Config) -> None:
        old = self._runner
        if old is not None:
            await old.cleanup()
            self._runner = None
        try:
            self._runner = await self._start_web(config)
        except StartupError as exc:
            logger.error("{}; the web page stays off until the next reload", exc)

    async def stop(self) -> None:
        """Drain runs within the grace period, then close everything."""
        self._stopping = True
        self.notifier.stopping("draining runs in flight")
        self._scheduler.pause()
        timeout = self._config.daemon.shutdown_timeout
        if self._tasks:
            logger.info("waiting up to {:.0f}s for {} run(s) in flight", timeout,
                        len(self._tasks))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            force = asyncio.create_task(self._force.wait())
            while self._tasks and not self._force.is_set() and loop.time() < deadline:
                await asyncio.wait(self._tasks | {force}, timeout=deadline - loop.time(),
                                   return_when=asyncio.FIRST_COMPLETED)
            force.cancel()
        if self._tasks:
            logger.warning("cancelling {} run(s) still in flight", len(self._tasks))
            for task in list(self._tasks):
                task.cancel(CANCELLED_AT_SHUTDOWN)
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        self._scheduler.shutdown()
        for live in list(self._live.values()):
            self._retire(live)
        self._live.clear()
        if self._retiring:
            await asyncio.gather(*list(self._retiring), return_exceptions=True)
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        self._background.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._notifications is not None:
            await self._notifications.close()
        if self._resources is not None:
            await self._resources.close()
        if self._state is not None:
            await self._state.close()
        logger.info("stocksyncd stopped")
        await logger.complete()

    def _install_signals(self) -> list[signal.Signals]:
        if not self._handle_signals:
            return []
        loop = asyncio.get_running_loop()
        handlers = {
            signal.SIGHUP: self.request_reload,
            signal.SIGTERM: self.request_stop,  # kill, systemctl stop, docker stop
            signal.SIGINT: self.request_stop,  # Ctrl+C
        }
        for sig, handler in handlers.items():
            loop.add_signal_handler(sig, handler)
        return list(handlers)

    async def serve(self) -> int:
        """Run until SIGTERM/SIGINT; the process exit code."""
        installed = self._install_signals()
        try:
            try:
                await self.start()
            except StartupError as exc:
                logger.error("{}", exc)
                await self.stop()
                return 1
            # Start-up objects are permanent: keep them out of GC scans. Full
            # collections wait for a gap in the schedule (runtime/heap.py).
            settle_heap(until_next_run=self._scheduler.seconds_to_next)
            self.notifier.ready(self._status())
            while True:
                intent = await self._intents.get()
                if intent == "stop":
                    break
                if intent == "reload" and not self._stopping:
                    await self.reload()
            await self.stop()
            return 0
        finally:
            loop = asyncio.get_running_loop()
            for sig in installed:
                loop.remove_signal_handler(sig)

