"""One demo session: the simulators, a generated config, the real daemon, churn, summary.

Everything runs in one event loop. The config file lives in a temporary
directory and the daemon is given its path, so SIGHUP reloads it like any
other; Ctrl-C and SIGTERM go through the daemon's own shutdown, then the
simulators stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from stocksyncd.config import load_config
from stocksyncd.demo.catalogue import (
    INSALES_API_KEY,
    INSALES_PASSWORD,
    INVENTREE_TOKEN,
    KAK2C_LOGIN,
    KAK2C_PASSWORD,
    MOUSER_API_KEY,
    MOUSER_CALLS_PER_DAY,
    MOYSKLAD_TOKEN,
    DemoWorld,
    build_world,
)
from stocksyncd.demo.churn import Churn
from stocksyncd.demo.options import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    INTEGRATIONS,
    Options,
    Pace,
    page_url,
)
from stocksyncd.demo.summary import Summary
from stocksyncd.errors import ConfigError
from stocksyncd.runtime.daemon import Daemon
from stocksyncd.state import open_store
from stocksyncd.state.api import StateStore

WEB_WAIT = 30.0


def _toml(value: str) -> str:
    """A TOML basic string (JSON string escapes are valid TOML)."""
    return json.dumps(value, ensure_ascii=False)


def config_text(world: DemoWorld, *, state_url: str, listen: str, token: str,
                pace: Pace, log_level: str) -> str:
    """The daemon's configuration for the running simulators."""
    inv = world.inventree
    return f"""\
# Written by `stocksyncd demo`: the daemon against the built-in simulators.
# Edit and send SIGHUP to the demo process to reload it, as with the real service.

[daemon]
state_url = {_toml(state_url)}
log_level = {_toml(log_level)}
log_format = "text"
shutdown_timeout = "10s"

[web]
listen = {_toml(listen)}
token = {_toml(token)}

[shops.main]
url = {_toml(world.insales.url)}
api_key = {_toml(INSALES_API_KEY)}
password = {_toml(INSALES_PASSWORD)}

[integrations.moysklad-insales]
type = "moysklad-insales"
shop = "main"
every = {_toml(pace.moysklad)}
run_at_start = true
token = {_toml(MOYSKLAD_TOKEN)}
base_url = {_toml(world.moysklad.base_url)}

[integrations.kak2c-insales]
type = "kak2c-insales"
shop = "main"
every = {_toml(pace.kak2c)}
run_at_start = true
login = {_toml(KAK2C_LOGIN)}
password = {_toml(KAK2C_PASSWORD)}
base_url = {_toml(world.kak2c.base_url)}

[integrations.mouser-inventree]
type = "mouser-inventree"
every = {_toml(pace.mouser)}
run_at_start = true
parts_per_run = 2
calls_per_minute = {pace.mouser_per_minute}
calls_per_day = {MOUSER_CALLS_PER_DAY}
inventree_url = {_toml(inv.url)}
inventree_token = {_toml(INVENTREE_TOKEN)}
mouser_api_key = {_toml(MOUSER_API_KEY)}
mouser_supplier = {inv.mouser_supplier}
base_url = {_toml(world.mouser.base_url)}
"""


class Demo:
    """One demo session: world, config, daemon, churn, summary."""

    def __init__(self, opts: Options, workdir: Path, out: TextIO) -> None:
        self.opts = opts
        self.workdir = workdir
        self.out = out
        self.stop_requested = asyncio.Event()
        self.daemon_stopping = False

    def say(self, *lines: str) -> None:
        """Print to the console (flushed: it is often a pipe)."""
        for line in lines:
            self.out.write(line + "\n")
        self.out.flush()

    def request_stop(self) -> None:
        """Ctrl-C / SIGTERM before the daemon handles them itself, or after it stopped."""
        self.stop_requested.set()

    async def run(self) -> int:
        """The whole session; the exit code."""
        self._own_signals()
        world = build_world(self.opts.seed, mouser_per_minute=self.opts.pace.mouser_per_minute)
        try:
            await world.start()
            if self.stop_requested.is_set():
                self.say("Stopped.")
                return EXIT_OK
            return await self._serve(world)
        finally:
            await world.stop()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def _serve(self, world: DemoWorld) -> int:
        opts = self.opts
        state_url = opts.state_url or f"sqlite:///{self.workdir / 'state.db'}"
        listen = f"[{opts.host}]:{opts.port}" if ":" in opts.host else f"{opts.host}:{opts.port}"
        config_path = self.workdir / "config.toml"
        config_path.write_text(config_text(
            world, state_url=state_url, listen=listen, token=opts.token, pace=opts.pace,
            log_level=opts.log_level,
        ), encoding="utf-8")
        try:
            config = load_config(config_path)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE

        summary = Summary(self.out, since=datetime.now(UTC))
        daemon = Daemon(config, config_path=config_path, start_delay=opts.pace.start_delay)
        serve = asyncio.create_task(daemon.serve(), name="daemon")
        helpers: list[asyncio.Task[None]] = []
        store: StateStore | None = None
        code = EXIT_FAILED
        try:
            if not await self._wait_for_web(serve):
                # Either stopped by a signal while starting, or it could not start (logged).
                stopped = serve.done() and not serve.cancelled() and serve.exception() is None
                if stopped and serve.result() == 0:
                    self.say("Stopped.")
                    return EXIT_OK
                return EXIT_FAILED
            # A store of our own: it outlives the daemon's, for the runs of the drain.
            store = await open_store(state_url)
            self._banner(world, config_path, state_url)
            if opts.churn:
                churn = Churn(world, seed=opts.seed, every=opts.pace.churn)
                helpers.append(asyncio.create_task(churn.run(), name="churn"))
            helpers.append(asyncio.create_task(self._watch(daemon, store, summary, serve),
                                               name="summary"))
            code = await serve
            self._own_signals()
            await summary.poll(store)
        finally:
            self._own_signals()
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            if not serve.done():
                daemon.request_stop()
            await asyncio.gather(serve, return_exceptions=True)
            if store is not None:
                await store.close()
        if code != 0:
            return EXIT_FAILED
        if opts.runs is not None:
            missing = [n for n in INTEGRATIONS if summary.ok.get(n, 0) < 1]
            if missing:
                self.say(f"No ok run of: {', '.join(missing)}")
                return EXIT_FAILED
            self.say(f"Done: every integration finished {opts.runs} run(s).")
        else:
            self.say("Stopped.")
        return EXIT_OK

    def _own_signals(self) -> None:
        """Ctrl-C and SIGTERM set our stop flag (the daemon takes them over while serving)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.request_stop)

    async def _wait_for_web(self, serve: asyncio.Task[int]) -> bool:
        """True once the status page accepts connections; False if the daemon gave up."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WEB_WAIT
        host = "127.0.0.1" if self.opts.host in ("0.0.0.0", "") else self.opts.host
        host = "::1" if host == "::" else host
        while loop.time() < deadline and not serve.done():
            try:
                _, writer = await asyncio.open_connection(host, self.opts.port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True
        return False

    def _banner(self, world: DemoWorld, config_path: Path, state_url: str) -> None:
        url = page_url(self.opts.host, self.opts.port)
        pace = self.opts.pace
        lines = [
            "stocksyncd demo: the daemon against built-in API simulators (no network, "
            "no credentials)",
            "",
            *("  " + line for line in world.describe()),
            "",
            f"Running: moysklad-insales every {pace.moysklad}, kak2c-insales every "
            f"{pace.kak2c}, mouser-inventree every {pace.mouser} (2 parts a run)"
            + ("; source stock keeps changing" if self.opts.churn else ""),
            f"Status page: {url}",
            f"Review page: {url}review",
        ]
        if self.opts.token:
            lines.append(f"Web token:   {self.opts.token}")
        lines += [
            f"Config file: {config_path}",
            f"State store: {state_url}",
            "Press Ctrl-C to stop",
            "",
        ]
        self.say(*lines)

    async def _watch(self, daemon: Daemon, store: StateStore, summary: Summary,
                     serve: asyncio.Task[int]) -> None:
        """Print finished runs; stop the daemon on ``--runs`` or an early stop request."""
        while not serve.done():
            if self.stop_requested.is_set() and not self.daemon_stopping:
                # A signal that came before the daemon had its own handlers in place.
                self.daemon_stopping = True
                daemon.request_stop()
            try:
                await summary.poll(store)
            except BrokenPipeError:
                self.stop_requested.set()  # nobody reads the console any more: stop
            except Exception as exc:  # noqa: BLE001 - the summary must not stop the demo
                print(f"summary: cannot read the state store: {exc}", file=sys.stderr)
            if (self.opts.runs is not None and not self.daemon_stopping
                    and summary.all_done(list(INTEGRATIONS), self.opts.runs)):
                self.daemon_stopping = True
                daemon.request_stop()
            await asyncio.sleep(self.opts.pace.poll)
